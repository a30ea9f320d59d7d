"""What a sweep has to compute, counted from its config: the units :mod:`emrun.estimate` prices.

No constant here is fitted and nothing is timed. A batch's work is six counts:

- ``files``: files it writes beside its own batch file (a trace file);
- ``calls``: Python-level calls made by loops written in numpy, whatever the size of their arrays
  (per iteration, as cProfile counts them: about 40 to 190, :data:`CALLS`);
- ``values``: values of the rows built and stored (each row's columns, a list column counted by
  its entries): a trial row about 25 + 2 (m + m D), a long-form trace row 6, a check row 14, a
  dynamics row 20 + m;
- ``flops``: multiply-adds inside numpy calls: 2 x points x components x dimensions per iteration
  (the log-densities and the moments; points are patterns, sample points, nodes or pixels);
- ``exps``: exponentials and logarithms inside numpy calls (2 per point and component per
  iteration: the posterior and its normaliser), and normal draws;
- ``compiled``: seconds of compiled loops (the Bernoulli kernel, scikit-learn's k-means) at the
  cost model's own price (``make bench``: about 1.5 ns per component x point x feature).

The counting functions: :mod:`emrun.work.trials` (trial grids), :mod:`emrun.work.checks` (theory
checks) and :mod:`emrun.work.studies` (dynamics studies); each built-in check and study names its
own in its registry entry (``work=``), and a kind, check or study without one gets no expected
time. How many iterations a run takes and how many truths an adaptive plan draws come from a
:class:`emrun.convergence.Convergence` (stored rows of other configs), or from the mathematics where
it says (:func:`emrun.work.studies.escape_steps`, :func:`emrun.work.studies.linear_iterations`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

COMPILED_PER_ELEMENT = 1.5e-9  # the cost model's price of one element in compiled code (emrun.experiments)
# One small (3 x 3) system in numpy's batched linalg.solve, which the full-covariance family solves
# per point and component every iteration: its per-system overhead, not its flops, is the cost
# (profiled 2026-12-03: 20 ms a call for 16,384 pixels x 3 components, 0.4 us a system).
SOLVE_SECONDS = 4e-7


@dataclass(frozen=True)
class Work:
    """One batch's work (module docstring); ``copies`` identical batches."""

    files: float = 0.0
    calls: float = 0.0
    values: float = 0.0
    flops: float = 0.0
    exps: float = 0.0
    compiled: float = 0.0
    copies: float = 1.0

    def __add__(self, other: Work) -> Work:
        return Work(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self) if f.name != "copies"),
                    copies=self.copies)


COUNTS = tuple(f.name for f in fields(Work) if f.name != "copies")


@dataclass(frozen=True)
class Plan:
    """A sweep's batches (identical ones grouped as copies) and the rounds it runs them in (an
    adaptive plan plans again after each round, on a new pool of workers)."""

    batches: list[Work]
    rounds: int = 1
    kernel: bool = False  # whether each worker loads a compiled kernel first (CellGrid.prepare: the model's accelerators)


TRIAL_ROW, TRACE_ROW, CHECK_ROW, STUDY_ROW = 25, 6, 14, 20  # values per row, beside list entries


# Python-level calls per iteration of each numpy loop, counted with cProfile (emrun 0.2.0): the trial
# loop of emrun.algorithms (per algorithm, and per quantity it records), emrun.dynamics.follow (per
# estimator: a quadrature rule finds the means' span every step; tied means add their rotations),
# the trap loop of gradnorm and the rotation check's loop; "factorised": follow's step on paper B's
# factorised quadrature (counted with cProfile at 0a4c146).
# A recorded trace is stored in long form by emrun.experiments.trace_table, one pandas frame per
# recorded iterate and quantity: about 880 calls each.
CALLS = {"em": 80, "gd": 125, "recorded": 17, "quadrature": 88, "whitened_mc": 39, "fresh_mc": 55, "sample": 38,
         "tied": 20, "gradnorm": 84, "rotation": 52, "trace_frame": 880, "factorised": 64}


def loop(iterations: float, trials: float, points: float, m: int, dims: int, values: float = 0.0,
         calls: float = CALLS["gd"]) -> Work:
    """A numpy loop: ``iterations`` iterations of ``calls`` calls over ``trials`` x ``points`` x
    ``m`` components in ``dims`` dimensions, storing ``values``."""
    pairs = iterations * trials * points * m
    return Work(calls=iterations * calls, values=values, flops=2 * pairs * dims, exps=2 * pairs)


def trial_calls(algorithm: str, recorded: int = 0) -> float:
    """Calls per iteration of the trial loop of emrun.algorithms."""
    return CALLS.get(algorithm, CALLS["gd"]) + CALLS["recorded"] * recorded


def study_calls(values: dict, tied: bool = False) -> float:
    """Calls per iteration of emrun.dynamics.follow under the config's estimator."""
    return CALLS[values["estimator"]["kind"]] + CALLS["tied"] * tied


def compiled(trials: float, iterations: float, points: float, m: int, D: int) -> Work:
    """A compiled loop priced as the cost model prices the Bernoulli kernel's trial-iterations."""
    return Work(compiled=trials * iterations * (COMPILED_PER_ELEMENT * m * points * (D + 1) + 2e-7))



def plan(config: Any, convergence: Any) -> Plan | None:
    """Every batch's work (identical batches grouped as copies), or None when the config's kind,
    check or study has no counting function."""
    from dataclasses import replace

    found = _plan(config, convergence)
    return None if found is None else replace(found, kernel=loads_kernel(config.values))


def loads_kernel(values: dict) -> bool:
    """Whether a worker readies a compiled kernel before its first batch: the model's accelerators
    (CellGrid.prepare), or a kind that says it always does (``prepares_kernels``)."""
    from emrun.registry import ACCELERATORS, KINDS

    if values.get("experiment") in KINDS and KINDS.get(values["experiment"]).prepares_kernels:
        return True
    return any(f"{values.get('model')}/{a}" in ACCELERATORS for a in values.get("grid", {}).get("algorithm", ()))


def _plan(config: Any, convergence: Any) -> Plan | None:
    """Each cell's batch, counted by the kind's counting function (a trial grid's, a check's or a
    study's ``work``), times its truths: for an adaptive plan those it is expected to draw
    (:meth:`emrun.convergence.Convergence.expected_truths`), in as many rounds as the cell that
    needs the most blocks."""
    import math

    from emrun.registry import resolve

    kind, values = config.kind, config.values
    counting = kind.counting(values)
    if counting is None:
        return None
    counting = resolve(counting) if isinstance(counting, str) else counting
    truths = {cell: convergence.expected_truths(values, cell) if kind.adaptive else kind.n_truths(values)
              for cell in kind.cells(values)}
    rounds = math.ceil(max(truths.values(), default=0) / values["truths"]["block"] - 1e-9) if kind.adaptive else 1
    return Plan([Work(copies=count) + counting(values, cell, convergence) for cell, count in truths.items()],
                max(rounds, 1))
