"""The neutral types that the kinds, the runner and the store share: a grid cell, a batch of it,
and what a batch produces.

A batch is every run of one (cell, truth): its composition is a pure function of the config, so
rows never depend on how batches are scheduled. Nothing here knows what a mixture is.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from typing import Any

# The statuses a trial row can have. A failed trial raised or reached a NaN state: it is stored,
# retried by the next sweep, counted in reports and never averaged. A cycling trial reached the
# cap repeating a cycle of period 2 or more (emrun.algorithms): a capped trial of its own kind.
CONVERGED, CAPPED, CYCLING, DIVERGED, FAILED = "converged", "capped", "cycling", "diverged", "failed"
STATUSES = (CONVERGED, CAPPED, CYCLING, DIVERGED, FAILED)


@dataclass(frozen=True)
class Cell:
    """One point of the grid: (m, D), the algorithm and its hyperparameters, the init scheme.

    ``step`` is the step size of an algorithm that takes one (None for EM); ``max_iter`` the
    iteration cap when the grid varies it (else the stopping rule's); ``params`` the algorithm's
    other hyperparameters that the grid varies, as (name, value) pairs; ``truth`` the truth
    options that the grid varies (:mod:`emrun.truths`), as (name, value) pairs.
    """

    m: int
    D: int
    algorithm: str
    step: float | None
    init: str
    max_iter: int | None = None
    params: tuple[tuple[str, float], ...] = ()
    truth: tuple[tuple[str, float | str], ...] = ()

    @property
    def label(self) -> str:
        """The cell's part of every batch id and file name (stable: changing it re-runs everything)."""
        step = f"-step{self.step:g}" if self.step is not None else ""
        others = "".join(f"-{name}{value:g}" for name, value in self.params)
        cap = f"-cap{self.max_iter}" if self.max_iter is not None else ""
        # Truth axes follow (m, D), which they qualify; absent without them (existing ids unchanged).
        truth = "".join(f"-{name}{value:g}" if isinstance(value, float) else f"-{name}{value}" for name, value in self.truth)
        return f"m{self.m}-D{self.D}{truth}-{self.algorithm}{step}{others}{cap}-{self.init}"


@dataclass(frozen=True)
class BatchSpec:
    """One batch of runs: for a grid kind, a cell of the grid and a truth index (a kind without a
    grid names its batches by ``batch_id`` alone)."""

    batch_id: str
    cell: Cell | None = None
    truth_index: int = 0


@dataclass
class BatchResult:
    """What one batch produces: tidy rows (one dict per row), optionally traces (a tidy long
    table), the run indices of its failed trials (retried alone by the next sweep), and the Arrow
    type of columns that may hold only missing values (so every file has the same schema)."""

    rows: list[dict]
    traces: Any = None  # pandas.DataFrame | None
    failed_runs: list[int] = field(default_factory=list)
    column_types: dict[str, str] = field(default_factory=dict)


class ExecutorError(RuntimeError):
    """An executor cannot run the tasks at all (Dask missing, a scheduler out of reach)."""


def worker_description() -> str:
    """Where a batch ran (host, platform, numpy): provenance per row. Rows from a heterogeneous
    cluster may differ in the last bits, and this says where each came from."""
    import numpy as np

    return f"{platform.node()} | {platform.platform()} | numpy {np.__version__}"
