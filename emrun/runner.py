"""Send tasks to worker processes and store what they return, with progress and resume.

The runner knows nothing about mixture models: a task is an id, a picklable function and its
arguments, and the function returns a :class:`emrun.batch.BatchResult`. Results are written by
this process, one file per task, as tasks finish; tasks whose file exists are skipped, so an
interrupted sweep resumes where it stopped. Results do not depend on the number of workers: each
task's rows are a function of its arguments alone. :func:`run_until_stable` re-plans after each
round, for plans that grow with the stored results.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from emrun import env, faults, interrupts
from emrun.batch import BatchResult, ExecutorError  # noqa: F401 (raised by the executors)
from emrun.files import StoreWriteError

if TYPE_CHECKING:  # every pool worker imports this module: the store (pandas, pyarrow) is the sweep's, not theirs
    from emrun.store import ResultStore


@dataclass(frozen=True)
class Task:
    task_id: str
    function: Callable[..., BatchResult]  # module-level, so that spawned and Dask workers can unpickle it
    args: tuple
    cost: float = 1.0  # a guess of the relative run time: long tasks start first, and the progress bar weighs by it


@dataclass
class SweepSummary:
    total: int
    skipped: int
    completed: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    interrupted: bool = False
    stop_signal: int = signal.SIGINT  # what interrupted it: Ctrl-C, or SIGTERM or SIGHUP
    write_error: str | None = None  # the store refused a write (a full disk): the sweep stopped
    lost_workers: list[str] = field(default_factory=list)  # Dask workers gone during the sweep

    def then(self, later: SweepSummary) -> SweepSummary:
        """This round followed by a later one over a grown task list."""
        return SweepSummary(total=later.total, skipped=self.skipped, completed=self.completed + later.completed,
                            failed={**self.failed, **later.failed}, seconds=self.seconds + later.seconds,
                            interrupted=later.interrupted, stop_signal=later.stop_signal, write_error=later.write_error,
                            lost_workers=self.lost_workers + later.lost_workers)


class Progress:
    """The sweep's progress bar. It advances by each batch's estimated cost, so that the time left
    weighs a long batch as such (batches of one sweep can differ a thousandfold), and shows the
    batches stored of the total beside it."""

    def __init__(self, tasks: list[Task], done: set[str], label: str, enabled: bool,
                 origin: tuple[float, set[str]] | None = None):
        """``origin`` (when the sweep started, by time.time(), and the batches stored then) keeps
        one clock over the rounds of an adaptive sweep: its elapsed time and rate count from the
        sweep's start, and the batches of earlier rounds as work this sweep did."""
        self.total = len(tasks)
        self.stored = sum(1 for t in tasks if t.task_id in done)
        self.label = label
        # In integer units: float costs summed in another order than the total can overshoot it by
        # a rounding error, and tqdm then warns and shows a negative time left.
        self.units = {t.task_id: max(1, round(t.cost * 1_000_000)) if math.isfinite(t.cost) else 1 for t in tasks}
        before = done if origin is None else origin[1] & done
        self.bar = tqdm(total=sum(self.units.values()), initial=sum(self.units[t] for t in self.units if t in before),
                        desc=self._text(), disable=not enabled, file=sys.stderr, dynamic_ncols=True,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")
        if origin is not None:
            self.bar.start_t = origin[0]
            self.bar.update(sum(self.units[t] for t in self.units if t in done and t not in before))

    def _text(self) -> str:
        return f"{self.label} ({self.stored}/{self.total} batches)"

    def advance(self, task: Task) -> None:
        self.stored += 1
        self.bar.set_description_str(self._text(), refresh=False)
        self.bar.update(min(self.units.get(task.task_id, 0), self.bar.total - self.bar.n))

    def close(self) -> None:
        self.bar.close()


class BatchTimeout(BaseException):
    """A batch ran past its timeout (a BaseException: no ``except Exception`` of a kind or plug-in
    may swallow it)."""


MIN_TIMEOUT = 3600.0  # seconds: the shortest default timeout, whatever the cost model says
TIMEOUT_FACTOR = 50  # the default timeout is this many times the cost model's estimate (every run to its cap)


def timeout_of(task: Task, batch_timeout: float | None) -> float:
    """How long a batch may run: the user's --batch-timeout, or a generous multiple of the cost
    model's estimate (which already assumes every run reaches its cap)."""
    if batch_timeout is not None:
        return batch_timeout
    return max(MIN_TIMEOUT, TIMEOUT_FACTOR * task.cost) if math.isfinite(task.cost) else MIN_TIMEOUT


def _timed_out(seconds: float) -> str:
    return (f"BatchTimeout: ran longer than {seconds:g} s (--batch-timeout) and was stopped; a plug-in update that "
            "never returns, or a batch far slower than the cost model says")


def _call_with_timeout(task: Task, seconds: float):
    """Run a task in this process, raising BatchTimeout after ``seconds`` (by SIGALRM: only the main
    thread can be interrupted; elsewhere the task runs without a timeout)."""
    if threading.current_thread() is not threading.main_thread():
        return task.function(*task.args)

    def expire(signum, frame):
        interrupts.raise_or_defer(BatchTimeout())  # inside compiled code: when it returns

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return task.function(*task.args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


Settle = Callable[..., None]  # settle(task, result=None, failure=None): see Outcomes.settle


@dataclass
class Outcomes:
    """Where every executor's finished batches go, the one result loop body: a batch's rows are
    stored, or why it failed is recorded; then the progress bar moves."""

    store: ResultStore
    summary: SweepSummary
    bar: Progress

    def settle(self, task: Task, result: Any = None, failure: BaseException | str | None = None) -> None:
        if failure is not None:
            self.summary.failed[task.task_id] = failure if isinstance(failure, str) else \
                f"{type(failure).__name__}: {failure}"
        else:
            self.store.write_batch(task.task_id, result)
            self.summary.completed += 1
        self.bar.advance(task)


def _run_inline(pending: list[Task], settle: Settle, batch_timeout: float | None = None) -> None:
    for task in pending:
        faults.checkpoint("computing")
        seconds = timeout_of(task, batch_timeout)
        try:
            rows = _call_with_timeout(task, seconds)
        except BatchTimeout:
            settle(task, failure=_timed_out(seconds))
        except Exception as error:  # a task that raises is reported; the others go on
            settle(task, failure=error)
        else:
            settle(task, rows)


def _exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this worker when the sweep process dies (even by SIGKILL), so that
    no orphan keeps computing or holds the terminal. Ctrl-C and a hang-up are left to the sweep
    process, which stops the workers itself (a worker interrupted mid-task would look like a
    failed task); the pool starts workers with them blocked (emrun.interrupts.blocked_in_children)."""
    interrupts.ignore_in_worker()

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


POOL_RESTARTS = 3  # a pool whose worker died is rebuilt this many times before its batches count as failed


def _run_pool(pending: list[Task], settle: Settle, lost_workers: list[str], workers: int,
              batch_timeout: float | None = None) -> None:
    """Run the tasks on a pool of spawned processes. A worker that dies (killed, out of memory)
    breaks the pool: its unfinished batches run again on a new pool, as Dask resubmits a lost
    worker's batches; a batch that keeps killing its worker is reported as failed. A batch past
    its timeout fails and the pool is stopped; the other unfinished batches run on a new one."""
    env.single_threaded()  # spawned workers read these before their first numpy import
    queue = list(pending)
    attempt = 0
    while attempt <= POOL_RESTARTS:
        queue, broken = _drain_pool(queue, settle, workers, batch_timeout)
        if not queue:
            return
        if broken:
            attempt += 1
            lost_workers.append(f"a local worker process (pool {attempt})")
    for task in queue:
        settle(task, failure="its worker process died every time it ran")


def _stop(pool: ProcessPoolExecutor) -> None:
    workers_alive = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers_alive:
        process.terminate()


POLL_SECONDS = 5.0  # how often a pool's running batches are looked at for their timeouts


def _drain_pool(queue: list[Task], settle: Settle, workers: int,
                batch_timeout: float | None = None) -> tuple[list[Task], bool]:
    """Run the queue on one pool; return the tasks left unfinished, and whether the pool broke (a
    worker died) rather than being stopped for a batch past its timeout."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_exit_with_parent,
                             initargs=(os.getpid(),)) as pool:
        running: dict[Future, Task] = {}
        started: dict[Future, float] = {}  # when a worker took the task (about: the pool's call queue)
        queue = list(queue)
        try:
            # Keep at most two tasks per worker in flight so that an interruption loses little.
            while queue or running:
                while queue and len(running) < 2 * workers:
                    task = queue.pop(0)
                    with interrupts.blocked_in_children():  # a submit may start a worker
                        running[pool.submit(task.function, *task.args)] = task
                    faults.checkpoint("computing")
                finished, _ = wait(running, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                for future in finished:
                    task = running.pop(future)
                    error = future.exception()
                    if isinstance(error, BrokenProcessPool):
                        return [task, *running.values(), *queue], True
                    settle(task, None if error is not None else future.result(), error)
                now = time.monotonic()
                for future in running:
                    if future not in started and future.running():
                        started[future] = now
                late = [f for f in running if f in started and now - started[f] > timeout_of(running[f], batch_timeout)]
                if late:  # a worker cannot be stopped alone: stop the pool, run the others again
                    for future in late:
                        task = running.pop(future)
                        settle(task, failure=_timed_out(timeout_of(task, batch_timeout)))
                    _stop(pool)
                    return [*running.values(), *queue], False
        except (KeyboardInterrupt, StoreWriteError):
            # Stop now: unfinished batches are simply not stored and run again on resume.
            _stop(pool)
            raise
    return [], False


EXECUTORS = ("local", "dask")


def run_tasks(tasks: list[Task], store: ResultStore, workers: int, progress: bool = True,
              label: str = "sweep", executor: str = "local", scheduler: str | None = None,
              security=None, batch_timeout: float | None = None,
              origin: tuple[float, set[str]] | None = None) -> SweepSummary:
    """Run the tasks not yet stored; return counts. Ctrl-C stops after saving what finished.

    ``executor`` is 'local' (this machine: inline for one worker, else a process pool) or 'dask'
    (a Dask scheduler at ``scheduler``, or a LocalCluster of ``workers`` processes). A batch
    running past its timeout (:func:`timeout_of`) fails; Dask applies no timeout of emrun's."""
    done = store.finished_batches()
    pending = sorted((t for t in tasks if t.task_id not in done), key=lambda t: -t.cost)
    summary = SweepSummary(total=len(tasks), skipped=len(tasks) - len(pending))
    started = time.perf_counter()
    bar = Progress(tasks, done, label, progress, origin)
    settle = Outcomes(store, summary, bar).settle
    try:
        if executor == "dask":
            from emrun.dask_executor import run_on_dask

            run_on_dask(pending, settle, summary.lost_workers, workers, scheduler, security)
        elif workers <= 1 or len(pending) <= 1:
            _run_inline(pending, settle, batch_timeout)
        else:
            _run_pool(pending, settle, summary.lost_workers, workers, batch_timeout)
    except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM or SIGHUP (emrun.interrupts)
        summary.interrupted = True
        summary.stop_signal = interrupts.exit_status(error) - 128
    except StoreWriteError as error:
        summary.write_error = str(error)
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - started
    return summary


def run_until_stable(plan: Callable[[], list[Task]], store: ResultStore, workers: int, replan: bool,
                     **options: Any) -> SweepSummary:
    # options: progress, label, executor, scheduler, security, batch_timeout (see run_tasks)
    """Run the tasks ``plan()`` returns; with ``replan``, plan again after each round that stored
    something, until the plan holds no batch it has not held before (a plan that grows with the
    stored rows). Only new batches start a round: a trial that fails every time is retried once per
    sweep, never in a loop."""
    summary, seen = None, set()
    origin = (time.time(), store.finished_batches())  # one progress clock for every round
    while True:
        tasks = plan()
        if summary is not None and {task.task_id for task in tasks} <= seen:
            return summary
        seen |= {task.task_id for task in tasks}
        result = run_tasks(tasks, store, workers, origin=origin, **options)
        summary = result if summary is None else summary.then(result)
        if not replan or result.completed == 0 or result.interrupted or result.failed or result.write_error:
            return summary


# A spawned pool worker imports this module while it starts (its main module is then __mp_main__):
# a test's Ctrl-C may come now, before the worker's initializer.
if getattr(sys.modules.get("__main__"), "__name__", None) == "__mp_main__":
    faults.checkpoint("worker_starting")


def describe(summary: SweepSummary) -> dict[str, Any]:
    return {
        "batches_total": summary.total, "batches_skipped": summary.skipped,
        "batches_completed": summary.completed, "batches_failed": len(summary.failed),
        "seconds": round(summary.seconds, 2), "interrupted": summary.interrupted,
        "write_error": summary.write_error, "lost_workers": summary.lost_workers,
    }
