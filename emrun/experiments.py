"""What a cell of a trial grid means: draw the truth and the data, draw the inits, run, make rows.

``run_batch`` is what a worker process executes for a batch of a grid or first_k_cluster config:
every run of one (cell, truth) as one batched computation, one row per run. The family, the
algorithm and the init scheme are looked up by the names the config gives.
"""

from __future__ import annotations

import time
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from emrun import datasets, faults, seeds, truths
from emrun.algorithms import PluginOutputError, loop_bytes_per_trial
from emrun.algorithms import run_batch as run_algorithm
from emrun.batch import CONVERGED, FAILED, BatchResult, BatchSpec, Cell, worker_description
from emrun.kinds.base import algorithm_columns
from emrun.registry import ACCELERATORS, ALGORITHMS, FAMILIES, INIT_SCHEMES

if TYPE_CHECKING:  # pandas is imported where rows are tabled: a worker running a batch never needs it
    import pandas as pd

# Columns that may hold only missing values (a batch where every trial failed): typed all the same.
COLUMN_TYPES = {"error": "string", "loss": "double", "pi": "list<double>", "mu": "list<double>", "ari": "double"}
MEMORY_BUDGET = 1 << 30  # bytes of arrays per batch in one worker; with 2 workers within 2 GiB


@cache
def _worker() -> str:
    return worker_description()


def bytes_per_trial(values: dict, cell: Cell, n_points: int) -> int:
    """Memory one trial of a batch needs, in bytes (n_points = patterns or sample points, P).

    An accelerator (the compiled Bernoulli kernel) says what its per-trial state costs. The numpy
    loop (the Gaussian family, or any traced run): about twelve [m, P] float64 arrays per trial,
    96 m P bytes; a trace keeps 8 (m + m D + 1) bytes per recorded iteration, about six times that
    once in long form.
    """
    m, D = cell.m, cell.D
    record = values.get("record")
    key = f"{values['model']}/{cell.algorithm}"
    if not record and key in ACCELERATORS and D <= ACCELERATORS.get(key).max_features:
        return ACCELERATORS.get(key).bytes_per_trial(m, D)
    kept = (max_iterations(values, cell) // record["every"] + 2) * 8 * (m + m * D + 1) * 7 if record else 0
    return loop_bytes_per_trial(m, n_points) + kept


def seconds_per_trial_iteration(values: dict, cell: Cell) -> float:
    """The cost model of one trial-iteration, from ``make bench`` on this project's 2-core machine:
    about 1.5 ns per (component x pattern x feature) in the compiled kernel (0.9 us at m = 3, D = 5
    population; 61 us at m = 6, D = 10) and ten times that in the numpy loop (the Gaussian family,
    plug-in algorithms, traced runs), plus a fixed cost per iteration."""
    points = data_size(values, cell.D)
    key = f"{values['model']}/{cell.algorithm}"
    compiled = not values.get("record") and key in ACCELERATORS and cell.D <= ACCELERATORS.get(key).max_features
    if compiled:
        return 1.5e-9 * cell.m * points * (cell.D + 1) + 2e-7
    return 1.5e-8 * cell.m * points * (cell.D + 2) + 5e-6


def trials_per_chunk(values: dict, cell: Cell, n_points: int) -> int:
    """How many trials of a batch run together so that its arrays stay within MEMORY_BUDGET;
    it depends on the config only, so rows do not depend on the machine."""
    return max(1, MEMORY_BUDGET // bytes_per_trial(values, cell, n_points))


def data_size(values: dict, D: int) -> int:
    """At most how many distinct patterns (or points) a batch's data has, before drawing it."""
    return FAMILIES.get(values["model"]).max_points(values["data"], D)


def max_iterations(values: dict, cell: Cell) -> int:
    """The cell's iteration cap: the grid's, if it varies the cap, else the stopping rule's."""
    return cell.max_iter if cell.max_iter is not None else values["stopping"][cell.algorithm]["max_iter"]


def hyperparameters(values: dict, cell: Cell) -> dict:
    """The algorithm's hyperparameters in this cell: its defaults, the cell's step and grid axes."""
    params = {**ALGORITHMS.get(cell.algorithm).hyperparameters, **dict(cell.params)}
    if cell.step is not None:
        params["step"] = cell.step
    return params


def true_mixture(values: dict, m: int, D: int, truth_index: int, cell_truth: tuple = ()) -> tuple[np.ndarray, np.ndarray]:
    """The truth of (m, D, truth index): given in the config, or drawn as in the paper, with the
    config's truth options and the cell's truth axes (``Cell.truth``) where it sets any. The
    generator depends on (m, D, truth index) only: truths of one index that differ in an option
    share their draws (a paired comparison, as inits are shared by algorithms)."""
    given = values["truths"]
    if isinstance(given, list):
        return np.array(given[truth_index]["pi"]), np.array(given[truth_index]["mu"])
    family = FAMILIES.get(values["model"])
    rng = seeds.generator(values["seed"], seeds.truth_key(m, D, truth_index))
    return family.random_mixture(m, D, rng, **truths.chosen(values, cell_truth))


def make_data(values: dict, m: int, D: int, truth_index: int, pi: np.ndarray, mu: np.ndarray):
    """The population of the truth (Bernoulli: every pattern with its probability), or a sample."""
    spec, family = values["data"], FAMILIES.get(values["model"])
    if spec["kind"] == "dataset":
        return datasets.load(spec).data
    if spec["kind"] == "population":
        return family.population(pi, mu)
    rng = seeds.generator(values["seed"], seeds.data_key(m, D, truth_index, spec["n"]))
    return family.sample(pi, mu, spec["n"], rng)


def initial_points(values: dict, cell: Cell, truth_index: int, data=None,
                   truth: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Initial pi [R, m] and mu [R, m, D] of the R runs, with the seed of each, from the cell's
    init scheme, which sees the batch's ``truth`` (pi [m], mu [m, D]; None for a data set) and
    the config's init_options over the scheme's declared defaults. When
    ``init_options.at_data_mean`` lists the cell's algorithm, every component but the first
    starts at the data mean (the paper's GD init for Figure 2)."""
    from emrun.inits import InitContext, Truth, options_for

    m, D, runs, seed = cell.m, cell.D, values["runs"][cell.algorithm], values["seed"]
    keys = [seeds.init_key(m, D, truth_index, r) for r in range(runs)]
    scheme = INIT_SCHEMES.get(cell.init)
    context = InitContext(FAMILIES.get(values["model"]), m, D, runs, data, [seeds.generator(seed, key) for key in keys],
                          options_for(scheme, values["init_options"]), None if truth is None or truth[0] is None
                          else Truth(np.array(truth[0]), np.array(truth[1])))
    try:
        drawn = scheme(context)
    except Exception as error:  # inits come from the seeds alone: running again repeats it
        raise PluginOutputError(f"init scheme '{cell.init}' ({INIT_SCHEMES.origin(cell.init)}) raised "
                                f"{type(error).__name__}: {error}") from None
    pi, mu = _checked_init(cell.init, drawn, runs, m, D)
    if cell.algorithm in values["init_options"].get("at_data_mean", []):
        mu[:, 1:] = data.mean
    names = [seeds.describe(seed, key) for key in keys] if getattr(scheme, "seeded", True) else \
        [f"{cell.init}:{r}" for r in range(runs)]
    return pi, mu, names


def _checked_init(name: str, result, runs: int, m: int, D: int) -> tuple[np.ndarray, np.ndarray]:
    """An init scheme's (pi [R, m], mu [R, m, D]), checked: a scheme returning mu as [R, m] would
    otherwise pass and fail every trial with numpy's own message."""
    origin = INIT_SCHEMES.origin(name)
    if not isinstance(result, tuple) or len(result) != 2:
        raise PluginOutputError(f"init scheme '{name}' ({origin}) returned {type(result).__name__}, not (pi, mu)")
    pi, mu = np.array(result[0], dtype=float), np.array(result[1], dtype=float)
    for label, value, shape in (("pi", pi, (runs, m)), ("mu", mu, (runs, m, D))):
        if value.shape != shape:
            raise PluginOutputError(f"init scheme '{name}' ({origin}) returned {label} of shape {value.shape}, expected {shape}")
        if not np.isfinite(value).all():
            raise PluginOutputError(f"init scheme '{name}' ({origin}) returned non-finite values in {label}")
    return pi, mu


def _truth_and_data(values: dict, cell: Cell, t: int):
    """(truth seed, true pi or None, true mu or None, data, labelled data set or None)."""
    if values["data"]["kind"] == "dataset":  # real data: no truth to draw
        labelled = datasets.load(values["data"])
        return f"dataset:{values['data']['name']}", None, None, labelled.data, labelled
    if isinstance(values["truths"], list):
        truth_seed = f"given:{t}"
    else:
        truth_seed = seeds.describe(values["seed"], seeds.truth_key(cell.m, cell.D, t))
    true_pi, true_mu = true_mixture(values, cell.m, cell.D, t, cell.truth)
    return truth_seed, true_pi, true_mu, make_data(values, cell.m, cell.D, t, true_pi, true_mu), None


def outside_domain(model: str, pi: np.ndarray, mu: np.ndarray) -> str | None:
    """What lies outside the model's domain (weights in [0, 1], means in the family's
    ``mean_range``), the bounds the store checks every row against; None if nothing does."""
    mean_range = getattr(FAMILIES.get(model), "mean_range", None)
    for name, values, (low, high) in (("pi", pi, (0.0, 1.0)), ("mu", mu, mean_range or (None, None))):
        if low is not None and values.size and (values.min() < low or values.max() > high):
            return f"'{name}' outside [{low:g}, {high:g}] ({values.min():.4g}..{values.max():.4g})"
    return None


def _solve_in_chunks(values: dict, spec: BatchSpec, data, start_pi, mu0, runs: list[int]):
    """Run the trials in memory-bounded chunks; if a chunk raises, run its trials alone so that only
    the trials that fail are recorded as failed. Returns ([(runs, outcome)], {run: error})."""
    cell = spec.cell
    rule = values["stopping"][cell.algorithm]
    record = values.get("record", {"quantities": [], "every": 1})

    def solve(subset: list[int]):
        if any(faults.trial_fault(spec.batch_id, r) == "raise" for r in subset):
            raise RuntimeError("fault injected by EMRUN_TEST_FAULT")
        return run_algorithm(values["model"], data, start_pi[subset], mu0[subset], cell.algorithm,
                             max_iterations(values, cell), rule["tol"], params=hyperparameters(values, cell),
                             gd_boundary=values.get("gd_boundary"), em_update=values.get("em_update"),
                             record=tuple(record["quantities"]), record_every=record["every"])

    errors: dict[int, str] = {}
    chunk = trials_per_chunk(values, cell, len(data.weights))
    parts = []
    for first in range(0, len(runs), chunk):
        subset = runs[first:first + chunk]
        try:
            parts.append((subset, solve(subset)))
        except PluginOutputError as error:  # the code's fault, not a trial's: running each alone would hide it
            errors.update({r: f"{type(error).__name__}: {error}" for r in subset})
        except (Exception, SystemExit):  # SystemExit: a plug-in may not end the worker as a success
            for r in subset:  # find the trials that fail by running each alone
                try:
                    parts.append(([r], solve([r])))
                except (Exception, SystemExit) as error:  # recorded in the trial's row; the sweep goes on
                    errors[r] = f"{type(error).__name__}: {error}"
    return parts, errors


def run_batch(values: dict, config_hash: str, spec: BatchSpec, only_runs: list[int] | None = None) -> BatchResult:
    """Run one batch: its rows (one dict per run) and, if the config records any, its traces.

    ``only_runs`` runs just those runs of the batch (a retry of failed trials). A trial whose
    computation raises, or whose parameters or loss end as NaN, is a failed row with its error.
    """
    cell, t = spec.cell, spec.truth_index
    truth_seed, true_pi, true_mu, data, labelled = _truth_and_data(values, cell, t)
    pi0, mu0, init_seeds = initial_points(values, cell, t, data, (true_pi, true_mu))
    if (outside := outside_domain(values["model"], pi0, mu0)) is not None:  # the scheme's fault: running again repeats it
        raise PluginOutputError(f"init scheme '{cell.init}' ({INIT_SCHEMES.origin(cell.init)}) gave {outside}")
    runs = list(range(len(pi0))) if only_runs is None else sorted(only_runs)
    start_pi = pi0.copy()
    for r in runs:
        if faults.trial_fault(spec.batch_id, r) == "nan":
            start_pi[r, 0] = np.nan
    started = time.perf_counter()
    parts, errors = _solve_in_chunks(values, spec, data, start_pi, mu0, runs)
    seconds = time.perf_counter() - started

    family = FAMILIES.get(values["model"])
    truth_loss = float(family.loss(data, true_pi[None], true_mu[None])[0]) if true_pi is not None else None
    common = {
        "config": values["name"], "config_hash": config_hash, "batch_id": spec.batch_id,
        "model": values["model"], "m": cell.m, "D": cell.D, "algorithm": cell.algorithm,
        "step": cell.step, "init": cell.init, "data": values["data"]["kind"], "n_samples": values["data"].get("n"),
        "truth_index": t, "truth_seed": truth_seed, "entropy": data.entropy, "truth_loss": truth_loss,
        "n_patterns": len(data.weights),
        "gd_boundary": values.get("gd_boundary", family.boundary_rules[0]) if cell.algorithm == "gd" else None,
        "em_update": values.get("em_update", family.em_updates[0]) if cell.algorithm == "em" else None,
        "max_iter": max_iterations(values, cell),
        "truth_pi": None if true_pi is None else true_pi.tolist(),
        "truth_mu": None if true_mu is None else true_mu.ravel().tolist(), "batch_seconds": seconds,
        "worker": _worker(),
        **{name: dict(cell.params).get(name) for name in algorithm_columns(values)},
        **truths.columns(values, cell.truth),  # only for a config that sets truth options
    }
    rows = [_row(values, common, cell, labelled, data, r, pi0, mu0, init_seeds, outcome, i)
            for subset, outcome in parts for i, r in enumerate(subset)]
    rows += [_row(values, common, cell, labelled, data, r, pi0, mu0, init_seeds, error=error) for r, error in errors.items()]
    rows.sort(key=lambda trial: trial["run_index"])
    traces = None
    if values.get("record"):
        import pandas as pd

        traces = pd.concat([trace_table(outcome.trace, spec.batch_id, np.asarray(subset)) for subset, outcome in parts]
                           or [trace_table([], spec.batch_id, np.asarray(runs))], ignore_index=True)
    failed = sorted(row["run_index"] for row in rows if row["status"] == FAILED)
    return BatchResult(rows, traces, failed, COLUMN_TYPES)


def _row(values, common, cell, labelled, data, r, pi0, mu0, init_seeds, outcome=None, i: int = 0,
         error: str | None = None) -> dict:
    trial = {**common, "run_index": r, "init_seed": init_seeds[r], "init_pi": pi0[r].tolist(), "init_mu": mu0[r].ravel().tolist()}
    if outcome is not None and error is None and i in outcome.errors:
        error = outcome.errors[i]
    if outcome is not None and error is None:
        finite = np.isfinite(outcome.pi[i]).all() and np.isfinite(outcome.mu[i]).all() and not np.isnan(outcome.loss[i])
        if not finite:
            error = f"NaN state: non-finite parameters or loss after {int(outcome.iterations[i])} iterations"
        elif (outside := outside_domain(values["model"], outcome.pi[i], outcome.mu[i])) is not None:
            # The store refuses such rows: a failed trial says why, where a stored row would be set aside.
            error = (f"{outside} after {int(outcome.iterations[i])} iterations: the update left the model's "
                     "domain (an algorithm must project its iterates)")
    if error is not None:
        # No outcome: k = -1 (not a count) keeps the column an integer; every report drops failed rows.
        return {**trial, "status": FAILED, "error": error, "converged": False, "iterations": 0, "loss": None,
                "k": -1, "k_cluster": False, "touched_boundary": False, "pi": None, "mu": None}
    if cell.algorithm == "em" and values.get("em_update") in getattr(FAMILIES.get(values["model"]), "unnormalised_updates", ()):
        # This rule leaves sum(pi) != 1 (loss and ratio are taken at pi renormalised): say by how
        # much, and how often its loss rose.
        trial["pi_sum_excess"] = float(outcome.pi[i].sum() - 1.0)
        trial["loss_increases"] = int(outcome.loss_increases[i]) if outcome.loss_increases is not None else None
    k = int((outcome.pi[i] >= values["k_cluster_threshold"]).sum())
    if labelled is not None:  # agreement of the clustering with the items' labels
        from sklearn.metrics import adjusted_rand_score

        clusters = datasets.assignments(data, outcome.pi[i], outcome.mu[i])[labelled.pattern_of_item]
        trial["ari"] = float(adjusted_rand_score(labelled.labels, clusters))
    return {**trial, "status": str(outcome.status[i]), "error": None,
            "converged": bool(outcome.status[i] == CONVERGED), "iterations": int(outcome.iterations[i]),
            "loss": float(outcome.loss[i]), "k": k, "k_cluster": k < cell.m,
            "touched_boundary": bool(outcome.touched_boundary[i]),
            "pi": outcome.pi[i].tolist(), "mu": outcome.mu[i].ravel().tolist()}


def trace_table(trace: list, batch_id: str, run_of: np.ndarray) -> pd.DataFrame:
    """Recorded iterates in tidy long form: one row per (run, iteration, quantity, component,
    feature); a loss has component and feature -1, a weight feature -1. ``run_of`` maps the
    trial positions of the trace to run indices."""
    import pandas as pd

    parts = []
    for iteration, ids, values in trace:
        for quantity, array in values.items():
            array = np.asarray(array)  # [k], [k, m] or [k, m, D]
            index = np.indices(array.shape).reshape(array.ndim, -1)
            parts.append(pd.DataFrame({
                "run_index": run_of[ids[index[0]]], "iteration": iteration, "quantity": quantity,
                "component": index[1] if array.ndim > 1 else -1, "feature": index[2] if array.ndim > 2 else -1,
                "value": array.ravel()}))
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["run_index", "iteration", "quantity", "component", "feature", "value"])
    table.insert(0, "batch_id", batch_id)
    return table.sort_values(["run_index", "quantity", "iteration", "component", "feature"], ignore_index=True)
