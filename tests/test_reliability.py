"""Reliability guarantees, each reached deterministically through emrun.faults (never by timing):
kills anywhere, corrupt files, failed trials, concurrent sweeps, malformed configs, status, full disk."""

import json
import subprocess
import sys

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import emrun
from emrun.cli import main
from emrun.store import TIMING_COLUMNS
from tests.conftest import FIRST_K, TINY
from tests.conftest import emrun as run_emrun

# 8 cells x 5 truths = 40 small batches, traced, so every kill point below is reached.
MANY = TINY.replace("runs: 6", "runs: 4\ntruths: 5\nrecord: {quantities: [pi, loss], every: 50}")


def rows(folder):
    return emrun.load_results(folder).drop(columns=list(TIMING_COLUMNS))


def traces(folder):
    return emrun.load_traces(folder).sort_values(["batch_id", "run_index", "quantity", "iteration", "component"],
                                                 ignore_index=True)


KILL_POINTS = [  # (point:N, workers): at the N-th time the sweep process reaches the point
    ("manifest_temp:1", "1"), ("computing:1", "1"), ("computing:3", "2"), ("trace_written:1", "1"),
    ("trace_written:2", "2"), ("batch_temp:1", "1"), ("batch_temp:2", "2"), ("batch_written:1", "1"),
    ("batch_written:2", "2"), ("computing:2", "2"), ("trace_written:3", "1"), ("batch_temp:3", "1"),
    ("batch_written:3", "2"), ("computing:4", "1"), ("batch_temp:1", "2"), ("trace_written:1", "2"),
    ("batch_written:2", "1"), ("computing:1", "2"), ("batch_temp:2", "1"),
]


@pytest.mark.slow
def test_sigkill_at_twenty_points_then_resume_gives_the_same_rows_and_traces(tmp_path):
    config = tmp_path / "many.yaml"
    config.write_text(MANY.replace("name: tiny", "name: many"))
    run_emrun("sweep", str(config), "--quiet", "--results", "whole", cwd=tmp_path)
    folder = tmp_path / "cut" / "many"
    for point, workers in KILL_POINTS:
        killed = run_emrun("sweep", str(config), "--quiet", "--results", "cut", "--workers", workers, cwd=tmp_path,
                           env={"EMRUN_TEST_KILL_AT": point}, check=False)
        assert killed.returncode == -9, (point, killed.stdout, killed.stderr)  # the point was reached
    stored = len(list((folder / "batches").glob("*.parquet")))
    assert stored < 40
    # The 20th kill: during the manifest write at the end of a sweep that stored every batch (the
    # first manifest write of a sweep records its start).
    last = run_emrun("sweep", str(config), "--quiet", "--results", "cut", cwd=tmp_path,
                     env={"EMRUN_TEST_KILL_AT": "manifest_temp:2"}, check=False)
    assert last.returncode == -9
    resumed = run_emrun("sweep", str(config), "--quiet", "--results", "cut", cwd=tmp_path)
    assert "0 run now" in resumed.stdout and "taking over the stale lock" in resumed.stderr
    cut = rows(folder)
    assert not cut.duplicated(["batch_id", "run_index"]).any() and len(cut) == 40 * 4
    pd.testing.assert_frame_equal(rows(tmp_path / "whole" / "many"), cut)
    pd.testing.assert_frame_equal(traces(tmp_path / "whole" / "many"), traces(folder))
    assert not list(folder.rglob(".*.tmp")) and not (folder / ".lock").exists()
    assert json.loads((folder / "sweeps.json").read_text())["sweeps"][-1]["batches_completed"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "empty", "other_config"])
def test_damaged_batch_file_is_listed_at_report_and_set_aside_at_resume_and_rerun(tiny_config, damage):
    cwd = tiny_config.parent
    run_emrun("sweep", str(tiny_config), "--quiet", cwd=cwd)
    folder = cwd / "results" / "tiny"
    before = rows(folder)
    victims = sorted((folder / "batches").glob("*.parquet"))[:2]
    for victim in victims:
        if damage == "truncated":
            victim.write_bytes(victim.read_bytes()[:200])
        elif damage == "empty":
            victim.write_bytes(b"")
        else:
            table = pq.read_table(victim)
            pq.write_table(table.replace_schema_metadata({b"emrun.config_hash": b"0123456789abcdef"}), victim)
    reported = run_emrun("report", cwd=cwd)  # at report time: left out, said, counted as missing; never moved
    assert reported.stderr.count("is left out of the report") == 2 and "Traceback" not in reported.stderr
    assert "**Incomplete: 6 of 8 planned batches are stored**" in (folder / "report.md").read_text()
    assert not (folder / "set_aside").exists() and all(victim.exists() for victim in victims)
    resumed = run_emrun("sweep", str(tiny_config), "--quiet", cwd=cwd)  # the sweep sets them aside and re-runs
    assert "2 run now" in resumed.stdout and len(list((folder / "set_aside").iterdir())) == 2
    pd.testing.assert_frame_equal(before, rows(folder))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["raise", "nan"])
def test_failed_trial_is_recorded_counted_and_retried_alone(tiny_config, kind):
    cwd = tiny_config.parent
    run_emrun("sweep", str(tiny_config), "--quiet", "--results", "clean", cwd=cwd)
    batch = "m3-D3-gd-step0.05-uniform-truth0"
    failing = run_emrun("sweep", str(tiny_config), "--quiet", "--workers", "2", cwd=cwd,
                        env={"EMRUN_TEST_FAULT": f"{kind}:{batch}:2"}, check=False)
    assert failing.returncode == 1 and "Traceback" not in failing.stderr
    assert f"failed trial: {batch}/2" in failing.stderr and "0 batches and 1 trials failed" in failing.stderr
    assert "8 of 8 batches stored" in failing.stdout  # the sweep went on
    folder = cwd / "results" / "tiny"
    stored = emrun.load_results(folder)
    failed = stored[stored["status"] == "failed"]
    assert len(failed) == 1 and failed.iloc[0]["run_index"] == 2 and failed.iloc[0]["init_seed"]
    assert ("RuntimeError" if kind == "raise" else "NaN state") in failed.iloc[0]["error"]
    status = run_emrun("status", cwd=cwd)
    assert "failed 1" in status.stdout
    run_emrun("report", cwd=cwd)
    report = (folder / "report.md").read_text()
    assert "**1 failed trials**" in report and f"{batch}/2" in report
    cells = pd.read_csv(folder / "cells.csv")
    assert cells.loc[(cells["m"] == 3) & (cells["D"] == 3) & (cells["algorithm"] == "gd"), "runs"].item() == 5

    retried = run_emrun("sweep", str(tiny_config), "--quiet", cwd=cwd)
    assert "1 run now" in retried.stdout
    after = emrun.load_results(folder)
    # Only the failed trial ran again: its batch companions keep their rows, timing included.
    def companions(r):  # (the error column is all null either way, typed differently)
        return r[(r["batch_id"] == batch) & (r["run_index"] != 2)].drop(columns="error").reset_index(drop=True)

    pd.testing.assert_frame_equal(companions(stored), companions(after))
    pd.testing.assert_frame_equal(rows(cwd / "clean" / "tiny"), after.drop(columns=list(TIMING_COLUMNS)))


def test_second_sweep_on_a_locked_folder_is_refused_and_a_stale_lock_is_taken_over(tiny_config):
    cwd = tiny_config.parent
    folder = cwd / "results" / "tiny"
    folder.mkdir(parents=True)
    import platform

    # A live process whose command line names emrun stands in for a running sweep.
    sweep = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "emrun-sweep-stand-in"])
    live = {"pid": sweep.pid, "host": platform.node(), "since": "now", "command": "emrun sweep other"}
    (folder / ".lock").write_text(json.dumps(live))
    try:
        refused = run_emrun("sweep", str(tiny_config), "--quiet", cwd=cwd, check=False)
    finally:
        sweep.kill()
    assert refused.returncode == 2 and f"pid {sweep.pid}" in refused.stderr and "Traceback" not in refused.stderr
    assert not (folder / "batches").exists() or not list((folder / "batches").iterdir())
    assert json.loads((folder / ".lock").read_text()) == live  # the owner's lock is left alone

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (folder / ".lock").write_text(json.dumps({**live, "pid": int(dead.stdout)}))
    taken = run_emrun("sweep", str(tiny_config), "--quiet", cwd=cwd)
    assert "taking over the stale lock" in taken.stderr and "8 of 8 batches stored" in taken.stdout
    assert not (folder / ".lock").exists()


def test_full_disk_stops_the_sweep_without_marking_the_batch_done(tiny_config):
    cwd = tiny_config.parent
    full = run_emrun("sweep", str(tiny_config), "--quiet", "--workers", "1", cwd=cwd,
                     env={"EMRUN_TEST_DISK_FULL": "3"}, check=False)
    assert full.returncode == 1 and "No space left on device" in full.stderr and "resume" in full.stderr
    assert "Traceback" not in full.stderr
    folder = cwd / "results" / "tiny"
    assert len(list((folder / "batches").glob("*.parquet"))) == 2
    assert not list(folder.rglob(".*.tmp")) and not (folder / ".lock").exists()
    run_emrun("sweep", str(tiny_config), "--quiet", cwd=cwd)
    run_emrun("sweep", str(tiny_config), "--quiet", "--results", "clean", cwd=cwd)
    pd.testing.assert_frame_equal(rows(cwd / "clean" / "tiny"), rows(folder))


@pytest.mark.slow
def test_status_and_report_explain_missing_or_old_results(tiny_config):
    cwd = tiny_config.parent
    for command in (("status",), ("report",)):
        empty = run_emrun(*command, cwd=cwd, check=False)
        assert empty.returncode == 2 and "no results under results/" in empty.stderr and "emrun.cli sweep CONFIG" in empty.stderr
    run_emrun("sweep", str(tiny_config), "--quiet", "--set", "truths=2", cwd=cwd)
    status = run_emrun("status", "--configs", str(cwd), cwd=cwd)
    # Swept with --set: the folder matches the file and overrides it came from (test_committed has a mismatch).
    assert "16 stored, 0 pending of 16 planned" in status.stdout and "tiny.yaml with --set truths=2" in status.stdout
    # A results folder itself, or the root given as --results (as report and sweep take it), say the same.
    assert run_emrun("status", "results/tiny", "--configs", str(cwd), cwd=cwd).stdout == status.stdout
    assert run_emrun("status", "--results", "results", "--configs", str(cwd), cwd=cwd).stdout == status.stdout
    missing = run_emrun("status", "results/other", cwd=cwd, check=False)
    assert missing.returncode == 2 and "results/other does not exist" in missing.stderr
    # Rows written by an older emrun (no status column): the report says so and what to run.
    folder = cwd / "results" / "tiny"
    for path in (folder / "batches").glob("*.parquet"):
        table = pq.read_table(path)
        pq.write_table(table.drop(["status"]), path)
    old = run_emrun("report", cwd=cwd, check=False)
    assert old.returncode == 1 and "older emrun" in old.stderr and "--replace" in old.stderr


BASE = yaml.safe_load(TINY)
WRONG = st.one_of(st.text(max_size=5), st.floats(allow_nan=False), st.none(), st.booleans(),
                  st.lists(st.text(max_size=3), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
MUTATIONS = st.one_of(
    st.tuples(st.just("seed"), st.one_of(st.text(max_size=5), st.floats(), st.none(), st.integers(max_value=-1))),
    st.tuples(st.just("grid.m"), st.one_of(st.just([]), st.lists(st.integers(-3, 1), min_size=1, max_size=2), WRONG)),
    st.tuples(st.just("grid.D"), st.one_of(st.just([]), st.just([17]), st.just([0]), st.just([4000]), WRONG)),
    st.tuples(st.just("grid.step"), st.one_of(st.just([]), st.lists(st.floats(-5, 0), min_size=1, max_size=2))),
    st.tuples(st.just("grid.algorithm"), st.one_of(st.just([]), st.just(["sgd"]), st.just(["em", "em"]))),
    st.tuples(st.just("runs"), st.one_of(st.integers(max_value=0), st.text(max_size=3), st.just({"sgd": 1}))),
    st.tuples(st.just("data"), st.one_of(st.just("sample"), st.just({"samples": 0}), st.just({"n": 5}), st.integers())),
    st.tuples(st.just("stopping.em.tol"), st.one_of(st.floats(max_value=0), st.text(max_size=3))),
    st.tuples(st.sampled_from(["colour", "grid.colour", "stopping.em.colour"]), st.integers()),
    st.tuples(st.just("model"), st.text(max_size=6).filter(lambda t: t not in ("bernoulli", "gaussian"))),
)


def _mutated(path: str, value) -> dict:
    config = json.loads(json.dumps(BASE))
    *parents, last = path.split(".")
    target = config
    for key in parents:
        target = target.setdefault(key, {})
    target[last] = value
    return config


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=MUTATIONS)
def test_malformed_configs_give_one_clear_error_and_write_nothing(tmp_path, mutation):
    path, value = mutation
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(_mutated(path, value), sort_keys=False))
    result = CliRunner().invoke(main, ["sweep", str(config), "--results", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 2, (path, value, result.output)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    message = result.output.strip()
    assert message.count("\n") == 0 and message.startswith(f"emrun: error: {config}:"), message
    assert path.split(".")[-1] in message or path in message, message
    assert not (tmp_path / "out").exists()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=st.integers(0, 12), junk=st.sampled_from(["grid: [", "  - : :", "\t m: 2", "{{", "name: [unclosed", "]"]))
def test_broken_yaml_names_the_file_and_line(tmp_path, line, junk):
    lines = TINY.splitlines()
    lines.insert(min(line, len(lines)), junk)
    config = tmp_path / "broken.yaml"
    config.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(main, ["sweep", str(config), "--results", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"emrun: error: {config}") and result.output.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_population_limit_is_stated_with_the_way_out(tmp_path):
    config = tmp_path / "big.yaml"
    config.write_text(TINY.replace("D: [2, 3]", "D: [20]"))
    result = CliRunner().invoke(main, ["sweep", str(config), "--dry-run"])
    assert result.exit_code == 2 and "at most 16" in result.output and "samples" in result.output


@settings(max_examples=200, deadline=None)
@given(costs=st.lists(st.floats(1e-6, 1e6), min_size=1, max_size=40), data=st.data())
def test_the_progress_bar_never_passes_its_total_whatever_the_costs_and_order(costs, data):
    # Costs summed in another order than the total used to overshoot it by a rounding error: tqdm
    # warned "clamping frac" and showed a negative time left.
    import warnings

    from emrun.runner import Progress, Task

    tasks = [Task(f"b{i}", print, (), cost) for i, cost in enumerate(costs)]
    done = {t.task_id for t in tasks if data.draw(st.booleans())}
    order = data.draw(st.permutations([t for t in tasks if t.task_id not in done]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        progress = Progress(tasks, done, "x", enabled=True)  # a disabled bar counts nothing
        for task in order:
            progress.advance(task)
            assert progress.bar.n <= progress.bar.total
        assert progress.bar.n == progress.bar.total
        progress.close()


@pytest.mark.parametrize("fault", ["nan", "raise"])
def test_an_adaptive_sweep_with_a_trial_that_always_fails_ends_and_says_so(tmp_path, fault):
    # Tables 3-4's protocol re-plans after every round; a trial that fails every time used to be
    # retried round after round without end.
    (tmp_path / "fk.yaml").write_text(FIRST_K)
    env = {"EMRUN_TEST_FAULT": f"{fault}:m3-D3-gd-step0.05-uniform-truth0:1"}
    result = run_emrun("sweep", "fk.yaml", "--quiet", "--workers", "1", cwd=tmp_path, env=env, check=False, timeout=240)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "trials failed" in result.stderr and "refused when read back" not in result.stderr


def test_an_adaptive_sweeps_progress_clock_runs_on_over_its_rounds():
    """Round two of a sweep shows the sweep's elapsed time, and round one's batches as work done."""
    import time

    from emrun.runner import Progress, Task

    tasks = [Task(f"b{i}", print, (), cost=1.0) for i in range(4)]
    started = time.time() - 100.0
    second_round = Progress(tasks, {"b0", "b1", "b2"}, "sweep", enabled=True, origin=(started, {"b0"}))
    assert second_round.bar.start_t == started
    assert second_round.bar.initial == 1_000_000 and second_round.bar.n == 3_000_000
    first_sweep = Progress(tasks, {"b0"}, "sweep", enabled=True)
    assert first_sweep.bar.initial == first_sweep.bar.n == 1_000_000
