"""Experiment kinds: what differs between a grid of EM/GD trials, Tables 3-4's adaptive protocol,
a theory check and a dynamics study lives in the kind, chosen through one registry.

A kind validates its own config keys, plans batches (possibly from the rows stored so far), runs a
batch in a worker, post-processes its rows when they are loaded, and writes its report, returning
its verdicts. The members emrun calls are declared in :mod:`emrun.kinds.protocol` (six required,
the rest optional with defaults) and checked when a kind is registered. The CLI, the config
loader, the store, the report index, replay and status ask the kind; none of them tests the kind's
name. A plug-in adds a kind with :func:`emrun.plugins.register_kind`.
"""

from __future__ import annotations

from emrun.batch import BatchResult, BatchSpec
from emrun.kinds.protocol import OPTIONAL, REQUIRED, Kind, KindError, protocol_problems

__all__ = ["Kind", "KindError", "REQUIRED", "OPTIONAL", "protocol_problems", "run_task", "tasks_for"]


def __getattr__(name: str):
    # The built-in kinds, imported only when the registry first needs them.
    if name == "BUILT_IN":
        from emrun.kinds import dynamics, segmentation, theory, trials

        return {kind.name: Kind(kind) for kind in (trials.GRID, trials.FIRST_K_CLUSTER, theory.THEORY,
                                                   dynamics.DYNAMICS, segmentation.SEGMENTATION)}
    raise AttributeError(f"module 'emrun.kinds' has no attribute {name!r}")


def run_task(kind: str, values: dict, config_hash: str, spec: BatchSpec, retry: list[int] | None,
             plugins: tuple = ()) -> BatchResult:
    """What a worker process executes for one batch: import the config's file plug-ins (once per
    process; their text travels with the task), then run the batch with the config's kind."""
    from emrun import env, faults
    from emrun import plugins as loading
    from emrun.registry import KINDS

    env.keep_freed_memory()  # once per process
    faults.worker_checkpoint(spec.batch_id)
    loading.ensure_loaded(plugins)
    experiment = KINDS.get(kind)
    experiment.prepare(values)  # once per process: loading compiled code is not the batch's time
    return experiment.run_batch(values, config_hash, spec, retry)


def tasks_for(config, store) -> list:
    """The tasks of a config's plan that a sweep hands to the runner: every planned batch (the
    runner skips stored ones); a stored batch with failed trials is retried for those trials only.
    An adaptive kind plans from the rows stored so far."""
    from emrun.results import stored as stored_rows
    from emrun.runner import Task
    from emrun.store import has_rows

    kind = config.kind
    failed_runs = store.stored_batches()  # first: damaged files are set aside before the rows are read
    stored = stored_rows(store.folder, config=config).rows if kind.adaptive and has_rows(store.folder) else None
    tasks = []
    for spec in kind.plan(config, stored):
        retry = failed_runs.get(spec.batch_id) or None
        tasks.append(Task(spec.batch_id, run_task, (kind.name, config.values, config.hash, spec, retry, config.plugins),
                          kind.estimated_cost(config.values, spec)))
    return tasks
