"""``emrun check-plugin FILE``: the contract every plug-in must meet, checked on numbers (in the
spirit of scikit-learn's check_estimator). Each thing the file registers is checked on its own,
and each result names the part at fault (a family's ``random_mixture``, an init scheme on a
family, an algorithm on a family), so that one part's bug is never blamed on another.

For each model family: its draws (``random_mixture``, ``random_init``, its data) have the shapes
and domains of :class:`emrun.models.Family` and come from the generator they are given alone; EM
never lowers the likelihood (where it offers EM); its gradient matches central finite differences
(where it offers gradients); zero weights or means on the boundary give no NaN. For each init
scheme, on the families it is for: it returns (pi [R, m], mu [R, m, D]) in the family's domain,
each run from its own generator (a run alone starts where it starts among the others). For each
algorithm, on every registered family it can run on (never on a family of the file that failed its
own checks): no NaN from a start with a zero weight, weights on the simplex at the end, statuses
that emrun knows, and a trial alone ending bit for bit as it does inside a batch. Claims must
return a verdict on synthetic rows, report sections Markdown text; kinds must have the protocol's
attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emrun import plugins, registry, seeds
from emrun.algorithms import run_batch
from emrun.batch import STATUSES

TOLERANCE = 1e-9  # relative rise of the loss allowed in one EM step (rounding)
SUM_TOLERANCE = 1e-8  # how far from 1 a mixture's weights may sum
GRID_DATA = ("population", "samples")  # the data kinds the grid experiments draw (a family for other data is not run)


@dataclass
class Result:
    subject: str
    check: str
    passed: bool
    detail: str = ""
    skipped: bool = False  # not run, and why (in detail): a part it needs failed its own checks


def _run(subject: str, check: str, test: Callable[[], tuple[bool, str]]) -> Result:
    """One check: ``test()`` gives (passed, detail); an exception fails it, with the error."""
    try:
        passed, detail = test()
    except Exception as error:  # a broken plug-in fails its check, with the error
        return Result(subject, check, False, f"{type(error).__name__}: {error}")
    return Result(subject, check, bool(passed), detail)


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


def width(family, D: int) -> int:
    """The length of a component's row of mu: D, or the family's ``mean_width(D)`` (a packed covariance)."""
    return family.mean_width(D) if hasattr(family, "mean_width") else D


def _finite(*arrays) -> bool:
    return all(not np.isnan(np.asarray(a, dtype=float)).any() for a in arrays)


def mixture_problem(family, pi, mu, shapes: tuple[tuple, tuple], names: str = "pi, mu") -> str | None:
    """What is wrong with (pi, mu) of the given shapes for ``family``: shape, finiteness, weights
    in [0, 1] summing to 1 along the last axis, means in the family's range; None if nothing."""
    pi, mu = np.asarray(pi, dtype=float), np.asarray(mu, dtype=float)
    (pi_name, mu_name), (pi_shape, mu_shape) = names.split(", "), shapes
    for name, value, shape in ((pi_name, pi, pi_shape), (mu_name, mu, mu_shape)):
        if value.shape != shape:
            return f"{name} has shape {value.shape}, expected {shape}"
        if not np.isfinite(value).all():
            return f"{name} has non-finite values"
    if pi.min() < 0 or np.abs(pi.sum(axis=-1) - 1).max() > SUM_TOLERANCE:
        return f"{pi_name} is not on the simplex (weights {pi.min():.3g}..{pi.max():.3g}, sums {pi.sum(axis=-1).min():.6g}..)"
    if family.mean_range is not None and (mu.min() < family.mean_range[0] or mu.max() > family.mean_range[1]):
        return f"{mu_name} outside the family's mean range {list(family.mean_range)} ({mu.min():.4g}..{mu.max():.4g})"
    return None


# --- model families ---------------------------------------------------------------------------

def check_family(family) -> list[Result]:
    name, m, D = f"family {family.name}", 3, 4
    out = [
        _run(name, "random_mixture(m, D, rng) gives a truth: pi [m] on the simplex, mu [m, D] in the mean range",
             lambda: _drawn(family, family.random_mixture, m, D)),
        _run(name, "random_init(m, D, rng) gives a start: pi [m] on the simplex, mu [m, D] in the mean range",
             lambda: _drawn(family, family.random_init, m, D)),
        _run(name, "random_mixture and random_init draw from the generator they are given only (same seed, same draw)",
             lambda: _same_draws(family, m, D)),
        _run(name, "its data (population or sample) are weighted points: weights [P] summing to 1, points [P, D]",
             lambda: _data_shapes(family, m, D)),
    ]
    if not all(r.passed for r in out):
        return out + [Result(name, "EM, gradient and boundary checks", True, "its draws failed above", skipped=True)]
    data = _data(family, m, D, 0)
    pi, mu = _starts(family, m, D, 20, 1)
    if "em" in family.capabilities:
        out.append(_run(name, "EM never lowers the likelihood (20 starts x 30 steps)",
                        lambda: _em_monotone(family, data, pi, mu)))
    if "gradient" in family.capabilities:
        out.append(_run(name, "gradient matches central finite differences (h = 1e-6, 1e-5 relative)",
                        lambda: _gradient_check(family, data, pi[:5], mu[:5])))
    out.append(_run(name, "no NaN at a zero weight and means on the boundary",
                    lambda: (_boundary_finite(family, data, pi[:3].copy(), mu[:3].copy()), "")))
    return out


def _drawn(family, draw, m: int, D: int) -> tuple[bool, str]:
    result = draw(m, D, np.random.default_rng(5))
    if not isinstance(result, tuple) or len(result) != 2:
        return False, f"returned {type(result).__name__}, not (pi, mu)"
    problem = mixture_problem(family, *result, ((m,), (m, width(family, D))))
    return problem is None, problem or ""


def _same_draws(family, m: int, D: int) -> tuple[bool, str]:
    for draw in (family.random_mixture, family.random_init):
        first = draw(m, D, np.random.default_rng(9))
        np.random.random()  # a draw from numpy's global generator in between must change nothing
        second = draw(m, D, np.random.default_rng(9))
        if not all(np.array_equal(a, b) for a, b in zip(first, second, strict=True)):
            return False, f"{draw.__name__} drew differently from the same seed (does it use numpy's global generator?)"
    return True, ""


def _data_shapes(family, m: int, D: int) -> tuple[bool, str]:
    data = _data(family, m, D, 3)
    weights, points = np.asarray(data.weights, dtype=float), np.asarray(data.points, dtype=float)
    if weights.ndim != 1 or points.shape != (len(weights), D):
        return False, f"weights of shape {weights.shape} and points of shape {points.shape}, expected (P,) and (P, {D})"
    if weights.min() < 0 or abs(weights.sum() - 1) > SUM_TOLERANCE:
        return False, f"weights sum to {weights.sum():.6g}"
    return True, f"{len(weights)} points"


def _em_monotone(family, data, pi, mu) -> tuple[bool, str]:
    losses = [family.loss(data, pi, mu)]
    p, u = pi, mu
    for _ in range(30):
        p, u, _ = family.em_step(data, p, u, family.em_updates[0])
        losses.append(family.loss(data, p, u))
    losses = np.array(losses)
    rises = np.diff(losses, axis=0) > TOLERANCE * np.abs(losses[:-1])
    return not rises.any(), f"{int(rises.sum())} steps raised the loss"


def _gradient_check(family, data, pi, mu) -> tuple[bool, str]:
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
    return worst < 1e-5, f"largest relative difference {worst:.1e}"


def _boundary_finite(family, data, pi, mu) -> bool:
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
    return _finite(*arrays)


# --- init schemes -------------------------------------------------------------------------------

def check_init_scheme(name: str, scheme, families: list, broken: tuple = ()) -> list[Result]:
    """An init scheme on each family it is for: shapes, domain, one generator per run. ``broken``:
    families it is for that failed their own checks (it is not run on them)."""
    out = [Result(f"init scheme {name} on {family.name}", "runs", True, f"not run: family {family.name} failed its own "
                  "checks above", skipped=True) for family in broken]
    for family in families:
        subject = f"init scheme {name} on {family.name}"
        out.append(_run(subject, "returns pi [R, m] on the simplex and mu [R, m, D] in the family's mean range",
                        lambda family=family: _init_shapes(scheme, family)))
        if out[-1].passed:
            out.append(_run(subject, "each run draws from its own generator only (a run alone starts as among the others)",
                            lambda family=family: _init_per_run(scheme, family)))
    if not out:
        out.append(Result(f"init scheme {name}", "runs on some registered family", False,
                          f"no registered family among those it is for ({', '.join(getattr(scheme, 'families', ()))})"))
    return out


INIT_M, INIT_D, INIT_RUNS = 3, 2, 4  # all different, so that a wrong shape says which axis is missing


def _init_context(family, data, runs: list[int], scheme=None):
    from emrun.inits import InitContext, Truth, options_for

    generators = [seeds.generator(11, seeds.init_key(INIT_M, INIT_D, 0, r)) for r in runs]
    truth = Truth(*family.random_mixture(INIT_M, INIT_D, np.random.default_rng(4)))  # the truth of _data(..., 4)
    return InitContext(family, INIT_M, INIT_D, len(runs), data, generators, options_for(scheme, {"epsilon": 1.0e-4}),
                       truth)


def _init_shapes(scheme, family) -> tuple[bool, str]:
    data = _data(family, INIT_M, INIT_D, 4)
    result = scheme(_init_context(family, data, list(range(INIT_RUNS)), scheme))
    if not isinstance(result, tuple) or len(result) != 2:
        return False, f"returned {type(result).__name__}, not (pi, mu)"
    shapes = ((INIT_RUNS, INIT_M), (INIT_RUNS, INIT_M, width(family, INIT_D)))
    problem = mixture_problem(family, *result, shapes)
    if problem is not None and "shape" in problem:
        problem += f" = [runs R, components m{', features D' if problem.startswith('mu') else ''}] with R = {INIT_RUNS}, " \
                   f"m = {INIT_M}, D = {INIT_D}"
    return problem is None, problem or ""


def _init_per_run(scheme, family) -> tuple[bool, str]:
    data = _data(family, INIT_M, INIT_D, 4)
    together = scheme(_init_context(family, data, list(range(INIT_RUNS)), scheme))
    alone = scheme(_init_context(family, data, [2], scheme))
    same = all(np.array_equal(np.asarray(whole)[2], np.asarray(one)[0]) for whole, one in zip(together, alone, strict=True))
    return same, "" if same else (f"run 2 alone starts elsewhere than among {INIT_RUNS} runs: draw run r from "
                                  "ctx.generators[r] only")


def init_families(scheme, own: list, usable: list) -> list:
    """The families an init scheme is checked on: those it names (``scheme.families``), else the
    families its file registers (``own``), else every registered family the grid experiments run."""
    named = getattr(scheme, "families", None)
    if named is not None:
        return [registry.FAMILIES.get(name) for name in named if name in registry.FAMILIES]
    return own or [family for family in usable if set(family.data_kinds) & set(GRID_DATA)]


# --- algorithms, claims, kinds -----------------------------------------------------------------

def check_algorithm(algorithm, families: list | None = None) -> list[Result]:
    """An algorithm on each of ``families`` (default: every registered family) it can run on."""
    out = []
    for family in families if families is not None else [entry.value for _, entry in registry.FAMILIES.items()]:
        if algorithm.requires not in family.capabilities:
            continue
        subject = f"algorithm {algorithm.name} on {family.name}"
        m, D = 3, 3
        data = _data(family, m, D, 2)
        pi, mu = _starts(family, m, D, 6, 3)
        pi[0] = np.array([0.0, 0.5, 0.5])
        try:
            outcome = run_batch(family, data, pi, mu, algorithm, 200, 1e-12, fused=False)
            alone = run_batch(family, data, pi[3:4], mu[3:4], algorithm, 200, 1e-12, fused=False)
        except Exception as error:
            out.append(Result(subject, "runs", False, f"{type(error).__name__}: {error}"))
            continue
        simplex = bool(np.all(outcome.pi >= 0) and np.allclose(outcome.pi.sum(axis=1), 1.0, atol=1e-9))
        out.append(Result(subject, "no NaN from a start with a zero weight (6 trials x 200 iterations)",
                          _finite(outcome.pi, outcome.mu, outcome.loss)))
        out.append(Result(subject, "weights end on the probability simplex", simplex))
        out.append(Result(subject, "statuses are emrun's", set(outcome.status) <= set(STATUSES),
                          f"statuses {sorted(set(outcome.status))}"))
        same = np.array_equal(alone.pi[0], outcome.pi[3]) and np.array_equal(alone.mu[0], outcome.mu[3])
        out.append(Result(subject, "a trial alone ends bit for bit as inside its batch", bool(same)))
    if not out:
        out.append(Result(f"algorithm {algorithm.name}", "runs on some registered family", False,
                          f"no family offers '{algorithm.requires}'"))
    return out


def synthetic_rows() -> pd.DataFrame:
    """Small made-up trial rows (one truth per cell) that claims and report sections are checked on."""
    return pd.DataFrame([dict(m=m, D=D, algorithm=a, truth_index=0, run_index=r, init="uniform", step=0.02,
                              status="converged", k_cluster=r % 3 == 0, likelihood_ratio=1.0, k=m, iterations=5,
                              loss=1.0 + 0.1 * (r % 2), truth_loss=1.0, ref_loss=1.0)
                         for m in (2, 3, 4) for D in (2, 3) for a in ("em", "gd") for r in range(6)])


SYNTHETIC_CONFIG = {"name": "synthetic", "grid": {"algorithm": ["em", "gd"]},
                    "truths": {"until_k_cluster": 2, "block": 2, "max": 4}}


class _AnyLabel(dict):
    """Companions for check-plugin: every label a claim asks for holds synthetic rows."""

    def __missing__(self, label: str) -> pd.DataFrame:
        self[label] = synthetic_rows()
        return self[label]


def check_claim(claim) -> list[Result]:
    from emrun.report.companions import wants_companions

    rows, config = synthetic_rows(), SYNTHETIC_CONFIG
    params = {k: (v if v is not None else "gd") for k, v in claim.params.items()}
    # A claim comparing companion folders gets the same synthetic rows under whatever label it reads.
    extra = {"companions": _AnyLabel()} if wants_companions(claim) else {}

    def judged() -> tuple[bool, str]:
        verdict = claim.judge(rows, config, **params, **extra)
        return verdict.status in ("holds", "does not hold", "not testable"), f"status '{verdict.status}'"

    return [_run(f"claim {claim.name}", "returns a verdict on synthetic trial rows", judged)]


def check_section(section) -> list[Result]:
    """A report section returns Markdown (a str) on synthetic rows; its figures go to a scratch folder."""
    import tempfile

    from emrun.report.sections import render

    def drawn() -> tuple[bool, str]:
        with tempfile.TemporaryDirectory() as scratch:
            text, ctx = render(section, synthetic_rows(), SYNTHETIC_CONFIG, Path(scratch))
            missing = [name for name in ctx.saved if not (Path(scratch) / name).is_file()]
        figures = f", {len(ctx.saved)} figure(s)" if ctx.saved else ""
        return not missing, f"missing figure files {missing}" if missing else f"{len(text)} characters{figures}"

    return [_run(f"report section {section.name}", "returns Markdown text (a str) on synthetic trial rows", drawn)]


def check_kind(kind) -> list[Result]:
    """A registered kind was checked against the protocol when it registered; check it again here
    so that the report names what it has (the checks are emrun.kinds.protocol's)."""
    from emrun.kinds.protocol import protocol_problems

    problems = protocol_problems(getattr(kind, "implementation", kind))
    return [Result(f"kind {kind.name}", "follows the kind protocol (emrun.kinds.protocol)", not problems,
                   "; ".join(problems))]


def check_file(path) -> list[Result]:
    """Import a plug-in file and check everything it registers, each part on its own: families
    first, so that an init scheme or algorithm is never run on a family of the file that failed."""
    plugin = plugins.read_file(Path(path).name, Path(path).resolve().parent)
    plugins.load(plugin)
    mine: dict[str, list] = {}
    for noun, table in registry.ALL.items():
        mine[noun] = [(name, entry.value) for name, entry in table.items() if entry.owner == plugin.owner]
    results: list[Result] = []
    own_families, broken = [], []
    for _, family in mine["model family"]:
        checked = check_family(family)
        results += checked
        (own_families if all(r.passed for r in checked) else broken).append(family)
    usable = [entry.value for _, entry in registry.FAMILIES.items() if entry.value not in broken]
    for name, scheme in mine["init scheme"]:
        meant = init_families(scheme, [family for _, family in mine["model family"]], usable + broken)
        results += check_init_scheme(name, scheme, [f for f in meant if f not in broken], [f for f in meant if f in broken])
    for _, algorithm in mine["algorithm"]:
        results += check_algorithm(algorithm, usable)
        results += [Result(f"algorithm {algorithm.name} on {family.name}", "runs", True,
                           f"not run: family {family.name} failed its own checks above", skipped=True) for family in broken]
    for _, claim in mine["claim"]:
        results += check_claim(claim)
    for _, section in mine["report section"]:
        results += check_section(section)
    for _, kind in mine["experiment kind"]:
        results += check_kind(kind)
    if not results:
        results.append(Result(plugin.label, "registers something", False,
                              "it registered no algorithm, family, init scheme, claim, report section or kind"))
    return results
