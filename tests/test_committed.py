"""What a fresh clone gets: reports re-written from committed files equal the committed ones."""

import json
import sys

import pytest

from tests.conftest import TINY, emrun

ONE_TRUTH = TINY.replace("name: tiny", "name: one\ncompare_to: uai2019_table1\ncompanions: {many_truths: many}")
MANY_TRUTHS = TINY.replace("name: tiny", "name: many\ncompare_to: uai2019_table1") + "truths: 3\n"


@pytest.mark.slow
def test_a_report_reads_its_companion_from_the_committed_summary_when_the_rows_are_gone(tmp_path):
    for name, text in (("one", ONE_TRUTH), ("many", MANY_TRUTHS)):
        (tmp_path / f"{name}.yaml").write_text(text)
        emrun("sweep", str(tmp_path / f"{name}.yaml"), "--quiet", "--workers", "1", cwd=tmp_path)
    emrun("report", cwd=tmp_path)
    report = tmp_path / "results" / "one" / "report.md"
    with_rows = report.read_text()
    assert "The same claims over the 3 random truths per cell of `many`" in with_rows
    assert "How much one random truth moves a cell (`many`)" in with_rows
    summaries = tmp_path / "results" / "many" / "summaries"
    assert {p.name for p in summaries.iterdir()} == {"k_cluster_per_truth.json", "verdicts_for_one.json"}

    # A clone holds no rows: the committed summaries give the same report, byte for byte.
    for batch in (tmp_path / "results" / "many" / "batches").iterdir():
        batch.unlink()
    emrun("report", cwd=tmp_path)
    assert report.read_text() == with_rows

    # A summary written for other rows (or by other verdict code) is refused with one line, not used.
    path = summaries / "k_cluster_per_truth.json"
    path.write_text(path.read_text().replace(f'"verdict_code": {json.loads(path.read_text())["verdict_code"]}',
                                             '"verdict_code": 9999', 1))
    refused = emrun("report", cwd=tmp_path)
    assert "by verdict code 9999" in refused.stderr and "emrun sweep configs/many.yaml" in refused.stderr
    assert len([line for line in refused.stderr.splitlines() if "9999" in line]) == 1
    stale = report.read_text()
    assert "How much one random truth moves a cell" not in stale and "Traceback" not in refused.stderr


@pytest.mark.slow
def test_a_report_reads_only_the_companions_its_config_declares_and_only_of_its_protocol(tmp_path):
    undeclared = ONE_TRUTH.replace("companions: {many_truths: many}\n", "")
    other_protocol = MANY_TRUTHS.replace("name: many", "name: other").replace("seed: 3", "seed: 4")
    for name, text in (("one", undeclared), ("many", MANY_TRUTHS), ("other", other_protocol)):
        (tmp_path / f"{name}.yaml").write_text(text)
        emrun("sweep", str(tmp_path / f"{name}.yaml"), "--quiet", "--workers", "1", cwd=tmp_path)
    report = tmp_path / "results" / "one" / "report.md"
    emrun("report", cwd=tmp_path)
    assert "random truths per cell of `many`" not in report.read_text()  # the same protocol, but not declared

    # Declared, but run with another seed: not the same protocol, so not read as its many-truths run.
    (tmp_path / "one.yaml").write_text(undeclared.replace("name: one", "name: one\ncompanions: {many_truths: other}"))
    emrun("sweep", str(tmp_path / "one.yaml"), "--quiet", "--workers", "1", cwd=tmp_path)  # its report keys only
    emrun("report", cwd=tmp_path)
    assert "random truths per cell of `other`" not in report.read_text()

    (tmp_path / "one.yaml").write_text(ONE_TRUTH)
    emrun("sweep", str(tmp_path / "one.yaml"), "--quiet", "--workers", "1", cwd=tmp_path)
    emrun("report", cwd=tmp_path)
    assert "The same claims over the 3 random truths per cell of `many`" in report.read_text()


@pytest.mark.slow
def test_dry_run_status_and_list_say_what_is_stored_and_the_command_that_was_run(tmp_path):
    (tmp_path / "one.yaml").write_text(ONE_TRUTH)
    sweep = ["sweep", "one.yaml", "--quiet", "--workers", "1", "--results", "elsewhere", "--set", "runs=3"]
    before = emrun(*sweep[:2], "--dry-run", *sweep[5:], cwd=tmp_path).stdout
    assert "elsewhere/one: 0 batches stored; a sweep would run 8" in before
    emrun(*sweep, cwd=tmp_path)
    after = emrun(*sweep[:2], "--dry-run", *sweep[5:], cwd=tmp_path).stdout
    assert "elsewhere/one: 8 batches stored; a sweep would run 0" in after
    changed = emrun("sweep", "one.yaml", "--dry-run", "--results", "elsewhere", cwd=tmp_path).stdout
    assert "holds another version of this config" in changed

    # status compares the folder with the file and overrides it was swept from ...
    status = emrun("status", "elsewhere", cwd=tmp_path).stdout
    assert "matches one.yaml with --set runs=3" in status
    # ... and when the file changes, proposes the command that was run, with --replace.
    (tmp_path / "one.yaml").write_text(ONE_TRUTH.replace("seed: 3", "seed: 4"))
    status = emrun("status", "elsewhere", cwd=tmp_path).stdout
    # (The program as status was run: emrun when on PATH, here python -m emrun.cli.)
    assert (f"'{sys.executable} -m emrun.cli sweep one.yaml --quiet --workers 1 --results elsewhere --set runs=3 "
            "--replace' re-runs it") in status

    listed = emrun("list", "--configs", ".", "--results", "elsewhere", cwd=tmp_path).stdout
    assert "one (uai2019_table1; expected about " in listed and "another version stored" in listed
    assert "algorithm: em, gd (built in)" in listed and "experiment kind: grid" in listed


def test_the_readmes_times_are_what_the_committed_provenance_says():
    """One source for the times the README states: the table is written from results/*/provenance.json."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("readme_times", root / ".ci" / "readme_times.py")
    times = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(times)
    readme = (root / "README.md").read_text()
    assert times.replaced(readme, times.table(root)) == readme, "re-run: python3 .ci/readme_times.py --write"
    paper = times.makefile_configs((root / "Makefile").read_text())["paper"]
    assert "bmm_table1" in paper and "theory_gd_trap" in paper and len(paper) >= 18, "the Makefile is read"


def test_the_makefiles_comments_state_no_times():
    import re
    from pathlib import Path

    comments = [line for line in (Path(__file__).resolve().parents[1] / "Makefile").read_text().splitlines()
                if line.startswith("#")]
    assert not [line for line in comments if re.search(r"\b(minutes?|seconds?|hours?)\b", line)]
