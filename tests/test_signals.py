"""Stopping a sweep by signal (issue 30): Ctrl-C inside the compiled kernel with one worker,
SIGTERM and SIGHUP like Ctrl-C, exit status 128 + the signal everywhere, and the kernel run in
chunks that change no result. The sweeps drive the real CLI, signalled from outside as a terminal
or a scheduler would."""

import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from emrun.models import bernoulli as b
from tests.conftest import TINY, emrun
from tests.test_bernoulli import random_problem


def _run(data, pi, mu, algorithm, max_iter, tol, chunk, step=None, em_update="simultaneous", boundary="exact"):
    from emrun.algorithms import Problem

    problem = Problem(b, data, em_update, boundary)
    return b.KERNEL.run(problem, pi, mu, algorithm, {"step": step}, max_iter, tol, chunk=chunk)


@pytest.mark.parametrize("algorithm,step,em_update,boundary,tol", [
    ("em", None, "simultaneous", "exact", 1e-4), ("em", None, "ecm", "exact", 1e-4),
    ("em", None, "authors", "exact", 1e-4), ("gd", 0.5, "simultaneous", "exact", 1e-5),
    ("gd", 0.5, "simultaneous", "as_published", 1e-5)])
@pytest.mark.parametrize("samples", [0, 300])
def test_the_kernel_run_in_chunks_gives_the_bits_of_one_long_call(algorithm, step, em_update, boundary, tol, samples):
    data, pi, mu = random_problem(3, 4, 12, 17, samples)
    whole = _run(data, pi, mu, algorithm, 300, tol, 300, step, em_update, boundary)
    statuses = set(whole[3])
    # Trials converge (or diverge) in the middle of chunks and others are capped: lanes are handed over.
    assert "capped" in statuses and len(statuses) > 1, statuses
    for chunk in (1, 7, 64):
        parts = _run(data, pi, mu, algorithm, 300, tol, chunk, step, em_update, boundary)
        for got, expected in zip(parts, whole, strict=True):
            np.testing.assert_array_equal(got, expected)


def test_a_loss_increase_is_counted_across_a_chunk_boundary():
    # The start of tests/test_bernoulli.py's authors' EM whose loss rises at its second iteration:
    # with one iteration per call, the comparison is with the loss the call before returned.
    data = b.PatternSet(np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]), np.array([0.2, 0.8]))
    pi = np.array([[0.0320955453110559, 9.999990017533518e-07, 0.9653095962101699, 0.0025938584797725157]])
    mu = np.array([[[0.0001, 0.9681080178649106, 0.0001], [0.9913450107715981, 0.8213514866226732, 0.9999],
                    [0.7241389817373795, 0.9909490766809207, 0.9999],
                    [0.9333275181826143, 0.9970427034351972, 0.9017455488400362]]])
    whole, parts = (_run(data, pi, mu, "em", 500, 1e-12, chunk, em_update="authors") for chunk in (500, 1))
    assert list(whole[5]) == list(parts[5]) == [1]
    for got, expected in zip(parts, whole, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_the_default_chunk_is_bounded_work_and_at_least_one_iteration():
    from emrun.models.bernoulli_chunks import CHUNK_WORK, chunk_iterations

    assert chunk_iterations(1, 4, 2, 2, 1) == CHUNK_WORK // 16
    assert chunk_iterations(10_000, 65_536, 5, 16, 6) == 1


# A sweep whose compiled kernel has far more work than the time it is given: two batches of four
# EM trials, each running until it converges or reaches 2 million iterations (some do reach it).
LONG_KERNEL = """\
name: long
seed: 3
grid: {m: [3], D: [6], algorithm: [em]}
data: population
runs: 4
truths: 2
stopping:
  em: {max_iter: 2000000, tol: 1.0e-300}
"""


def _signals_at_their_defaults() -> None:
    """In the child: the signals a terminal or scheduler sends, at their default handlers. A test
    runner may ignore some (pytest-xdist's workers ignore SIGHUP), and an ignored signal stays
    ignored across exec: the sweep would then rightly keep running, as under nohup."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def _sweep_until(tmp_path: Path, signum: int, workers: str = "1", env: dict | None = None):
    """Start a real sweep of LONG_KERNEL, wait until its kernel has been called three times (it is
    then inside its chunk loop, almost always inside a call), signal it as a terminal or a
    scheduler would, and return (exit status, stderr, the results folder)."""
    (tmp_path / "long.yaml").write_text(LONG_KERNEL)
    marker = tmp_path / "kernel_running"
    command = [sys.executable, "-m", "emrun.cli", "sweep", "long.yaml", "--workers", workers, "--quiet"]
    full_env = {**os.environ, "EMRUN_TEST_MARK_AT": f"kernel_call:3:{marker}", **(env or {})}
    process = subprocess.Popen(command, cwd=tmp_path, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True,  # its own group: a group signal spares pytest
                               preexec_fn=_signals_at_their_defaults)
    while not marker.exists() and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=600)
    return process.returncode, stderr, tmp_path / "results" / "long"


def _stopped_cleanly(folder: Path, stderr: str) -> None:
    """Nothing stored of the kernel's unfinished work, the manifest not left running, no lock."""
    assert "Traceback" not in stderr, stderr
    assert not list((folder / "batches").glob("*.parquet")), "the kernel ran to its end"
    assert json.loads((folder / "sweeps.json").read_text())["sweeps"][-1]["state"] == "interrupted"
    assert not (folder / ".lock").exists()


def test_ctrl_c_inside_the_compiled_kernel_stops_a_one_worker_sweep(tmp_path):
    # Before chunking, the KeyboardInterrupt was raised inside numba's kernel and lost: the sweep
    # ran both batches (16 million trial-iterations at most) to the end and exited 0.
    status, stderr, folder = _sweep_until(tmp_path, signal.SIGINT)
    assert status == 130, stderr
    assert "Interrupted: 2 batches left. Resume with the same command:" in stderr
    _stopped_cleanly(folder, stderr)


@pytest.mark.slow
@pytest.mark.parametrize("signum,workers", [(signal.SIGTERM, "1"), (signal.SIGTERM, "2"), (signal.SIGHUP, "1")])
def test_sigterm_and_sighup_stop_a_sweep_as_ctrl_c_does(tmp_path, signum, workers):
    status, stderr, folder = _sweep_until(tmp_path, signum, workers)
    assert status == 128 + signum, stderr
    assert f"Interrupted by {signal.Signals(signum).name}: 2 batches left. Resume with the same command:" in stderr
    assert "leaked semaphore" not in stderr
    _stopped_cleanly(folder, stderr)


def test_a_terminal_ctrl_c_while_pool_workers_start_prints_no_worker_traceback(tmp_path):
    # A worker still starting (importing emrun, before its initializer can ignore SIGINT) sends SIGINT
    # to the whole process group, as a terminal's Ctrl-C would reach it and the sweep process.
    result = emrun("sweep", "tiny.yaml", "--workers", "2", "--quiet", cwd=_tiny(tmp_path), check=False,
                   env={"EMRUN_TEST_KILL_AT": "worker_starting:1:INT:GROUP"}, restore_sigint=True, new_session=True)
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr and "KeyboardInterrupt" not in result.stderr, result.stderr
    assert "Resume with the same command" in result.stderr


@pytest.mark.parametrize("point,command", [("starting", "sweep"), ("report_written", "report")])
def test_ctrl_c_during_start_up_or_a_report_exits_130_not_aborted(tmp_path, point, command):
    cwd = _tiny(tmp_path)
    if command == "report":
        emrun("sweep", "tiny.yaml", "--quiet", "--workers", "1", cwd=cwd)
    args = ["sweep", "tiny.yaml", "--quiet"] if command == "sweep" else ["report"]
    result = emrun(*args, cwd=cwd, check=False, env={"EMRUN_TEST_KILL_AT": f"{point}:1:INT"}, restore_sigint=True)
    assert result.returncode == 130, result.stderr
    assert "Aborted" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert "interrupted" in result.stderr.lower()


def _tiny(tmp_path: Path) -> Path:
    (tmp_path / "tiny.yaml").write_text(TINY)
    return tmp_path


@pytest.mark.parametrize("how", ["path", "on PATH", "module"])
def test_the_resume_hint_repeats_the_program_as_it_was_run_and_works_pasted(tmp_path, how):
    cwd = _tiny(tmp_path)
    bin_dir = Path(sys.executable).parent
    program = {"path": [str(bin_dir / "emrun")], "on PATH": ["emrun"], "module": [sys.executable, "-m", "emrun.cli"]}[how]
    env = {**os.environ, "EMRUN_TEST_KILL_AT": "batch_written:2:INT"}
    if how == "on PATH":
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    command = [*program, "sweep", "tiny.yaml", "--workers", "1", "--quiet"]
    stopped = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert stopped.returncode == 130, stopped.stderr
    printed = stopped.stderr.split("Resume with the same command: ")[1].splitlines()[0]
    assert printed == shlex.join(command)
    del env["EMRUN_TEST_KILL_AT"]
    resumed = subprocess.run(printed, shell=True, cwd=cwd, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0 and "8 of 8 batches stored" in resumed.stdout, resumed.stderr


def test_status_says_in_words_whether_a_locks_process_runs(tmp_path):
    cwd = _tiny(tmp_path)
    emrun("sweep", "tiny.yaml", "--quiet", "--workers", "1", cwd=cwd)
    lock = cwd / "results" / "tiny" / ".lock"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs
    recorded = {"pid": gone.pid, "host": platform.node(), "since": "2026-01-02T03:04:05+00:00",
                "command": shlex.join(["/somewhere/emrun", "sweep", "tiny.yaml", "--workers", "1"])}
    lock.write_text(json.dumps(recorded))
    status = emrun("status", cwd=cwd).stdout
    assert (f"lock: stale: pid {gone.pid} (since 2026-01-02T03:04:05+00:00) is gone; the same command resumes and "
            f"takes the lock over: {sys.executable} -m emrun.cli sweep tiny.yaml --workers 1") in status
    assert '{"pid"' not in status
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "emrun", "sweep"])
    try:
        lock.write_text(json.dumps({**recorded, "pid": alive.pid}))
        status = emrun("status", cwd=cwd).stdout
        assert f"lock: running, pid {alive.pid}, since 2026-01-02T03:04:05+00:00" in status
    finally:
        alive.kill()
        alive.wait()
