"""``emrun check-plugin FILE``: the contract every plug-in must meet, checked on numbers (in the
spirit of scikit-learn's check_estimator).

For each model family the file registers: EM never lowers the likelihood (where it offers EM),
its gradient matches central finite differences of its loss (where it offers gradients), and
zero weights or means on the boundary give no NaN. For each algorithm, on every registered family
it can run on: no NaN in a run from a start with a zero weight, weights on the simplex at the end,
statuses that emrun knows, and a trial alone ending bit for bit as it does inside a batch (rows
must not depend on which trials share a batch). Claims must return a verdict on synthetic rows;
kinds must have the protocol's attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from emrun import plugins, registry
from emrun.algorithms import run_batch
from emrun.batch import STATUSES

TOLERANCE = 1e-9  # relative rise of the loss allowed in one EM step (rounding)


@dataclass
class Result:
    subject: str
    check: str
    passed: bool
    detail: str = ""


def _data(family, m: int, D: int, seed: int):
    rng = np.random.default_rng(seed)
    pi, mu = family.random_mixture(m, D, rng)
    if "population" in family.data_kinds and D <= 8:
        return family.population(pi, mu)
    return family.sample(pi, mu, 400, rng)


def _starts(family, m: int, D: int, count: int, seed: int):
    rng = np.random.default_rng(seed)
    draws = [family.random_init(m, D, rng) for _ in range(count)]
    return np.array([d[0] for d in draws]), np.array([d[1] for d in draws])


def _finite(*arrays) -> bool:
    return all(not np.isnan(np.asarray(a, dtype=float)).any() for a in arrays)


def check_family(family) -> list[Result]:
    name, out = f"family {family.name}", []
    m, D = 3, 4
    data = _data(family, m, D, 0)
    pi, mu = _starts(family, m, D, 20, 1)
    if "em" in family.capabilities:
        losses = [family.loss(data, pi, mu)]
        p, u = pi, mu
        for _ in range(30):
            p, u, _ = family.em_step(data, p, u, family.em_updates[0])
            losses.append(family.loss(data, p, u))
        losses = np.array(losses)
        rises = np.diff(losses, axis=0) > TOLERANCE * np.abs(losses[:-1])
        out.append(Result(name, "EM never lowers the likelihood (20 starts x 30 steps)", not rises.any(),
                          f"{int(rises.sum())} steps raised the loss"))
    if "gradient" in family.capabilities:
        out.append(_gradient_check(family, data, pi[:5], mu[:5], name))
    out.append(_boundary_check(family, data, pi[:3].copy(), mu[:3].copy(), name))
    return out


def _gradient_check(family, data, pi, mu, name: str) -> Result:
    boundary = family.boundary_rules[0]
    grad_pi, grad_mu, _ = family.gradient(data, pi, mu, boundary)
    h, worst = 1e-6, 0.0
    for array, grad in ((pi, grad_pi), (mu, grad_mu)):
        flat = array.reshape(len(array), -1)
        for j in range(flat.shape[1]):
            up, down = array.copy(), array.copy()
            up.reshape(len(array), -1)[:, j] += h
            down.reshape(len(array), -1)[:, j] -= h
            args_up = (up, mu) if array is pi else (pi, up)
            args_down = (down, mu) if array is pi else (pi, down)
            numeric = (family.loss(data, *args_up) - family.loss(data, *args_down)) / (2 * h)
            exact = grad.reshape(len(array), -1)[:, j]
            worst = max(worst, float(np.max(np.abs(numeric - exact) / np.maximum(1.0, np.abs(exact)))))
    return Result(name, "gradient matches central finite differences (h = 1e-6, 1e-5 relative)", worst < 1e-5,
                  f"largest relative difference {worst:.1e}")


def _boundary_check(family, data, pi, mu, name: str) -> Result:
    pi[:, 0] = 0.0
    pi = pi / pi.sum(axis=1, keepdims=True)
    if family.mean_range is not None:
        low, high = family.mean_range
        mu[0, 0, 0], mu[1, 1, :] = low, high
    arrays = [family.loss(data, pi, mu), family.responsibilities(data, pi, mu)]
    if "em" in family.capabilities:
        arrays += list(family.em_step(data, pi, mu, family.em_updates[0]))
    if "gradient" in family.capabilities:
        arrays += list(family.gradient(data, pi, mu, family.boundary_rules[0]))
        arrays += list(family.project(pi, mu))
    return Result(name, "no NaN at a zero weight and means on the boundary", _finite(*arrays))


def check_algorithm(algorithm) -> list[Result]:
    out = []
    for family_name, entry in registry.FAMILIES.items():
        family = entry.value
        if algorithm.requires not in family.capabilities:
            continue
        subject = f"algorithm {algorithm.name} on {family_name}"
        m, D = 3, 3
        data = _data(family, m, D, 2)
        pi, mu = _starts(family, m, D, 6, 3)
        pi[0] = np.array([0.0, 0.5, 0.5])
        outcome = run_batch(family, data, pi, mu, algorithm, 200, 1e-12, fused=False)
        simplex = bool(np.all(outcome.pi >= 0) and np.allclose(outcome.pi.sum(axis=1), 1.0, atol=1e-9))
        out.append(Result(subject, "no NaN from a start with a zero weight (6 trials x 200 iterations)",
                          _finite(outcome.pi, outcome.mu, outcome.loss)))
        out.append(Result(subject, "weights end on the probability simplex", simplex))
        out.append(Result(subject, "statuses are emrun's", set(outcome.status) <= set(STATUSES),
                          f"statuses {sorted(set(outcome.status))}"))
        alone = run_batch(family, data, pi[3:4], mu[3:4], algorithm, 200, 1e-12, fused=False)
        same = np.array_equal(alone.pi[0], outcome.pi[3]) and np.array_equal(alone.mu[0], outcome.mu[3])
        out.append(Result(subject, "a trial alone ends bit for bit as inside its batch", bool(same)))
    if not out:
        out.append(Result(f"algorithm {algorithm.name}", "runs on some registered family", False,
                          f"no family offers '{algorithm.requires}'"))
    return out


def check_claim(claim) -> list[Result]:
    rows = pd.DataFrame([dict(m=m, D=D, algorithm=a, truth_index=0, run_index=r, init="uniform", step=0.02,
                              status="converged", k_cluster=r % 3 == 0, likelihood_ratio=1.0, k=m, iterations=5)
                         for m in (2, 3, 4) for D in (2, 3) for a in ("em", "gd") for r in range(6)])
    params = {k: (v if v is not None else "gd") for k, v in claim.params.items()}
    try:
        config = {"grid": {"algorithm": ["em", "gd"]}, "truths": {"until_k_cluster": 2, "block": 2, "max": 4}}
        verdict = claim.judge(rows, config, **params)
        passed, detail = verdict.status in ("holds", "does not hold", "not testable"), f"status '{verdict.status}'"
    except Exception as error:
        passed, detail = False, f"{type(error).__name__}: {error}"
    return [Result(f"claim {claim.name}", "returns a verdict on synthetic trial rows", passed, detail)]


def check_kind(kind) -> list[Result]:
    wanted = ("name", "keys", "row_noun", "adaptive", "replayable", "validate", "names_used", "cells", "n_truths",
              "plan", "find_batch", "run_batch", "estimated_cost", "postprocess", "write_report", "describe",
              "status_lines", "failed_rows")
    missing = [attribute for attribute in wanted if not hasattr(kind, attribute)]
    return [Result(f"kind {kind.name}", "has every attribute of emrun.kinds.ExperimentKind", not missing,
                   f"missing {', '.join(missing)}" if missing else "")]


CHECKERS = {"model family": check_family, "algorithm": check_algorithm, "claim": check_claim,
            "experiment kind": check_kind}


def check_file(path) -> list[Result]:
    """Import a plug-in file and check everything it registers."""
    from pathlib import Path

    plugin = plugins.read_file(Path(path).name, Path(path).resolve().parent)
    plugins.load(plugin)
    results = []
    for noun, table in registry.ALL.items():
        for _, entry in table.items():
            if entry.owner == plugin.owner and noun in CHECKERS:
                try:
                    results += CHECKERS[noun](entry.value)
                except Exception as error:  # a broken plug-in fails its check, with the error
                    results.append(Result(f"{noun} {getattr(entry.value, 'name', '?')}", "runs", False,
                                          f"{type(error).__name__}: {error}"))
    if not results:
        results.append(Result(plugin.label, "registers something", False, "it registered no algorithm, family, claim or kind"))
    return results
