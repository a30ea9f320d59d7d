"""Reliability and security, third round (issue 28): a results folder is data, never code. Reading
it (report, status, replay, load_results) runs none of its plug-ins unless the user asks
(--run-plugins), each folder is reported in its own plug-in scope, every report file is written
atomically and never through a link, and an index entry is used only for the config that wrote it."""

import hashlib
import json
from pathlib import Path

import pytest

from emrun.config import config_hash
from emrun.plugins import PluginsNotRun
from emrun.results import load_results
from tests.conftest import TINY, emrun

SMALL = TINY.replace("m: [2, 3]", "m: [2]").replace("D: [2, 3]", "D: [2]").replace("runs: 6", "runs: 3")

# A plug-in that leaves a mark wherever it is imported (the mark's path is in the environment).
MARKING = """\
import os
from pathlib import Path

Path(os.environ["EMRUN_TEST_MARK"]).write_text("the plug-in ran")
"""


def sweep_with_plugin(tmp_path: Path, name: str = "plugged", plugin: str = MARKING) -> Path:
    """A folder swept with a file plug-in (its mark goes to a file the test removes afterwards)."""
    (tmp_path / "plugin.py").write_text(plugin)
    (tmp_path / f"{name}.yaml").write_text(SMALL.replace("name: tiny", f"name: {name}\nplugins: [plugin.py]"))
    emrun("sweep", f"{name}.yaml", "--quiet", "--workers", "1", cwd=tmp_path,
          env={"EMRUN_TEST_MARK": str(tmp_path / "swept.mark")})
    return tmp_path / "results" / name


def save(folder: Path, manifest: dict) -> None:
    """Whoever writes a folder writes its manifest whole: the config hash too."""
    manifest["config_hash"] = config_hash(manifest["config"])
    (folder / "manifest.json").write_text(json.dumps(manifest))


def plant(folder: Path, text: str) -> None:
    """What whoever writes a folder can do: replace the kept copy, and the hash beside it."""
    manifest = json.loads((folder / "manifest.json").read_text())
    record = manifest["config"]["plugins"][0]
    (folder / "plugins" / f"plugin.{record['sha256'][:12]}.py").unlink()
    record["sha256"] = hashlib.sha256(text.encode()).hexdigest()
    (folder / "plugins" / f"plugin.{record['sha256'][:12]}.py").write_text(text)
    save(folder, manifest)


def test_read_paths_run_no_plugin_of_a_results_folder_unless_asked(tmp_path, monkeypatch):
    folder = sweep_with_plugin(tmp_path)
    mark = tmp_path / "read.mark"
    env = {"EMRUN_TEST_MARK": str(mark)}
    batch = sorted((folder / "batches").iterdir())[0].stem
    for command in (("status", "--configs", str(tmp_path)), ("report",), ("report", str(folder)),
                    ("replay", f"plugged/{batch}/0")):
        result = emrun(*command, cwd=tmp_path, env=env, check=False)
        assert not mark.exists(), command
        assert "Traceback" not in result.stderr and "--run-plugins" in result.stderr + result.stdout, command
        assert "plugins/plugin." in result.stderr + result.stdout, command  # names what would run
    with pytest.raises(PluginsNotRun, match="run_plugins=True"):
        load_results(folder)
    assert not mark.exists()
    # Asked by name, the plug-in runs, and says so.
    ran = emrun("status", "--run-plugins", "--configs", str(tmp_path), cwd=tmp_path, env=env)
    assert mark.exists() and "running plug-in plugins/plugin." in ran.stderr
    monkeypatch.setenv("EMRUN_TEST_MARK", str(tmp_path / "python.mark"))
    assert len(load_results(folder, run_plugins=True)) == 6 and (tmp_path / "python.mark").exists()


def test_a_module_a_results_folder_names_is_never_imported(tmp_path):
    folder = sweep_with_plugin(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["config"]["plugins"] = [{"module": "planted", "sha256": None}]
    save(folder, manifest)
    (tmp_path / "planted.py").write_text(MARKING)  # importable from the current folder under python -m
    (tmp_path / "plugin.py").write_text("")  # the config file's own plug-in (status --run-plugins runs it): harmless
    mark = tmp_path / "module.mark"
    env = {"EMRUN_TEST_MARK": str(mark)}
    listed = emrun("status", cwd=tmp_path, env=env)
    assert "module planted" in listed.stdout and not mark.exists()
    for command in (("report", "--run-plugins", str(folder)), ("status", "--run-plugins")):
        result = emrun(*command, cwd=tmp_path, env=env, check=False)
        assert not mark.exists(), command
        assert result.returncode == 1 and "module planted" in result.stderr and "never imported" in result.stderr
        assert "Traceback" not in result.stderr


def test_status_runs_the_folders_copies_when_asked_but_never_the_config_file_its_manifest_names(tmp_path):
    folder = sweep_with_plugin(tmp_path)
    (tmp_path / "evil.py").write_text("import os\nopen(os.environ['EMRUN_TEST_EVIL'], 'w').close()\n")
    (tmp_path / "evil.yaml").write_text(SMALL.replace("name: tiny", "name: plugged\nplugins: [evil.py]"))
    history = json.loads((folder / "sweeps.json").read_text())
    history["sweeps"][-1]["config_file"] = "evil.yaml"  # not hashed: whoever writes the folder chooses it
    (folder / "sweeps.json").write_text(json.dumps(history))
    env = {"EMRUN_TEST_MARK": str(tmp_path / "copy.mark"), "EMRUN_TEST_EVIL": str(tmp_path / "evil.mark")}
    status = emrun("status", "--run-plugins", cwd=tmp_path, env=env)
    assert (tmp_path / "copy.mark").exists() and not (tmp_path / "evil.mark").exists()
    assert "DIFFERS from evil.yaml: its plug-ins differ" in status.stdout
    history["sweeps"][-1]["config_file"] = "plugged.yaml"  # the file it was swept from: same plug-in, compared whole
    (folder / "sweeps.json").write_text(json.dumps(history))
    assert "matches plugged.yaml" in emrun("status", "--run-plugins", cwd=tmp_path, env=env).stdout


@pytest.mark.slow
def test_list_status_and_a_dry_run_show_a_configs_plugins_without_importing_them(tmp_path):
    (tmp_path / "helpers").mkdir()
    (tmp_path / "configs").mkdir()
    (tmp_path / "helpers" / "x.py").write_text(MARKING)
    (tmp_path / "configs" / "tiny.yaml").write_text(SMALL.replace("name: tiny", "name: tiny\nplugins: [../helpers/x.py]"))
    mark = tmp_path / "config.mark"
    env = {"EMRUN_TEST_MARK": str(mark)}
    listed = emrun("list", cwd=tmp_path, env=env)
    dry = emrun("sweep", "configs/tiny.yaml", "--dry-run", cwd=tmp_path, env=env)
    assert not mark.exists()
    digest = hashlib.sha256(MARKING.encode()).hexdigest()[:16]
    for output in (listed.stdout, dry.stdout):
        assert "../helpers/x.py" in output and digest in output and "outside the config's folder" in output
    emrun("sweep", "configs/tiny.yaml", "--quiet", "--workers", "1", cwd=tmp_path, env=env)
    assert mark.exists()  # a sweep runs it
    mark.unlink()
    status = emrun("status", cwd=tmp_path, env=env)
    assert not mark.exists() and "lists the same plug-ins" in status.stdout
    (tmp_path / "helpers" / "x.py").write_text(MARKING + "# changed\n")
    status = emrun("status", cwd=tmp_path, env=env)
    assert not mark.exists() and "DIFFERS" in status.stdout and "plug-ins differ (../helpers/x.py)" in status.stdout


GREEDY = """\
from emrun import registry
from emrun.kinds.trials import ReportLayout
from emrun.report import ReportResult


def write(ctx):
    path = ctx.folder / "report.md"
    ctx.write_report(path, f"# {ctx.config['name']}: everything holds\\n")
    return ReportResult(path, [])


registry.TRIAL_REPORTS.register("greedy", ReportLayout(lambda values: True, write, priority=100))
"""


@pytest.mark.slow
def test_each_folder_is_reported_in_its_own_plugin_scope(tmp_path):
    sweep_with_plugin(tmp_path, "a_greedy", GREEDY)
    (tmp_path / "b_plain.yaml").write_text(SMALL.replace("name: tiny", "name: b_plain"))
    emrun("sweep", "b_plain.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    emrun("report", "--run-plugins", cwd=tmp_path)
    results = tmp_path / "results"
    assert "everything holds" in (results / "a_greedy" / "report.md").read_text()
    plain = (results / "b_plain" / "report.md").read_text()
    assert "everything holds" not in plain and "## Completeness" in plain
    assert "everything holds" not in json.loads((results / "b_plain" / "verdicts.json").read_text())["title"]


def outside_files(root: Path, inside: Path) -> dict:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink() and inside not in p.parents}


def test_report_files_replace_links_instead_of_writing_through_them(tmp_path):
    (tmp_path / "tiny.yaml").write_text(SMALL)
    emrun("sweep", "tiny.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    folder = tmp_path / "results" / "tiny"
    names = ["report.md", "verdicts.json", "cells.csv"]
    for name in names:
        (home / name).write_text("the user's own file\n")
        (folder / name).symlink_to(home / name)
    (home / "REPORT.md").write_text("the user's own file\n")
    (tmp_path / "results" / "REPORT.md").symlink_to(home / "REPORT.md")
    emrun("report", cwd=tmp_path)
    for name in names:
        assert (home / name).read_text() == "the user's own file\n"
        assert not (folder / name).is_symlink() and (folder / name).stat().st_size > 0
    assert (home / "REPORT.md").read_text() == "the user's own file\n"
    assert "tiny" in (tmp_path / "results" / "REPORT.md").read_text()


def test_an_index_entry_is_used_only_for_the_config_that_wrote_it(tmp_path):
    (tmp_path / "tiny.yaml").write_text(SMALL)
    emrun("sweep", "tiny.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    emrun("report", cwd=tmp_path)
    index = tmp_path / "results" / "REPORT.md"
    assert "## [tiny]" in index.read_text()
    # A --replace that stops before its first batch: the old verdicts stay beside the new manifest.
    stopped = emrun("sweep", "tiny.yaml", "--quiet", "--workers", "1", "--replace", "--set", "seed=4", cwd=tmp_path,
                    env={"EMRUN_TEST_KILL_AT": "computing:1"}, check=False)
    assert stopped.returncode == -9
    emrun("report", cwd=tmp_path)
    text = index.read_text()
    assert "## [tiny]" not in text and "`tiny`: its `verdicts.json` judges config hash" in text
    assert "The verdicts of the 0 results folders below" in text and "- none: no folder has a report" in text


def test_a_symlinked_batches_folder_is_refused_and_nothing_in_its_target_is_deleted(tmp_path):
    (tmp_path / "tiny.yaml").write_text(SMALL)
    emrun("sweep", "tiny.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    own = tmp_path / "own"
    own.mkdir()
    (own / "precious.parquet").write_text("the user's own data")
    batches = tmp_path / "results" / "tiny" / "batches"
    for path in batches.iterdir():
        path.unlink()
    batches.rmdir()
    batches.symlink_to(own)
    refused = emrun("sweep", "tiny.yaml", "--quiet", "--workers", "1", "--replace", "--set", "seed=4", cwd=tmp_path,
                    check=False)
    assert refused.returncode == 2 and "is a symbolic link" in refused.stderr and "Traceback" not in refused.stderr
    assert (own / "precious.parquet").read_text() == "the user's own data"


def test_a_cloned_hostile_results_tree_runs_no_code_and_writes_nothing_outside_it(tmp_path):
    """End to end: someone's results tree, cloned: a manifest naming a module that sits beside it,
    a planted plugins/ copy with a matching hash, report files linked to the user's files."""
    work = tmp_path / "work"
    work.mkdir()
    folder = sweep_with_plugin(work)
    plant(folder, MARKING + "# planted\n")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["config"]["plugins"].append({"module": "planted", "sha256": None})
    manifest["config"]["description"] = "~/.bashrc line chosen by the manifest"
    save(folder, manifest)
    (work / "planted.py").write_text(MARKING)
    (work / "swept.mark").unlink()
    home = tmp_path / "home"
    home.mkdir()
    for name in ("report.md", "verdicts.json", "cells.csv", "k_cluster_rates.png"):
        (home / name).write_text("the user's own file\n")
        (folder / name).unlink(missing_ok=True)
        (folder / name).symlink_to(home / name)
    (home / "REPORT.md").write_text("the user's own file\n")
    (work / "results" / "REPORT.md").unlink(missing_ok=True)
    (work / "results" / "REPORT.md").symlink_to(home / "REPORT.md")
    (folder / "summaries").symlink_to(home)
    before = outside_files(tmp_path, work / "results")
    mark = tmp_path / "hostile.mark"
    env = {"EMRUN_TEST_MARK": str(mark)}
    batch = sorted((folder / "batches").iterdir())[0].stem
    for command in (("status",), ("status", str(folder)), ("report",), ("report", str(folder)),
                    ("replay", f"plugged/{batch}/0")):
        result = emrun(*command, cwd=work, env=env, check=False)
        assert "Traceback" not in result.stderr, (command, result.stderr)
        assert not mark.exists(), command
    after = outside_files(tmp_path, work / "results")
    assert after == before  # nothing outside the results tree was written, created or removed


def test_a_stored_companion_name_that_is_a_path_is_not_followed(tmp_path):
    from emrun.report.companions import declared, declared_folders

    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "manifest.json").write_text("{}")
    (tmp_path / "root" / "ok").mkdir(parents=True)
    (tmp_path / "root" / "ok" / "manifest.json").write_text("{}")
    config = {"companions": {"out": "../elsewhere", "fine": "ok"}}  # a manifest is data: not validated when sent
    assert declared(config) == {"fine": "ok"}
    assert declared_folders(config, tmp_path / "root") == [tmp_path / "root" / "ok"]
