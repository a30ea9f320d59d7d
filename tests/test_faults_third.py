"""Reliability, third round (issue 28): report files written whole and once, batch files under
another batch's name, status from another folder, plans too large to build, names a file system
cannot hold, rows whose k contradicts their weights, devices and huge samples, fsync."""

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emrun import files
from emrun.report import write_reports
from emrun.results import load_results
from emrun.store import TIMING_COLUMNS
from tests.conftest import TINY, emrun

SMALL = TINY.replace("m: [2, 3]", "m: [2]").replace("D: [2, 3]", "D: [2]").replace("runs: 6", "runs: 3")


def swept(tmp_path: Path, text: str = SMALL) -> Path:
    (tmp_path / "tiny.yaml").write_text(text)
    emrun("sweep", "tiny.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    return tmp_path / "results" / "tiny"


def test_each_report_file_is_written_once_whole_and_atomically(tmp_path, monkeypatch):
    # 4 batches, a sweep killed after 2: the report must carry the Incomplete banner in its one write.
    (tmp_path / "tiny.yaml").write_text(SMALL.replace("runs: 3", "runs: 3\ntruths: 2"))
    folder = tmp_path / "results" / "tiny"
    killed = emrun("sweep", "tiny.yaml", "--quiet", "--workers", "1", cwd=tmp_path,
                   env={"EMRUN_TEST_KILL_AT": "batch_written:2"}, check=False)
    assert killed.returncode == -9
    writes = []
    real = files.write_atomically

    def recording(path, write, point=None):
        def keep(target):
            write(target)
            writes.append((Path(path).name, Path(target).read_bytes()))
        real(path, keep, point)

    monkeypatch.setattr(files, "write_atomically", recording)
    before = {p: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}
    write_reports([folder], tmp_path / "results", "emrun report")
    names = [name for name, _ in writes]
    assert names.count("report.md") == 1 and names.count("verdicts.json") == 1 and names.count("REPORT.md") == 1
    report = dict(writes)["report.md"].decode()
    assert report.count("**Incomplete: 2 of 4 planned batches are stored**") == 2  # under the title, in Completeness
    assert report.count("## Completeness") == 1
    # Every file the report changed went through the atomic writer.
    changed = {p.name for p in folder.iterdir() if p.is_file() and before.get(p) != p.stat().st_mtime_ns}
    assert changed <= set(names) and "report.md" in changed


@pytest.mark.slow
def test_a_report_killed_before_the_index_leaves_status_saying_so(tmp_path):
    (tmp_path / "tiny.yaml").write_text(SMALL.replace("runs: 3", "runs: 3\ntruths: 2"))
    emrun("sweep", "tiny.yaml", "--quiet", "--workers", "1", cwd=tmp_path, env={"EMRUN_TEST_KILL_AT": "batch_written:2"},
          check=False)
    emrun("report", cwd=tmp_path)
    assert "Incomplete" in (tmp_path / "results" / "REPORT.md").read_text()
    emrun("sweep", "tiny.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    killed = emrun("report", cwd=tmp_path, env={"EMRUN_TEST_KILL_AT": "report_written:1"}, check=False)
    assert killed.returncode == -9 and "Incomplete" in (tmp_path / "results" / "REPORT.md").read_text()
    status = emrun("status", cwd=tmp_path).stdout
    assert "results/REPORT.md is behind the folders' verdicts.json" in status
    emrun("report", cwd=tmp_path)
    assert "behind" not in emrun("status", cwd=tmp_path).stdout


def test_a_batch_file_stored_under_another_batchs_name_is_left_out_and_run_again(tmp_path):
    folder = swept(tmp_path, SMALL.replace("runs: 3", "runs: 3\ntruths: 2"))
    rows = load_results(folder).drop(columns=list(TIMING_COLUMNS))
    files_ = sorted((folder / "batches").iterdir())
    shutil.copy(files_[0], files_[1])  # valid checksums, this config's hash, another batch's rows
    status = emrun("status", cwd=tmp_path).stdout
    assert f"left out: {files_[1].name}: holds rows of batch {files_[0].stem}, not of its file name" in status
    with pytest.warns(UserWarning, match="not of its file name"):
        assert len(load_results(folder)) == len(rows) - 3
    resumed = emrun("sweep", "tiny.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    assert "1 run now" in resumed.stdout
    again = load_results(folder).drop(columns=list(TIMING_COLUMNS))
    assert again.equals(rows)


def test_status_from_another_folder_compares_with_the_config_file_the_sweep_used(tmp_path):
    swept(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "tiny.yaml").write_text(SMALL.replace("seed: 3", "seed: 4"))  # same relative name, other config
    status = emrun("status", str(tmp_path / "results"), cwd=elsewhere).stdout
    assert f"matches {tmp_path / 'tiny.yaml'}" in status and "DIFFERS" not in status and "--replace" not in status
    (tmp_path / "tiny.yaml").write_text(SMALL.replace("runs: 3", "runs: 4"))
    status = emrun("status", str(tmp_path / "results"), cwd=elsewhere).stdout
    assert "DIFFERS" in status and f"(from {tmp_path})" in status


@pytest.mark.slow
def test_a_plan_too_large_to_build_is_refused_and_a_manifest_asking_for_one_is_damaged(tmp_path):
    config = SMALL.replace("runs: 3", "runs: 1\ntruths: 3000000").replace("max_iter: 300", "max_iter: 1")
    (tmp_path / "tiny.yaml").write_text(config)
    dry = emrun("sweep", "tiny.yaml", "--dry-run", cwd=tmp_path)
    assert "a sweep would refuse it" in dry.stdout
    refused = emrun("sweep", "tiny.yaml", "--quiet", cwd=tmp_path, check=False, timeout=60)
    assert refused.returncode == 2 and "plans up to 6,000,000 batches, more than the 1,000,000" in refused.stderr
    assert not (tmp_path / "results").exists() and "Traceback" not in refused.stderr
    folder = swept(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["config"]["truths"] = 1e9
    (folder / "manifest.json").write_text(json.dumps(manifest))
    for command in (("status",), ("report", str(folder)), ("replay", f"tiny/{manifest['config']['name']}/0")):
        result = emrun(*command, cwd=tmp_path, check=False, timeout=60)
        assert result.returncode in (1, 2) and "is damaged" in result.stderr and "Traceback" not in result.stderr
    from emrun.config import config_hash  # whoever edits a manifest can hash it again: the plan is still bounded

    manifest["config_hash"] = config_hash(manifest["config"])
    (folder / "manifest.json").write_text(json.dumps(manifest))
    for command in (("status",), ("report", str(folder))):
        result = emrun(*command, cwd=tmp_path, check=False, timeout=60)
        assert result.returncode == 1 and "is damaged" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["a" * 256, "é" * 150, "--replace", "٣٤", "-x"])
def test_a_name_the_file_system_cannot_hold_or_that_reads_as_an_option_is_refused(tmp_path, name):
    (tmp_path / "bad.yaml").write_text(SMALL.replace("name: tiny", f"name: '{name}'"))
    result = emrun("sweep", "bad.yaml", "--quiet", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "'name' must be ASCII letters" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "results").exists()


def test_rows_rewritten_with_valid_checksums_are_left_out_when_k_contradicts_the_weights(tmp_path):
    folder = swept(tmp_path)
    path = sorted((folder / "batches").glob("*gd*"))[0]
    table = pq.read_table(path)
    rows = table.to_pandas()
    rows["k_cluster"] = ~rows["k_cluster"]
    forged = pa.Table.from_pandas(rows, preserve_index=False).replace_schema_metadata(table.schema.metadata)
    pq.write_table(forged, path, write_page_checksum=True)
    status = emrun("status", cwd=tmp_path).stdout
    assert f"left out: {path.name}: has a row" in status and "contradict its weights" in status


def test_a_device_as_a_config_or_plugin_and_a_huge_sample_are_one_line(tmp_path):
    for args in (("sweep", "/dev/zero", "--dry-run"), ("sweep", "tiny.yaml", "--dry-run")):
        if args[1] == "tiny.yaml":
            (tmp_path / "tiny.yaml").write_text(SMALL.replace("name: tiny", "name: tiny\nplugins: [/dev/zero]"))
            args = (*args, "--run-plugins")
        result = emrun(*args, cwd=tmp_path, check=False, timeout=60)
        assert result.returncode == 2 and "not a regular file" in result.stderr, result.stderr
        assert "MemoryError" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    (tmp_path / "tiny.yaml").write_text(SMALL.replace("data: population", "data: {samples: 100000000000}"))
    result = emrun("sweep", "tiny.yaml", "--dry-run", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "'data.samples' = 100,000,000,000" in result.stderr and "GiB" in result.stderr


def test_write_atomically_flushes_the_file_and_its_folder_before_and_after_the_rename(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda descriptor: (synced.append(os.readlink(f"/proc/self/fd/{descriptor}")),
                                                          real(descriptor)))
    files.write_atomically(tmp_path / "x.json", lambda target: target.write_text("{}"))
    assert (tmp_path / "x.json").read_text() == "{}"
    assert len(synced) == 2 and synced[0].endswith(".tmp") and synced[1] == str(tmp_path)
