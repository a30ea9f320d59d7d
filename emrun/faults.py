"""Fault injection for the reliability tests: reach a kill point, a full disk or a failing trial
deterministically, by environment variable, never by timing. Inert unless the variables are set.

- ``EMRUN_TEST_KILL_AT=POINT:N[:INT[:GROUP]]``: at the N-th time this process reaches POINT, kill it
  with SIGKILL (or SIGINT, as Ctrl-C; with GROUP, to its whole process group, as a terminal's
  Ctrl-C reaches pool workers too). Points: ``starting`` (a sweep's config is loaded, nothing else
  done), ``worker_starting`` (a pool worker imports emrun.runner, before its initializer),
  ``computing`` (a task handed to the pool or started inline), ``trace_written`` (a batch's traces
  written, its rows not yet), ``batch_temp`` (a batch file written to its temporary name, not yet
  renamed), ``batch_written`` (renamed: stored),
  ``manifest_temp`` (a manifest written to its temporary name, not yet renamed), ``report_written``
  (a folder's report and verdicts.json written, the index not yet).
- ``EMRUN_TEST_DISK_FULL=N``: the N-th batch write fails with ENOSPC, as on a full disk.
- ``EMRUN_TEST_KILL_WORKER=BATCH_ID:MARKER[;BATCH_ID:MARKER...]``: a Dask worker dies when it starts that
  batch (once per marker).
- ``EMRUN_TEST_FAULT=KIND:BATCH_ID:RUN``: that trial fails: ``raise`` raises in the engine,
  ``nan`` starts it from a NaN weight so that the engine reaches a NaN state.
- ``EMRUN_TEST_OSERROR=POINT:ERRNO[:N]``: the N-th (default first) write at POINT fails with that
  errno (ENOSPC, EROFS, EACCES): ``lock``, ``manifest`` or ``batch``.
- ``EMRUN_TEST_PAUSE_AT=POINT:SECONDS``: sleep there (``lock_takeover``), so that a second process can
  be started inside the window.
- ``EMRUN_TEST_MARK_AT=POINT:N:PATH``: at the N-th time this process reaches POINT, create the file
  PATH, so that a test can signal the process from outside while it is there: ``kernel_call`` (the
  compiled Bernoulli kernel is called, emrun.models.bernoulli_chunks).
- ``EMRUN_TEST_DELETE_MANIFEST_AT=POINT:N``: at the N-th time this process reaches POINT, delete the
  folder's manifest.json (as a user might, mid-sweep).
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections import Counter
from pathlib import Path

_reached: Counter = Counter()


def checkpoint(point: str, manifest: Path | None = None) -> None:
    hook = os.environ.get("EMRUN_TEST_KILL_AT")
    if hook:
        name, count, *how = hook.split(":")
        if name == point:
            _reached[point] += 1
            if _reached[point] == int(count) and how == ["INT", "GROUP"]:
                os.killpg(os.getpgrp(), signal.SIGINT)
            elif _reached[point] == int(count):
                os.kill(os.getpid(), signal.SIGINT if how == ["INT"] else signal.SIGKILL)
    hook = os.environ.get("EMRUN_TEST_DELETE_MANIFEST_AT")
    if hook and manifest is not None:
        name, count = hook.split(":")
        if name == point:
            _reached[f"delete:{point}"] += 1
            if _reached[f"delete:{point}"] == int(count):
                Path(manifest).unlink(missing_ok=True)


def mark(point: str) -> None:
    hook = os.environ.get("EMRUN_TEST_MARK_AT")
    if hook:
        name, count, path = hook.split(":", 2)
        if name == point:
            _reached[f"mark:{point}"] += 1
            if _reached[f"mark:{point}"] == int(count):
                Path(path).touch()


def oserror(point: str) -> None:
    hook = os.environ.get("EMRUN_TEST_OSERROR")
    if not hook:
        return
    name, code, *count = hook.split(":")
    if name != point:
        return
    _reached[f"oserror:{point}"] += 1
    if _reached[f"oserror:{point}"] == int(count[0] if count else 1):
        number = getattr(errno, code)
        raise OSError(number, os.strerror(number))


def pause(point: str) -> None:
    hook = os.environ.get("EMRUN_TEST_PAUSE_AT")
    if hook and hook.split(":")[0] == point:
        time.sleep(float(hook.split(":")[1]))


def before_batch_write() -> None:
    hook = os.environ.get("EMRUN_TEST_DISK_FULL")
    if not hook:
        return
    _reached["batch_write"] += 1
    if _reached["batch_write"] == int(hook):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def worker_checkpoint(task_id: str) -> None:
    """``EMRUN_TEST_KILL_WORKER=BATCH_ID:MARKER``: the worker process that starts that batch kills
    itself with SIGKILL, once (the marker file records that it did), as a lost machine would."""
    hook = os.environ.get("EMRUN_TEST_KILL_WORKER")
    if not hook:
        return
    for pair in hook.split(";"):  # several BATCH_ID:MARKER pairs: several workers die
        batch, marker = pair.split(":", 1)
        if batch == task_id and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)


def trial_fault(batch_id: str, run_index: int) -> str | None:
    """'raise' or 'nan' if the test asks this trial to fail, else None."""
    hook = os.environ.get("EMRUN_TEST_FAULT")
    if not hook:
        return None
    kind, batch, run = hook.split(":")
    return kind if batch == batch_id and int(run) == run_index else None
