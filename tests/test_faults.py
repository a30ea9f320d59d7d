"""Reliability, second round: partial results never pass as complete, no mislabelled or silently
corrupted row, no traceback on any input, locks and provenance that survive faults. Each test
drives the real CLI; faults are injected by environment variables (emrun/faults.py)."""

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from emrun.results import load_results
from emrun.store import TIMING_COLUMNS
from tests.conftest import TINY, emrun

SIXTEEN = TINY.replace("runs: 6", "runs: 4\ntruths: 2")  # 8 cells x 2 truths = 16 batches


def rows(folder):
    return load_results(folder).drop(columns=list(TIMING_COLUMNS))


def write(tmp_path: Path, text: str, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def no_traceback(result) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr


# 1 ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_partial_sweep_is_reported_as_incomplete_at_the_top_in_its_verdicts_and_in_the_index(tmp_path):
    config = write(tmp_path, SIXTEEN)
    killed = emrun("sweep", str(config), "--quiet", "--workers", "1", cwd=tmp_path,
                   env={"EMRUN_TEST_KILL_AT": "batch_written:6"}, check=False)
    assert killed.returncode == -9
    reported = emrun("report", cwd=tmp_path)
    no_traceback(reported)
    report = (tmp_path / "results" / "tiny" / "report.md").read_text()
    head = "\n".join(report.splitlines()[:4])
    assert "Incomplete: 6 of 16 planned batches are stored" in head
    index = (tmp_path / "results" / "REPORT.md").read_text()
    assert "Incomplete: 6 of 16 planned batches stored" in index
    verdicts = json.loads((tmp_path / "results" / "tiny" / "verdicts.json").read_text())
    assert verdicts["complete"] is False and verdicts["stored_batches"] == 6 and verdicts["planned_batches"] == 16


# 2 ---------------------------------------------------------------------------------------------

def test_a_given_init_with_another_m_or_D_than_the_grid_is_refused(tmp_path):
    three = "{pi: [0.2, 0.3, 0.5], mu: [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]}"
    config = write(tmp_path, f"""\
name: given
seed: 1
grid: {{m: [2], D: [2], algorithm: [em], init: [given]}}
runs: 1
init_options: {{given: [{three}]}}
""")
    refused = emrun("sweep", str(config), "--quiet", cwd=tmp_path, check=False)
    no_traceback(refused)
    assert refused.returncode == 2 and "init_options.given[0]" in refused.stderr and "grid.m" in refused.stderr
    assert not (tmp_path / "results").exists()
    wrong_d = config.read_text().replace("D: [2]", "D: [3]").replace(three, "{pi: [0.5, 0.5], mu: [[0.1, 0.2], [0.3, 0.4]]}")
    config.write_text(wrong_d)
    refused = emrun("sweep", str(config), "--quiet", cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "grid.D" in refused.stderr


# 3, 4 ------------------------------------------------------------------------------------------

def _damage(folder: Path, how: str) -> Path:
    victim = sorted((folder / "batches").glob("*gd*.parquet"))[0]
    if how == "old_schema":
        table = pq.read_table(victim)
        pq.write_table(table.drop(["k_cluster"]), victim)
    else:  # bit rot: 200 flipped bytes inside the first data page of a list column
        data = bytearray(victim.read_bytes())
        column = pq.ParquetFile(victim).metadata.row_group(0).column(
            pq.ParquetFile(victim).schema_arrow.get_field_index("init_mu"))
        start = column.data_page_offset + 40
        for i in range(start, start + 200):
            data[i] ^= 0x5A
        victim.write_bytes(bytes(data))
    return victim


@pytest.mark.slow
@pytest.mark.parametrize("how", ["old_schema", "bit_rot"])
def test_a_damaged_batch_is_listed_by_report_and_status_and_only_the_sweep_sets_it_aside(tmp_path, how):
    config = write(tmp_path, SIXTEEN)
    emrun("sweep", str(config), "--quiet", cwd=tmp_path)
    folder = tmp_path / "results" / "tiny"
    before = rows(folder)
    victim = _damage(folder, how)
    reported = emrun("report", cwd=tmp_path)
    no_traceback(reported)
    assert victim.name in reported.stderr and victim.exists()  # listed, not moved: a report never moves files
    report = (folder / "report.md").read_text()
    assert "Incomplete: 15 of 16 planned batches are stored" in report and victim.name in report
    status = emrun("status", "--configs", str(tmp_path), cwd=tmp_path)
    assert victim.name in status.stdout and "15 stored, 1 pending of 16 planned" in status.stdout and victim.exists()
    resumed = emrun("sweep", str(config), "--quiet", cwd=tmp_path)
    assert "set_aside" in resumed.stderr and "1 run now" in resumed.stdout and victim.name not in os.listdir(folder)
    pd.testing.assert_frame_equal(before, rows(folder))


def test_batches_written_before_page_checksums_are_read_and_listed_as_unverified(tmp_path):
    config = write(tmp_path, TINY)
    emrun("sweep", str(config), "--quiet", cwd=tmp_path)
    folder = tmp_path / "results" / "tiny"
    old = sorted((folder / "batches").glob("*.parquet"))[0]
    table = pq.read_table(old)
    metadata = {k: v for k, v in (table.schema.metadata or {}).items() if k != b"emrun.page_checksums"}
    pq.write_table(table.replace_schema_metadata(metadata), old)  # as an emrun before page checksums wrote it
    status = emrun("status", "--configs", str(tmp_path), cwd=tmp_path)
    assert "1 file(s) without page checksums" in status.stdout
    assert len(load_results(folder)) == 8 * 6


# 5, 6 ------------------------------------------------------------------------------------------

ALWAYS_RAISES = """\
from emrun.plugins import register_algorithm


class Broken:
    name = "broken"
    requires = "gradient"
    hyperparameters = {"step": 0.02}
    stopping = {"max_iter": 10, "tol": 1e-7}

    def start(self, problem, pi, mu, params):
        return {}

    def update(self, problem, pi, mu, state, params):
        raise ArithmeticError("always")


register_algorithm(Broken())
"""


def test_infinite_or_huge_numbers_are_refused_and_a_folder_where_every_trial_failed_reports(tmp_path):
    config = write(tmp_path, TINY)
    for setting in ("grid.step=[.inf]", "stopping.em.tol=.inf", "stopping.gd.max_iter=100000000000000000000",
                    "runs=.nan"):
        refused = emrun("sweep", str(config), "--quiet", "--set", setting, cwd=tmp_path, check=False)
        no_traceback(refused)
        assert refused.returncode == 2 and "(--set)" in refused.stderr, setting
    (tmp_path / "broken.py").write_text(ALWAYS_RAISES)
    failing = write(tmp_path, TINY.replace("name: tiny", "name: failing\nplugins: [broken.py]").replace(
        "algorithm: [em, gd]", "algorithm: [broken]").replace("  em: {max_iter: 300, tol: 1.0e-5}\n", "").replace(
        "gd: {max_iter: 300, tol: 1.0e-7}", "broken: {max_iter: 300}"), "failing.yaml")
    swept = emrun("sweep", str(failing), "--quiet", cwd=tmp_path, check=False)
    no_traceback(swept)
    assert swept.returncode == 1 and "24 trials failed" in swept.stderr
    for command in (("status", "--run-plugins", "--configs", str(tmp_path)), ("report", "--run-plugins")):
        result = emrun(*command, cwd=tmp_path)
        no_traceback(result)
    assert "**24 failed trials**" in (tmp_path / "results" / "failing" / "report.md").read_text()


def test_report_while_only_some_algorithms_have_batches(tmp_path):
    config = write(tmp_path, SIXTEEN)
    emrun("sweep", str(config), "--quiet", "--workers", "1", cwd=tmp_path,
          env={"EMRUN_TEST_KILL_AT": "batch_written:2"}, check=False)
    stored = {p.name.split("-")[2] for p in (tmp_path / "results" / "tiny" / "batches").glob("*.parquet")}
    assert stored == {"em"}  # EM's batches are the costliest, so they run first
    reported = emrun("report", cwd=tmp_path)
    no_traceback(reported)
    assert "Incomplete: 2 of 16" in (tmp_path / "results" / "tiny" / "report.md").read_text()


# 7 ---------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "random bytes", "{}", "[]", "no config"])
def test_a_damaged_manifest_costs_one_line_spares_the_other_folders_and_is_rebuilt_by_the_sweep(tmp_path, damage):
    config = write(tmp_path, TINY)
    other = write(tmp_path, TINY.replace("name: tiny", "name: other"), "other.yaml")
    for path in (config, other):
        emrun("sweep", str(path), "--quiet", cwd=tmp_path)
    manifest = tmp_path / "results" / "tiny" / "manifest.json"
    text = manifest.read_text()
    manifest.write_text({"truncated": text[:40], "random bytes": "\x8f\x00\x13garbage", "{}": "{}", "[]": "[]",
                         "no config": json.dumps({"config_hash": "x", "sweeps": []})}[damage])
    for command in (("status", "--configs", str(tmp_path)), ("report",)):
        result = emrun(*command, cwd=tmp_path, check=False)
        no_traceback(result)
        assert result.returncode == 1 and "results/tiny/manifest.json" in result.stderr
        assert len([line for line in result.stderr.splitlines() if "manifest.json" in line]) == 1
    assert "other (config hash" in emrun("status", "--configs", str(tmp_path), cwd=tmp_path, check=False).stdout
    assert (tmp_path / "results" / "other" / "report.md").exists()
    rebuilt = emrun("sweep", str(config), "--quiet", cwd=tmp_path)
    assert "0 run now" in rebuilt.stdout and "rebuilt" in rebuilt.stderr and "--replace" not in rebuilt.stderr
    assert json.loads(manifest.read_text())["config"]["name"] == "tiny"


# 8 ---------------------------------------------------------------------------------------------

BOMB = """\
a: &a [x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


@pytest.mark.parametrize("text,words", [
    (TINY + BOMB, ["alias"]),
    (TINY + "loop: &loop [*loop]\n", ["alias"]),
    (TINY.replace("seed: 3", "seed: !!python/object/apply:os.system [echo hi]"), ["seed"]),
    (TINY.replace("seed: 3", "seed: 3\nseed: 4"), ["'seed'", "twice"]),
    (TINY.replace("data: population", "data: population\ntruths: [{pi: [true, false], mu: [[0.1, 0.2], [0.3, 0.4]]}]")
     .replace("m: [2, 3]", "m: [2]").replace("D: [2, 3]", "D: [2]"), ["truths[0].pi"]),
])
def test_hostile_yaml_gives_one_line_quickly(tmp_path, text, words):
    config = write(tmp_path, text)
    started = time.perf_counter()
    result = emrun("sweep", str(config), "--quiet", cwd=tmp_path, check=False, timeout=60)
    assert time.perf_counter() - started < 30
    no_traceback(result)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    for word in words:
        assert word in result.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("setting", ["runs=[", "grid={m: [2]", "=3", "runs=!!python/name:os.system"])
def test_a_bad_set_value_is_one_line(tmp_path, setting):
    result = emrun("sweep", str(write(tmp_path, TINY)), "--set", setting, cwd=tmp_path, check=False)
    no_traceback(result)
    assert result.returncode == 2 and "--set" in result.stderr and len(result.stderr.strip().splitlines()) == 1


# 9 ---------------------------------------------------------------------------------------------

def test_a_huge_plan_is_counted_not_built_and_a_costly_sweep_needs_an_explicit_flag(tmp_path):
    config = write(tmp_path, TINY)
    started = time.perf_counter()
    dry = emrun("sweep", str(config), "--dry-run", "--set", "truths=1000000000", cwd=tmp_path, timeout=60)
    assert time.perf_counter() - started < 20 and "8000000000 batches" in dry.stdout
    refused = emrun("sweep", str(config), "--quiet", "--set", "runs=1000000000", cwd=tmp_path, check=False)
    no_traceback(refused)
    assert refused.returncode == 2 and "--allow-long" in refused.stderr and "estimated" in refused.stderr
    assert not (tmp_path / "results").exists()


# 10 --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("point,code", [("lock:ENOSPC", "No space left"), ("manifest:ENOSPC", "No space left"),
                                        ("lock:EROFS", "Read-only file system"), ("lock:EACCES", "Permission denied")])
def test_a_full_or_read_only_disk_at_any_write_is_one_line_and_leaves_no_lock(tmp_path, point, code):
    config = write(tmp_path, TINY)
    result = emrun("sweep", str(config), "--quiet", cwd=tmp_path, env={"EMRUN_TEST_OSERROR": point}, check=False)
    no_traceback(result)
    assert result.returncode == 1 and code in result.stderr and "resume" in result.stderr
    assert not (tmp_path / "results" / "tiny" / ".lock").exists()
    emrun("sweep", str(config), "--quiet", cwd=tmp_path)  # after the space is back: resumes


def test_report_on_a_missing_or_empty_folder_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    for folder in ("missing", "empty"):
        result = emrun("report", folder, cwd=tmp_path, check=False)
        no_traceback(result)
        assert result.returncode == 2 and folder in result.stderr


# 11 --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_killed_local_pool_worker_has_its_batches_run_again(tmp_path):
    config = write(tmp_path, TINY)
    marker = tmp_path / "killed-once"
    result = emrun("sweep", str(config), "--quiet", "--workers", "2", cwd=tmp_path,
                   env={"EMRUN_TEST_KILL_WORKER": f"m3-D3-gd-step0.05-uniform-truth0:{marker}"}, check=False)
    no_traceback(result)
    assert marker.exists() and result.returncode == 0, result.stderr
    assert "8 of 8 batches stored" in result.stdout and "worker" in result.stderr
    emrun("sweep", str(config), "--quiet", "--results", "clean", cwd=tmp_path)
    pd.testing.assert_frame_equal(rows(tmp_path / "clean" / "tiny"), rows(tmp_path / "results" / "tiny"))


# 12 --------------------------------------------------------------------------------------------

def test_a_lock_held_by_a_live_process_that_is_not_emrun_is_taken_over(tmp_path):
    config = write(tmp_path, TINY)
    folder = tmp_path / "results" / "tiny"
    folder.mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (folder / ".lock").write_text(json.dumps({"pid": sleeper.pid, "host": platform.node(), "since": "then",
                                                  "command": "emrun sweep x"}))
        taken = emrun("sweep", str(config), "--quiet", cwd=tmp_path)
        assert "taking over the stale lock" in taken.stderr and "not an emrun process" in taken.stderr
    finally:
        sleeper.kill()


def test_two_sweeps_cannot_both_take_over_one_stale_lock(tmp_path):
    config = write(tmp_path, TINY)
    folder = tmp_path / "results" / "tiny"
    folder.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (folder / ".lock").write_text(json.dumps({"pid": int(dead.stdout), "host": platform.node(), "since": "then",
                                              "command": "emrun sweep x"}))
    env = {**os.environ, "EMRUN_TEST_PAUSE_AT": "lock_takeover:4"}
    first = subprocess.Popen([sys.executable, "-m", "emrun.cli", "sweep", str(config), "--quiet"], cwd=tmp_path,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)  # the first holds the takeover, paused inside it
    second = emrun("sweep", str(config), "--quiet", cwd=tmp_path, check=False)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second.returncode == 2 and "another emrun sweep" in second.stderr


# 13 --------------------------------------------------------------------------------------------

def test_every_sweep_is_recorded_when_it_starts_even_if_it_is_killed_or_the_manifest_is_deleted(tmp_path):
    config = write(tmp_path, SIXTEEN)
    history = tmp_path / "results" / "tiny" / "sweeps.json"
    emrun("sweep", str(config), "--quiet", "--workers", "1", cwd=tmp_path,
          env={"EMRUN_TEST_KILL_AT": "batch_written:3"}, check=False)
    sweeps = json.loads(history.read_text())["sweeps"]
    assert len(sweeps) == 1 and sweeps[0]["state"] == "running"
    emrun("sweep", str(config), "--quiet", "--workers", "1", cwd=tmp_path,
          env={"EMRUN_TEST_DELETE_MANIFEST_AT": "batch_written:2"})
    assert (history.parent / "manifest.json").exists()
    sweeps = json.loads(history.read_text())["sweeps"]
    assert [s["state"] for s in sweeps] == ["killed", "finished"] and sweeps[1]["batches_completed"] == 13


@pytest.mark.slow
def test_a_manifest_written_at_the_base_commit_is_read(tmp_path):
    old = Path(__file__).parent / "data" / "manifest_6e00ee4.json"
    folder = tmp_path / "results" / "tiny"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(old.read_text())
    config = write(tmp_path, TINY)
    swept = emrun("sweep", str(config), "--quiet", cwd=tmp_path)
    assert "8 of 8 batches stored" in swept.stdout
    assert len(json.loads((folder / "sweeps.json").read_text())["sweeps"]) == 2
    assert "sweeps" not in json.loads((folder / "manifest.json").read_text())
    emrun("status", "--configs", str(tmp_path), cwd=tmp_path)
    emrun("report", cwd=tmp_path)
