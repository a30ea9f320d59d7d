"""Experiment kinds: what differs between a grid of EM/GD trials, Tables 3-4's adaptive protocol,
a theory check and a dynamics study lives in the kind, chosen through one registry.

A kind validates its own config keys, plans batches (possibly from the rows stored so far), runs a
batch in a worker, post-processes its rows when they are loaded, and writes its report, returning
its verdicts. The CLI, the config loader, the store, the report index, replay and status ask the
kind; none of them tests the kind's name. A plug-in adds a kind with
:func:`emrun.plugins.register_kind`.
"""

from __future__ import annotations

from typing import Any, Protocol

from emrun.batch import BatchResult, BatchSpec, Cell


class ExperimentKind(Protocol):
    name: str
    keys: dict[str, bool]  # its top-level config keys beyond the common ones (key -> required)
    row_noun: str  # what its rows are called ("trials", "check rows", ...)
    adaptive: bool  # True if its plan grows with the rows stored so far
    replayable: bool  # True if one stored trial can be re-run alone (emrun replay)

    def validate(self, raw: dict, check: Any, out: dict) -> None:
        """Check its keys of the raw config (errors through ``check``, a :class:`emrun.config.Checker`)
        and put their canonical values into ``out``."""

    def names_used(self, values: dict) -> set[str]:
        """The registered names that make the canonical config's rows (not the claims that judge them)."""

    def cells(self, values: dict) -> list[Cell]: ...

    def n_truths(self, values: dict) -> int: ...

    def plan(self, config: Any, stored: Any = None) -> list[BatchSpec]:
        """The batches the config needs, in a fixed order, given the rows stored so far (None or a
        DataFrame, for an adaptive kind)."""

    def find_batch(self, config: Any, batch_id: str) -> BatchSpec: ...

    def run_batch(self, values: dict, config_hash: str, spec: BatchSpec, retry: list[int] | None) -> BatchResult:
        """Run one batch in a worker (``retry``: only these run indices, a retry of failed trials)."""

    def estimated_cost(self, values: dict, spec: BatchSpec) -> float:
        """Estimated run time of a batch: long ones start first, the progress bar weighs by it."""

    def counting(self, values: dict) -> Any:
        """Optional, for a kind built on CellGrid: the function (values, cell, convergence) ->
        emrun.work.Work counting one batch's work, or its import string; with it --dry-run and
        emrun list give an expected time (without it, only the cost model's bound)."""

    def prepare(self, values: dict, say: Any = None) -> None:
        """Optional: ready the process to run batches (compile kernels), before any is timed."""

    def postprocess(self, rows: Any) -> Any:
        """Rows as loaded from the store -> rows as readers use them (order, derived columns)."""

    def write_report(self, ctx: Any) -> Any:
        """Write the folder's report; return an :class:`emrun.report.ReportResult`."""

    def describe(self, config: Any) -> list[str]:
        """What ``emrun sweep --dry-run`` prints."""

    def status_lines(self, rows: Any) -> list[str]:
        """What ``emrun status`` prints about the stored rows (None: no rows yet)."""

    def batch_check(self, values: dict) -> Any:
        """A function (pyarrow Table) -> why a batch file's rows are unusable, or None."""

    def failed_rows(self, rows: Any) -> Any:
        """A boolean Series: the rows that record a failure (reports count them, never average them)."""

    def declared_claims(self, values: dict) -> list:
        """The claims (emrun.criteria.Declared) its report will judge, from the config alone: a sweep
        records their criteria before any row (optional: without it nothing is recorded in advance,
        and each verdict says its criterion was first recorded after its rows)."""

    def runs_judged(self, values: dict, verdict: Any) -> dict | None:
        """Which runs decided a verdict (optional: REPORT.md uses it to count a finding judged in two
        folders on the same runs once)."""


def __getattr__(name: str):
    # The built-in kinds, imported only when the registry first needs them.
    if name == "BUILT_IN":
        from emrun.kinds import dynamics, theory, trials

        return {"grid": trials.GRID, "first_k_cluster": trials.FIRST_K_CLUSTER, "theory": theory.THEORY,
                "dynamics": dynamics.DYNAMICS}
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
    if hasattr(experiment, "prepare"):
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
