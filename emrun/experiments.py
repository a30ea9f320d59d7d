"""What a cell of a config means: draw the truth and the data, draw the inits, run, make rows.

A batch is every run of one (cell, truth): its composition is a pure function of the config, so
rows never depend on how batches are scheduled. ``run_batch`` is what a worker process executes;
it returns plain row dicts, one per run.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from emrun import datasets, faults, seeds, selection
from emrun.algorithms import CONVERGED
from emrun.algorithms import run_batch as run_algorithm
from emrun.config import Cell, Config
from emrun.models import bernoulli, gaussian
from emrun.store import FAILED, BatchResult

FAMILIES = {"bernoulli": bernoulli, "gaussian": gaussian}


@dataclass(frozen=True)
class BatchSpec:
    """One batch of runs: a cell of the grid and a truth index."""

    batch_id: str
    cell: Cell
    truth_index: int


def plan(config: Config, stored: pd.DataFrame | None = None) -> list[BatchSpec]:
    """The batches a config needs, in a fixed order.

    A grid experiment needs every (cell, truth). A first_k_cluster experiment needs, for each
    (m, D), truths in blocks until enough of them have a GD run ending at a k-cluster point: the
    plan grows as ``stored`` rows come in, and the sweep re-plans until it stops growing. Either
    way the batches depend only on the config and on rows that depend only on the config.
    """
    if config.values["experiment"] in ("grid", "theory", "dynamics"):
        return [BatchSpec(f"{cell.label}-truth{t}", cell, t) for cell in config.cells() for t in range(config.n_truths)]
    rule = config.values["truths"]
    firsts = selection.first_k_cluster_run(stored) if stored is not None and len(stored) else None
    batches = []
    for cell in config.cells():
        if firsts is None:
            needed = min(rule["block"], rule["max"])
        else:
            mine = firsts[(firsts["m"] == cell.m) & (firsts["D"] == cell.D)]
            needed = selection.truths_needed(mine, rule["until_k_cluster"], rule["block"], rule["max"])
        batches += [BatchSpec(f"{cell.label}-truth{t}", cell, t) for t in range(needed)]
    return batches


# Where a batch ran (host, platform, numpy): provenance per row; rows from a heterogeneous cluster
# may differ in the last bits, and this says where each came from.
WORKER = f"{platform.node()} | {platform.platform()} | numpy {np.__version__}"
MEMORY_BUDGET = 1 << 30  # bytes of arrays per batch in one worker; with 2 workers within 2 GiB


def bytes_per_trial(values: dict, cell: Cell, n_points: int) -> int:
    """Memory one trial of a batch needs, in bytes (n_points = patterns or sample points, P).

    Compiled Bernoulli kernel (D <= 32): its per-trial lane state, 8 (5 m D + 5 m + 8) bytes (the data,
    P (D + 2) words, are shared by the batch). The numpy loop (the Gaussian family, or any traced
    run): about twelve [m, P] float64 arrays per trial, 96 m P bytes; a trace keeps
    8 (m + m D + 1) bytes per recorded iteration, about six times that once in long form. A dynamics
    study (papers B and C): dynamics.bytes_per_trial.
    """
    m, D = cell.m, cell.D
    if values["experiment"] == "dynamics":
        from emrun import dynamics

        return dynamics.bytes_per_trial(values, m, D)
    record = values.get("record")
    if values["model"] == "bernoulli" and not record and D <= bernoulli.FUSED_MAX_D:
        return 8 * (5 * m * D + 5 * m + 8)
    kept = (max_iterations(values, cell) // record["every"] + 2) * 8 * (m + m * D + 1) * 7 if record else 0
    return 96 * m * n_points + kept


def trials_per_chunk(values: dict, cell: Cell, n_points: int) -> int:
    """How many trials of a batch run together so that its arrays stay within MEMORY_BUDGET;
    it depends on the config only, so rows do not depend on the machine."""
    return max(1, MEMORY_BUDGET // bytes_per_trial(values, cell, n_points))


def find_batch(config: Config, batch_id: str) -> BatchSpec:
    """The batch of a config with this id (as stored in its rows); KeyError if there is none."""
    for cell in config.cells():
        prefix = f"{cell.label}-truth"
        if batch_id.startswith(prefix) and batch_id[len(prefix):].isdigit():
            return BatchSpec(batch_id, cell, int(batch_id[len(prefix):]))
    raise KeyError(batch_id)


def estimated_cost(values: dict, spec: BatchSpec) -> float:
    """Relative run time of a batch (patterns x components x iteration cap), to start long ones first."""
    cell = spec.cell
    return float(data_size(values, cell.D) * cell.m * max_iterations(values, cell) * values["runs"][cell.algorithm])


def data_size(values: dict, D: int) -> int:
    """At most how many distinct patterns (or points) a batch's data has, before drawing it."""
    spec = values["data"]
    if spec["kind"] == "population":
        return 2**D
    if spec["kind"] == "dataset":
        return 1797  # scikit-learn's digits
    return spec["n"] if values["model"] == "gaussian" else min(spec["n"], 2**D)


def max_iterations(values: dict, cell: Cell) -> int:
    """The cell's iteration cap: the grid's, if it varies the cap, else the stopping rule's."""
    return cell.max_iter if cell.max_iter is not None else values["stopping"][cell.algorithm]["max_iter"]


def true_mixture(values: dict, m: int, D: int, truth_index: int) -> tuple[np.ndarray, np.ndarray]:
    """The truth of (m, D, truth index): given in the config, or drawn as in the paper."""
    truths = values["truths"]
    if isinstance(truths, list):
        given = truths[truth_index]
        return np.array(given["pi"]), np.array(given["mu"])
    family = FAMILIES[values["model"]]
    return family.random_mixture(m, D, seeds.generator(values["seed"], seeds.truth_key(m, D, truth_index)))


def make_data(values: dict, m: int, D: int, truth_index: int, pi: np.ndarray, mu: np.ndarray):
    """The population of the truth (Bernoulli: every pattern with its probability), or a sample."""
    spec, family = values["data"], FAMILIES[values["model"]]
    if spec["kind"] == "dataset":
        return datasets.load(spec).data
    if spec["kind"] == "population":
        return family.population(pi, mu)
    rng = seeds.generator(values["seed"], seeds.data_key(m, D, truth_index, spec["n"]))
    return family.sample(pi, mu, spec["n"], rng)


def initial_points(values: dict, cell: Cell, truth_index: int, data=None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Initial pi [R, m] and mu [R, m, D] of the R runs, with the seed of each.

    ``data`` is needed only when ``init_options.at_data_mean`` lists the cell's algorithm: then
    every component but the first starts at the data mean (the paper's GD init for Figure 2)."""
    m, D, runs, seed = cell.m, cell.D, values["runs"][cell.algorithm], values["seed"]
    if cell.init == "given":
        given = values["init_options"]["given"][:runs]
        return (np.array([g["pi"] for g in given]), np.array([g["mu"] for g in given]),
                [f"given:{r}" for r in range(runs)])
    keys = [seeds.init_key(m, D, truth_index, r) for r in range(runs)]
    draws = [FAMILIES[values["model"]].random_init(m, D, seeds.generator(seed, key)) for key in keys]
    pi = np.array([d[0] for d in draws])
    mu = np.array([d[1] for d in draws])
    if cell.init == "near_one_cluster":
        # Component 0 starts with weight epsilon; the others keep their random proportions.
        epsilon = values["init_options"]["epsilon"]
        rest = pi[:, 1:]
        pi = np.concatenate([np.full((runs, 1), epsilon), rest * ((1 - epsilon) / rest.sum(axis=1, keepdims=True))], axis=1)
    if cell.init == "kmeans":
        pi, mu = kmeans_inits(data, m, [seeds.generator(seed, key) for key in keys])
    if cell.algorithm in values["init_options"].get("at_data_mean", []):
        mu[:, 1:] = data.mean
    return pi, mu, [seeds.describe(seed, key) for key in keys]


def kmeans_inits(data, m: int, generators: list) -> tuple[np.ndarray, np.ndarray]:
    """One k-means fit (scikit-learn, one seeded start each) per run on the weighted data: pi = the
    clusters' weights, mu = their centres. Bernoulli centres are kept inside [0.001, 0.999], since a
    centre at exactly 0 or 1 would make patterns impossible for that component from the start."""
    from sklearn.cluster import KMeans

    points = data.points if hasattr(data, "points") else data.patterns
    pis, mus = [], []
    for rng in generators:
        fit = KMeans(n_clusters=m, n_init=1, random_state=int(rng.integers(2**31 - 1))).fit(points, sample_weight=data.weights)
        mass = np.bincount(fit.labels_, weights=data.weights, minlength=m) + 1e-6
        pis.append(mass / mass.sum())
        centres = fit.cluster_centers_
        mus.append(centres if hasattr(data, "points") else np.clip(centres, 1e-3, 1 - 1e-3))
    return np.array(pis), np.array(mus)


def run_batch(values: dict, config_hash: str, spec: BatchSpec, only_runs: list[int] | None = None) -> BatchResult:
    """Run one batch: its rows (one dict per run) and, if the config records any, its traces.

    ``only_runs`` runs just those runs of the batch (a retry of failed trials). If the batched
    computation raises, each trial is run alone so that only the trials that fail are recorded
    as failed, with their error; so is a trial whose parameters or loss end as NaN.
    """
    if values["experiment"] == "theory":
        from emrun import theory

        return theory.run_batch(values, config_hash, spec)
    if values["experiment"] == "dynamics":
        from emrun import dynamics

        return dynamics.run_batch(values, config_hash, spec)
    cell, t = spec.cell, spec.truth_index
    labelled = datasets.load(values["data"]) if values["data"]["kind"] == "dataset" else None
    if labelled is not None:  # real data: no truth to draw
        from sklearn.metrics import adjusted_rand_score

        truth_seed, true_pi, true_mu = f"dataset:{values['data']['name']}", None, None
        data = labelled.data
    else:
        if isinstance(values["truths"], list):
            truth_seed = f"given:{t}"
        else:
            truth_seed = seeds.describe(values["seed"], seeds.truth_key(cell.m, cell.D, t))
        true_pi, true_mu = true_mixture(values, cell.m, cell.D, t)
        data = make_data(values, cell.m, cell.D, t, true_pi, true_mu)
    pi0, mu0, init_seeds = initial_points(values, cell, t, data)
    rule = values["stopping"][cell.algorithm]
    family = FAMILIES[values["model"]]
    record = values.get("record", {"quantities": [], "every": 1})
    gd_boundary = values.get("gd_boundary", "exact")
    em_update = values.get("em_update", "simultaneous")
    max_iter = max_iterations(values, cell)
    runs = list(range(len(pi0))) if only_runs is None else sorted(only_runs)
    start_pi = pi0.copy()
    for r in runs:
        if faults.trial_fault(spec.batch_id, r) == "nan":
            start_pi[r, 0] = np.nan

    def solve(subset: list[int]):
        if any(faults.trial_fault(spec.batch_id, r) == "raise" for r in subset):
            raise RuntimeError("fault injected by EMRUN_TEST_FAULT")
        return run_algorithm(family, data, start_pi[subset], mu0[subset], cell.algorithm, max_iter, rule["tol"],
                             cell.step, gd_boundary=gd_boundary, em_update=em_update,
                             record=tuple(record["quantities"]), record_every=record["every"])

    started = time.perf_counter()
    errors: dict[int, str] = {}
    chunk = trials_per_chunk(values, cell, len(data.weights))
    parts = []
    for first in range(0, len(runs), chunk):
        subset = runs[first:first + chunk]
        try:
            parts.append((subset, solve(subset)))
        except Exception:
            for r in subset:  # find the trials that fail by running each alone
                try:
                    parts.append(([r], solve([r])))
                except Exception as error:  # recorded in the trial's row; the sweep goes on
                    errors[r] = f"{type(error).__name__}: {error}"
    seconds = time.perf_counter() - started

    truth_loss = float(family.loss(data, true_pi[None], true_mu[None])[0]) if true_pi is not None else None
    common = {
        "config": values["name"], "config_hash": config_hash, "batch_id": spec.batch_id,
        "model": values["model"], "m": cell.m, "D": cell.D, "algorithm": cell.algorithm,
        "step": cell.step, "init": cell.init, "data": values["data"]["kind"], "n_samples": values["data"].get("n"),
        "truth_index": t, "truth_seed": truth_seed, "entropy": data.entropy, "truth_loss": truth_loss,
        "n_patterns": len(data.weights), "gd_boundary": gd_boundary if cell.algorithm == "gd" else None,
        "em_update": em_update if cell.algorithm == "em" else None, "max_iter": max_iter,
        "truth_pi": None if true_pi is None else true_pi.tolist(),
        "truth_mu": None if true_mu is None else true_mu.ravel().tolist(), "batch_seconds": seconds,
        "worker": WORKER,
    }

    def row(r: int, outcome=None, i: int = 0, error: str | None = None) -> dict:
        trial = {**common, "run_index": r, "init_seed": init_seeds[r],
                 "init_pi": pi0[r].tolist(), "init_mu": mu0[r].ravel().tolist()}
        if outcome is not None and error is None:
            finite = np.isfinite(outcome.pi[i]).all() and np.isfinite(outcome.mu[i]).all() and not np.isnan(outcome.loss[i])
            if not finite:
                error = f"NaN state: non-finite parameters or loss after {int(outcome.iterations[i])} iterations"
        if error is not None:
            # No outcome: k = -1 (not a count) keeps the column an integer; every report drops failed rows.
            return {**trial, "status": FAILED, "error": error, "converged": False, "iterations": 0, "loss": None,
                    "k": -1, "k_cluster": False, "touched_boundary": False, "pi": None, "mu": None}
        k = int((outcome.pi[i] >= values["k_cluster_threshold"]).sum())
        if labelled is not None:  # agreement of the clustering with the items' labels
            clusters = datasets.assignments(data, outcome.pi[i], outcome.mu[i])[labelled.pattern_of_item]
            trial["ari"] = float(adjusted_rand_score(labelled.labels, clusters))
        return {**trial, "status": str(outcome.status[i]), "error": None,
                "converged": bool(outcome.status[i] == CONVERGED), "iterations": int(outcome.iterations[i]),
                "loss": float(outcome.loss[i]), "k": k, "k_cluster": k < cell.m,
                "touched_boundary": bool(outcome.touched_boundary[i]),
                "pi": outcome.pi[i].tolist(), "mu": outcome.mu[i].ravel().tolist()}

    rows = [row(r, outcome, i) for subset, outcome in parts for i, r in enumerate(subset)]
    rows += [row(r, error=error) for r, error in errors.items()]
    rows.sort(key=lambda trial: trial["run_index"])
    traces = None
    if record["quantities"]:
        traces = pd.concat([trace_table(outcome.trace, spec.batch_id, np.asarray(subset)) for subset, outcome in parts]
                           or [trace_table([], spec.batch_id, np.asarray(runs))], ignore_index=True)
    return BatchResult(rows, traces)


def trace_table(trace: list, batch_id: str, run_of: np.ndarray) -> pd.DataFrame:
    """Recorded iterates in tidy long form: one row per (run, iteration, quantity, component,
    feature); a loss has component and feature -1, a weight feature -1. ``run_of`` maps the
    trial positions of the trace to run indices."""
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
