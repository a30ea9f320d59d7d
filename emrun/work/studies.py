"""The work of the built-in dynamics studies (emrun.dynamics), one batch each: named by ``work=``
in their registry entries (:mod:`emrun.kinds.dynamics`)."""

from __future__ import annotations

import math
from functools import cache
from typing import Any

from emrun.batch import Cell
from emrun.work import CALLS, STUDY_ROW, Work, compiled, loop, study_calls


def _points(values: dict, m: int, D: int) -> tuple[int, int]:
    """(points, dimensions) of a dynamics batch's expectations: a quadrature rule's nodes in the
    span of the means (emrun.dynamics.bytes_per_trial's count), or the sample in all D."""
    from emrun import dynamics

    nodes = dynamics.bytes_per_trial(values, m, D) // (8 * 5 * m)
    if values["estimator"]["kind"] != "quadrature":
        return nodes, D
    return nodes, 1 if values["study"] == "gradnorm" else min(m, D)


def rates(values: dict, cell: Cell, convergence: Any) -> Work:
    """Every run for all ``iterations`` (a fresh sample per step for fresh_mc); the finer rule at
    the checkpoints; a row per run and checkpoint."""
    options, estimator = values["options"], values["estimator"]
    trials = values["runs"][cell.algorithm] * (len(options["weights"]) if isinstance(options["weights"], list) else 1)
    (points, dims), iterations, checks = _points(values, cell.m, cell.D), options["iterations"], options["checkpoints"]
    stored = (STUDY_ROW + cell.m) * trials * checks
    if estimator["kind"] == "quadrature":  # factorised (emrun.models.gaussian_kernels): compiled, no exponential per node
        finer = (estimator["size"] + 2) ** dims
        return (Work(calls=(iterations + checks) * CALLS["factorised"], values=stored)
                + compiled(trials, iterations, points, cell.m, dims) + compiled(trials, checks, finer, cell.m, dims))
    work = loop(iterations, trials, points, cell.m, dims, values=stored, calls=study_calls(values))
    if estimator["kind"] == "fresh_mc":
        work += Work(exps=iterations * points * cell.D)
    return work


weights = rates  # Figure 1 (right): the same loop over every weight vector


def gradnorm(values: dict, cell: Cell, convergence: Any) -> Work:
    """The gradient once; for D <= trap_max_D, one step per iteration until the outer means' norm
    halves (:func:`escape_steps`)."""
    points, dims = _points(values, cell.m, cell.D)
    work = loop(1, 1, points, cell.m, dims, values=STUDY_ROW, calls=CALLS["gradnorm"])
    if cell.D <= values["options"]["trap_max_D"]:
        steps = min(escape_steps(values, cell), values["options"]["trap_cap"])
        work += loop(steps, 1, points, cell.m, dims, calls=CALLS["gradnorm"])
    return work


def escape_steps(values: dict, cell: Cell) -> float:
    """Steps of gradient EM from Theorem 7's initialisation until the outer means' norm halves."""
    estimator = values["estimator"]
    return _escape_steps(estimator["kind"], estimator["size"], values["options"]["scale"], cell.m, cell.D, cell.step)


@cache
def _escape_steps(kind: str, size: int, scale: float, m: int, D: int, step: float, pieces: int = 24) -> float:
    """By symmetry the outer means move along one axis and the others stay at 0, so the steps are
    those of the one-dimensional flow step x dr/dt = -||grad_1 L(r)|| from r = scale sqrt(D) to
    half of it: the path is cut into ``pieces``, across each of which the speed is taken to vary
    geometrically between its ends (gradients on the config's own rule)."""
    import numpy as np

    from emrun.dynamics import theorem7_means
    from emrun.models import gaussian_means as gm

    pi = np.full((1, m), 1.0 / m)
    start = scale * math.sqrt(D)
    expectations = gm.Expectations(gm.Estimator(kind, size), D)
    radii = np.linspace(start, start / 2, pieces + 1)
    speeds = []
    for r in radii:
        mu = theorem7_means(m, D, r / math.sqrt(D))
        grad, _ = gm.gradient(pi, mu, expectations.nodes(mu))
        speeds.append(max(float(np.linalg.norm(grad[0, 0])), 1e-300) * step)
    total = 0.0
    for a, b, va, vb in zip(radii[:-1], radii[1:], speeds[:-1], speeds[1:], strict=True):
        mean_inverse = 1 / va if abs(vb / va - 1) < 1e-9 else (1 / va - 1 / vb) / math.log(vb / va)
        total += (a - b) * mean_inverse
    return float(total)


def linear_iterations(weights: list[float], D: int, radius: float, tol: float) -> float | None:
    """Iterations of EM on theta (paper C) from theta_0 = radius e_1 until ||grad|| < tol, when it
    converges linearly: the Hessian of L at the truth theta = 0 has the smallest DFT coefficient of
    the weights as its eigenvalue (the DFT condition), so the error contracts by 1 - dft_min per
    step: log(||grad L(theta_0)|| / tol) / -log(1 - dft_min). None when dft_min is 0 (no linear rate)."""
    import numpy as np

    from emrun.models import gaussian_means as gm

    pi = np.array([weights])
    dft = gm.weight_dft_min(pi[0])
    if not dft > 1e-9:
        return None
    k = len(weights)
    R_powers = gm.powers(gm.rotation(k, D), k)
    theta = np.zeros((1, D))
    theta[0, 0] = radius
    mu = gm.tied_means(theta, R_powers)
    _, _, grad = gm.iterate("em", pi, theta, gm.Expectations(gm.Estimator("quadrature", 40), D).nodes(mu), 1.0, R_powers)
    return max(1.0, math.log(float(np.linalg.norm(grad)) / tol) / -math.log(1 - min(dft, 0.999)))


def statrate(values: dict, cell: Cell, convergence: Any) -> Work:
    """For each sample size N, the iterations stored runs like it took to the tolerance, on N points."""
    options = values["options"]
    work = Work(exps=max(options["samples"]) * cell.D)
    for n in options["samples"]:
        iterations = convergence.series_iterations(values, cell, n, options["max_iter"])
        work += loop(iterations, 1, n, cell.m, cell.D, values=STUDY_ROW, calls=CALLS["sample"])
    return work


def simplex_population(values: dict, cell: Cell, convergence: Any) -> Work:
    """Simplex EM (and with free_means, gradient EM) from every (weights, radius) for all
    ``iterations``, every iteration recorded."""
    options = values["options"]
    combos = len(options["weights"]) * len(options["radii"])
    loops = 2 if options["free_means"] else 1
    points, dims = _points(values, cell.m, cell.D)
    stored = (STUDY_ROW + cell.m) * loops * options["iterations"] * combos
    return loop(options["iterations"], combos, points, cell.m, dims, values=stored, calls=study_calls(values, tied=True)) \
        + loop((loops - 1) * options["iterations"], combos, points, cell.m, dims, calls=study_calls(values))


def simplex_samples(values: dict, cell: Cell, convergence: Any) -> Work:
    """For each sample size N, EM on theta for every weight vector together until all meet the
    tolerance: as many iterations as the slowest, from its linear rate (:func:`linear_iterations`)
    or, without one, from stored runs like it."""
    options = values["options"]
    linear = [linear_iterations(w, cell.D, options["radius"], options["tol"]) for w in options["weights"]]
    work = Work(exps=max(options["samples"]) * cell.D)
    for n in options["samples"]:
        slowest = max(linear) if None not in linear else convergence.series_iterations(values, cell, n, options["max_iter"])
        iterations = min(slowest, options["max_iter"])
        stored = (STUDY_ROW + cell.m) * len(options["weights"])
        work += loop(iterations, len(options["weights"]), n, cell.m, cell.D, values=stored, calls=CALLS["sample"] + CALLS["tied"])
    return work


def lloyd(values: dict, cell: Cell, convergence: Any) -> Work:
    """scikit-learn's Lloyd iterations (compiled) on the sample, one k-means++ start."""
    size, cap = values["estimator"]["size"], values["options"]["max_iter"]
    iterations = convergence.series_iterations(values, cell, size, cap)
    return compiled(1, iterations, size, cell.m, cell.D) + Work(values=STUDY_ROW, exps=size * cell.D)

