"""The expected time of a sweep, and its time if every run reached its cap: the work of its
batches (:mod:`emrun.work`, iterations from :mod:`emrun.convergence`) at eight prices fitted on
the committed sweeps (``emrun/calibration.json``, written by :mod:`emrun.calibrate`).

The prices, the same for every kind:

- ``sweep``: seconds to start a pool of workers (each imports numpy, pandas, pyarrow);
- ``kernel``: seconds more when each worker first loads a compiled kernel (Bernoulli models);
- ``batch``: CPU-seconds per batch and per file it writes (sending it, storing its rows);
- ``calls``, ``values``, ``flops``, ``exps``: CPU-seconds per Python-level call of a numpy loop,
  per stored value, per multiply-add and per exponential or logarithm (:mod:`emrun.work`);
- ``compiled``: the factor between the cost model's price of compiled loops and what they took.

A sweep on W workers takes ``pool starts + max(total / W', longest batch)`` with W' = min(W,
batches): what the runner's longest-first pool gives, with one pool start per round of an
adaptive plan and none when the sweep runs in its own process (one worker, or one batch). The
prices minimise the log-ratio (soft-l1) between this and each committed sweep's wall seconds
divided by its contention (the project's own sweeps running beside it, or the load average it
recorded), with a weak prior (:data:`PRIOR`). A measured sweep is its producing sweeps' wall
seconds (:mod:`emrun.calibrate`): other load on the machine at the time, not recorded, is part of
what is fitted, and what the estimate cannot know.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

from emrun.convergence import Convergence
from emrun.work import Plan

CALIBRATION = Path(__file__).with_name("calibration.json")
ROOT = Path(__file__).resolve().parent.parent  # the repository: measured configs are named relative to it
PRICES = ("sweep", "kernel", "batch", "calls", "values", "flops", "exps", "compiled")
# Where each price is expected before any sweep is seen, within a factor of ten either way: the fit
# starts there and pays for moving away (a weak prior, so that a price few sweeps constrain stays
# physical). A pool's start imports numpy, pandas and pyarrow in each worker; a batch is pickled and
# written as a Parquet file; a Python-level call costs about a microsecond; an elementwise pass of
# numpy, nanoseconds; compiled loops cost what the cost model says.
PRIOR = {"sweep": 2.0, "kernel": 2.0, "batch": 0.02, "calls": 1e-6, "values": 1e-6, "flops": 5e-10, "exps": 5e-9, "compiled": 1.0}
PRIOR_WIDTH = math.log(10.0)


PER_BATCH = ("batch", "calls", "values", "flops", "exps", "compiled")  # the prices of a batch's work


def _units(plan: Plan) -> tuple[Any, Any]:
    """The plan's batch groups as arrays: units [groups, PER_BATCH] (files count as batches) and copies [groups]."""
    import numpy as np

    kept = [w for w in plan.batches if w.copies > 0]
    units = np.array([[1 + w.files, *(getattr(w, c) for c in PER_BATCH[1:])] for w in kept], dtype=float)
    return units.reshape(len(kept), len(PER_BATCH)), np.array([w.copies for w in kept], dtype=float)


def _wall(units: Any, copies: Any, prices: Any, start: float, kernel: float, rounds: int, workers: int) -> float:
    """Wall seconds: ``rounds`` pool starts, each with its workers' kernel load, when there is a
    pool, else one kernel load in the sweep's own process; then the batches on the workers (each
    at least as long as the longest batch)."""
    if not len(copies):
        return 0.0
    costs = units @ prices
    batches = copies.sum()
    pooled = workers > 1 and batches > 1
    starts = rounds * (start + kernel) if pooled else kernel
    return starts + max(float(costs @ copies) / max(1.0, min(workers, batches)), float(costs.max()))


def sweep_seconds(plan: Plan, prices: dict[str, float], workers: int) -> float:
    """Wall seconds of a sweep of this plan on ``workers`` workers at ``prices``: each round on a
    pool of workers (started at ``sweep`` seconds, and ``kernel`` more when each worker loads a
    compiled kernel) when it has more than one batch and more than one worker, else in the sweep's
    own process (which loads the kernel once); the batches spread over the workers, the longest one
    at least."""
    import numpy as np

    units, copies = _units(plan)
    return _wall(units, copies, np.array([prices[p] for p in PER_BATCH]), prices["sweep"], prices["kernel"] * plan.kernel,
                 plan.rounds, workers)


def fit(observed: list[tuple]) -> dict[str, float]:
    """The prices that best fit (plan, workers, measured seconds on an otherwise idle machine[,
    load known]) observations, in log-ratio (soft-l1, so that one odd sweep moves the prices
    little), with the prior. A sweep that recorded no load average ran beside work nothing
    recorded: its seconds are divided by one more fitted factor, ``unrecorded`` (at least 1,
    shared by all such sweeps), so that they inform the prices' ratios without setting their level."""
    import numpy as np
    from scipy.optimize import least_squares

    start = np.log([*(PRIOR[p] for p in PRICES), 1.0])
    arrays = [(*_units(plan), plan, workers, math.log(seconds), bool(rest[0]) if rest else True)
              for plan, workers, seconds, *rest in observed]
    per_batch = [PRICES.index(p) for p in PER_BATCH]

    def residuals(logs: np.ndarray) -> np.ndarray:
        prices, unrecorded = np.exp(logs[:-1]), logs[-1]
        sweep, kernel, vector = prices[PRICES.index("sweep")], prices[PRICES.index("kernel")], prices[per_batch]
        fitted = [math.log(_wall(units, copies, vector, sweep, kernel * plan.kernel, plan.rounds, workers))
                  + (0.0 if known else unrecorded) - measured
                  for units, copies, plan, workers, measured, known in arrays]
        return np.concatenate([fitted, (logs[:-1] - start[:-1]) / PRIOR_WIDTH])

    low, high = np.append(start[:-1] - 12, 0.0), np.append(start[:-1] + 12, math.log(20.0))
    found = least_squares(residuals, np.clip(start, low, high), bounds=(low, high), loss="soft_l1", f_scale=0.4,
                          max_nfev=2000)
    return {**{p: float(f"{math.exp(v):.3g}") for p, v in zip(PRICES, found.x[:-1], strict=True)},
            "unrecorded": float(f"{math.exp(found.x[-1]):.3g}")}


@cache
def load_config(file: str) -> Any:
    """A measured config, by its path relative to the repository."""
    from emrun.config import load

    return load(ROOT / file, run_plugins=False)


def plan_of(config: Any, convergence: Convergence) -> Plan | None:
    from emrun import work

    return work.plan(config, convergence)


def contention(own: list[dict], others: list[dict]) -> float:
    """How much slower sweeps that started as ``own`` (emrun.calibrate.interval) ran for other work
    on the machine: the ``others`` running when each started, or the load average it recorded then,
    whichever is more. Its busy workers and the others share the cores, so its processes get
    max(1, (own + others) / cores) / max(1, own / cores) times fewer cycles each; averaged over
    ``own``, 1 when nothing else ran. Only when each started counts, never how long it took."""
    factors = []
    for mine in own:
        busy = sum(other["busy"] for other in others
                   if other is not mine and other["start"] <= mine["start"] < other["start"] + other["seconds"])
        if mine.get("load") is not None:
            busy = max(busy, mine["load"])
        factors.append(max(1.0, (mine["busy"] + busy) / mine["cores"]) / max(1.0, mine["busy"] / mine["cores"]))
    return sum(factors) / len(factors) if factors else 1.0


def _others(records: dict[str, dict], name: str) -> list[dict]:
    return [i for other, record in records.items() if other != name for i in record.get("intervals", [])]


def fit_without(records: dict[str, dict], exclude: str | None = None) -> tuple[dict[str, float], Convergence]:
    """Prices and convergence from every measured config but ``exclude`` (its seconds, rows and
    intervals): each measured sweep's seconds divided by its contention, as it ran."""
    convergence = Convergence({n: r["rows"] for n, r in records.items() if n != exclude})
    observed = []
    for name, record in records.items():
        plan = plan_of(load_config(record["file"]), convergence) if name != exclude else None
        if plan is not None:
            busy = contention(record.get("intervals", []), _others({k: v for k, v in records.items() if k != exclude}, name))
            known = bool(record.get("intervals")) and all(i.get("load") is not None for i in record["intervals"])
            observed.append((plan, record["workers"], record["seconds"] / busy, known))
    return fit(observed), convergence


def leave_one_out(records: dict[str, dict], name: str) -> float | None:
    """Config ``name``'s expected seconds as it was measured (its workers; the project's other sweeps
    running when it started), fitted without its own seconds and rows."""
    prices, convergence = fit_without(records, exclude=name)
    record = records[name]
    plan = plan_of(load_config(record["file"]), convergence)
    if plan is None:
        return None
    return sweep_seconds(plan, prices, record["workers"]) * contention(record.get("intervals", []), _others(records, name))


# --- what --dry-run and emrun list print ------------------------------------------------------------

@cache
def calibration(path: Path | None = None) -> dict | None:
    """The committed calibration (None if it is missing or unreadable: the bound is then printed alone)."""
    try:
        return json.loads((path or CALIBRATION).read_text())
    except (OSError, ValueError):
        return None


@cache
def _committed_convergence() -> Convergence:
    found = calibration() or {}
    return Convergence({name: record.get("rows", {}) for name, record in found.get("configs", {}).items()})


def expected_seconds(config: Any, workers: int, capped: bool = False) -> float | None:
    """Expected wall seconds of a sweep of ``config`` on ``workers`` workers (``capped``: every run
    to its cap and every truth drawn); None when nothing counts its kind's work or nothing is calibrated."""
    found = calibration()
    if not found or "prices" not in found:
        return None
    plan = plan_of(config, Convergence({}) if capped else _committed_convergence())
    return None if plan is None else sweep_seconds(plan, found["prices"], workers)


def duration(seconds: float) -> str:
    """A time to plan with: seconds below 2 minutes, minutes below 2 hours, hours above."""
    if seconds < 120:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} minutes"
    hours = seconds / 3600
    return f"{hours:.1f} hours" if hours < 100 else f"{hours:,.0f} hours"


def cost_text(config: Any, workers: int) -> str:
    """'expected about 40 s (at most 12 minutes if every run reached its cap)', for a sweep on
    ``workers`` workers of an otherwise idle machine like the one calibrated."""
    expected = expected_seconds(config, workers)
    at_most = expected_seconds(config, workers, capped=True)
    if expected is None or at_most is None:
        bound = config.kind.estimated_seconds(config.values)
        if bound is None:
            return "no expected time (nothing counts this kind's work)"
        return (f"no expected time (nothing counts this kind's work); at most {duration(bound)} of CPU "
                "if every run reached its cap, by the cost model")
    return f"expected about {duration(expected)} (at most {duration(max(at_most, expected))} if every run reached its cap)"
