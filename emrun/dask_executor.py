"""Run a sweep's tasks on Dask (``emrun sweep CONFIG --executor dask [--scheduler tls://HOST:8786]``).

Workers only compute: each task returns its rows to this process, which writes them with the same
atomic batch files as the local pool, so no shared file system is needed and resume works the
same. Without a scheduler address a LocalCluster on 127.0.0.1 is started with one single-threaded
worker process per ``--workers``. A worker lost mid-task (killed, out of memory) makes the
scheduler resubmit its tasks elsewhere (up to Dask's ``allowed-failures``); a task that still
fails is reported as failed and left for the next sweep, like a failed task on the local pool.
Rows are the same as on the local pool: a task's rows depend on its arguments only.

Dask's protocol carries pickled objects, so whoever can reach the scheduler's port runs code on
the workers and on this machine: use a ``tls://`` scheduler with certificates (``security``, from
``--tls-ca/--tls-cert/--tls-key`` or Dask's own configuration), or keep the scheduler on a private
interface or behind an SSH tunnel (README, "Running on a cluster"). The LocalCluster listens on
127.0.0.1 only, with no dashboard.

Needs the optional dependency: ``pip install emrun[dask]``.
"""

from __future__ import annotations

import logging

from emrun.batch import ExecutorError


def _removed_workers(events) -> list[str]:
    """Every worker the scheduler removed, from its event log: comparing the workers before and
    after the sweep missed those that a nanny restarted at the same address or that joined and
    died during it."""
    removed = [message.get("worker") for _, message in events
               if isinstance(message, dict) and message.get("action") == "remove-worker"]
    return sorted({worker for worker in removed if worker})


def run_on_dask(pending, settle, lost_workers: list[str], workers: int, scheduler: str | None, security=None) -> None:
    """Submit every pending task and ``settle`` each as it finishes (emrun.runner.Outcomes);
    add the workers the scheduler lost to ``lost_workers``."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ExecutorError("the Dask executor needs dask.distributed: pip install 'emrun[dask]'") from None
    from emrun import env

    env.single_threaded()  # inherited by LocalCluster's worker processes
    cluster = None
    if scheduler is None:
        # Its scheduler runs in this process: its log lines (a lost worker's ERROR) would reach the
        # user's terminal beside emrun's own account of the same event.
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, silence_logs=logging.CRITICAL)
    try:
        client = Client(cluster if cluster is not None else scheduler, timeout="30s", security=security)
    except (OSError, TimeoutError) as error:
        if cluster is not None:
            cluster.close()
        raise ExecutorError(f"cannot reach the Dask scheduler {scheduler}: {error}") from None
    try:
        seen = len(client.get_events("all"))  # the scheduler's event log before this sweep
        futures = {client.submit(task.function, *task.args, key=f"emrun-{task.task_id}", pure=False,
                                 priority=task.cost): task for task in pending}
        for future in as_completed(futures):
            failed = future.status == "error"
            settle(futures[future], None if failed else future.result(), future.exception() if failed else None)
        lost_workers.extend(_removed_workers(client.get_events("all")[seen:]))
    except BaseException:
        client.cancel(list(futures) if "futures" in locals() else [])
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
