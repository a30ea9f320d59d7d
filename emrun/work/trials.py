"""The work of trial grids (grid, first_k_cluster): runs of emrun.algorithms, each for as many
iterations as stored runs like it took (:mod:`emrun.convergence`); named by TrialGrid.counting."""

from __future__ import annotations

from typing import Any

from emrun.batch import Cell
from emrun.work import CALLS, TRACE_ROW, TRIAL_ROW, Work, loop, trial_calls


def trial_batch(values: dict, cell: Cell, convergence: Any) -> Work:
    """One (cell, truth) of a trial grid: every run for as many iterations as stored runs like it took."""
    from emrun import experiments
    from emrun.algorithms import CYCLE_WINDOW
    from emrun.registry import ACCELERATORS

    runs, cap = values["runs"][cell.algorithm], experiments.max_iterations(values, cell)
    iterations, capped = convergence.trial_iterations(values, cell, cap)
    points = experiments.data_size(values, cell.D)
    key = f"{values['model']}/{cell.algorithm}"
    record = values.get("record")
    work = Work(values=runs * (TRIAL_ROW + 2 * (cell.m + cell.m * cell.D)))
    if not record and key in ACCELERATORS and cell.D <= ACCELERATORS.get(key).max_features:
        # the kernel makes m + 1 passes over the patterns per ECM iteration, m per the authors' (emrun.models.bernoulli_fused)
        rule = values.get("em_update") if cell.algorithm == "em" else None
        passes = {"ecm": cell.m + 1, "authors": cell.m}.get(rule, 1)
        work += Work(compiled=passes * runs * iterations * experiments.seconds_per_trial_iteration(values, cell))
    else:
        sizes = {"pi": cell.m, "mu": cell.m * cell.D, "loss": 1}
        recorded = runs * iterations / record["every"] * sum(sizes[q] for q in record["quantities"]) if record else 0.0
        work += loop(iterations, runs, points, cell.m, cell.D, values=TRACE_ROW * recorded,
                     calls=trial_calls(cell.algorithm, len(record["quantities"]) if record else 0))
        if record:  # the trace file, and its frames (emrun.experiments.trace_table)
            frames = (iterations / record["every"] + 1) * len(record["quantities"])  # all runs of an iterate in one
            work += Work(files=1, calls=CALLS["trace_frame"] * frames)
    if capped > 0:  # capped runs are continued CYCLE_WINDOW iterations in the numpy loop (emrun.algorithms)
        work += loop(CYCLE_WINDOW, runs * capped, points, cell.m, cell.D, calls=trial_calls(cell.algorithm, 2))
    data = values["data"]
    return work + Work(exps=data["n"] * cell.D if data["kind"] == "samples" else points * cell.D)
