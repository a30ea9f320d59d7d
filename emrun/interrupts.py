"""Ctrl-C, SIGTERM and SIGHUP: one way to stop, wherever the sweep process is.

The command line installs :func:`install` in its main thread. A signal then raises
:class:`Interrupted` (a KeyboardInterrupt, so every existing ``except KeyboardInterrupt`` keeps the
batches already written, releases the lock and prints the resume command), except while compiled
code runs (:func:`deferred`): an exception raised inside numba's kernel, where it calls back into
Python, is lost, and the kernel then runs to its end. There the signal is only recorded, and raised
as soon as the kernel returns; the kernel works in bounded chunks (emrun.models.bernoulli), so that
is soon. Worker processes ignore these signals (:func:`ignore_in_worker`): the sweep process
stops them itself, and a worker interrupted mid-task would look like a failed task.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """The sweep was asked to stop by a signal (SIGINT is Ctrl-C)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """The shell's convention: 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)."""
        return 128 + self.signum


def exit_status(error: BaseException) -> int:
    """The exit status for an interruption: 130 for a plain KeyboardInterrupt."""
    return error.exit_status if isinstance(error, Interrupted) else 128 + signal.SIGINT


_depth = 0  # how many deferred() blocks are open (the main thread only: signals are handled there)
_pending: list[BaseException] = []  # what a handler would have raised inside a deferred() block


def raise_or_defer(error: BaseException) -> None:
    """For a signal handler: raise ``error`` now, or, inside :func:`deferred`, when it ends."""
    if _depth:
        _pending.append(error)
        return
    raise error


def _handler(signum: int, frame) -> None:
    raise_or_defer(Interrupted(signum))


def install() -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` in this (main) thread. A signal
    the process inherited as ignored (a shell's background job, ``nohup``) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _handler)


def ignore_in_worker() -> None:
    """In a pool worker: leave the terminal's Ctrl-C and a hang-up to the sweep process, which
    stops the workers itself. SIGTERM keeps its default (the sweep process stops a pool with it)."""
    for signum in STOP_SIGNALS:
        if signum != signal.SIGTERM:
            signal.signal(signum, signal.SIG_IGN)


@contextmanager
def deferred() -> Iterator[None]:
    """Around a call into compiled code: a signal arriving meanwhile is raised when the call returns."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth and _pending:
            # A stop signal outranks a batch's timeout that expired at the same time.
            error = next((e for e in _pending if isinstance(e, KeyboardInterrupt)), _pending[0])
            _pending.clear()
            raise error


@contextmanager
def blocked_in_children() -> Iterator[None]:
    """Block SIGINT and SIGHUP in this thread while it starts worker processes: a child inherits
    the blocked mask, so a Ctrl-C that reaches the whole terminal while a worker is still starting
    (before it can ignore it) prints no traceback. This process still gets the signal: delivered to
    another of its threads, or when the block ends. (SIGTERM is not blocked: the sweep process
    stops its workers with it.)"""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, [s for s in STOP_SIGNALS if s != signal.SIGTERM])
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
