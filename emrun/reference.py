"""A plain implementation of EM and projected GD for Bernoulli mixtures, written the way the
paper's own code is (docs/protocols.md, section 1.3): one trial at a time, Python loops over
patterns, components and features, products taken factor by factor. Obviously correct, slow on purpose: the tests hold
the batched engine to it, and ``make bench`` times it as the baseline.

Means are assumed inside (0, 1) except where GD's clipping puts them on the boundary; the gradient
of eq. 2.13 is taken as pi_c (-1)^(1-x_j) prod_{i != j} B(x_i | mu_ci) / p(x), which is also its
exact one-sided limit there.
"""

from __future__ import annotations


def bernoulli(x: float, mean: float) -> float:
    return mean if x == 1 else 1.0 - mean


def component_probability(pattern, means) -> float:
    product = 1.0
    for x, mean in zip(pattern, means, strict=True):
        product *= bernoulli(x, mean)
    return product


def mixture_probability(pattern, pi, mu) -> float:
    return sum(pi[c] * component_probability(pattern, mu[c]) for c in range(len(pi)))


def loss(patterns, weights, pi, mu) -> float:
    from math import log

    return -sum(w * log(mixture_probability(x, pi, mu)) for x, w in zip(patterns, weights, strict=True))


def em_step(patterns, weights, pi, mu):
    """Eq. 2.7: pi_c <- pi_c E[gamma_c], mu_c <- E[gamma_c x] / E[gamma_c], gamma_c = f_c / p."""
    m, D = len(pi), len(mu[0])
    z = [0.0] * m
    zx = [[0.0] * D for _ in range(m)]
    for x, w in zip(patterns, weights, strict=True):
        p = mixture_probability(x, pi, mu)
        for c in range(m):
            gamma = component_probability(x, mu[c]) / p
            z[c] += w * gamma
            for j in range(D):
                zx[c][j] += w * gamma * x[j]
    new_pi = [pi[c] * z[c] for c in range(m)]
    new_mu = [[min(max(zx[c][j] / z[c], 0.0), 1.0) if z[c] > 0 else mu[c][j] for j in range(D)] for c in range(m)]
    return new_pi, new_mu


def authors_em_step(patterns, weights, pi, mu):
    """The authors' in-place EM, as their code does one iteration (docs/protocols.md, section 1.3):
    with pi held at its value from the start of the iteration, for c = 0, 1, ..., m-1 in order, the
    responsibility of component c at the current point (means 0..c-1 already updated, mu_c and later
    still old) gives N_c = sum of weight x responsibility and mu_c = (sum of weight x responsibility
    x pattern) / N_c; after the loop pi = N / n, n the total weight, each N_c from its own partial
    point, not renormalised."""
    m, D = len(pi), len(mu[0])
    mu = [list(row) for row in mu]
    total_weight = sum(weights)
    counts = [0.0] * m
    for c in range(m):
        weighted_x = [0.0] * D
        for x, w in zip(patterns, weights, strict=True):
            responsibility = pi[c] * component_probability(x, mu[c]) / mixture_probability(x, pi, mu)
            counts[c] += w * responsibility
            for j in range(D):
                weighted_x[j] += w * responsibility * x[j]
        if counts[c] > 0:
            mu[c] = [min(max(weighted_x[j] / counts[c], 0.0), 1.0) for j in range(D)]
    return [counts[c] / total_weight for c in range(m)], mu


def project_to_simplex(v):
    """Duchi et al. (2008)."""
    u = sorted(v, reverse=True)
    cumulative, theta = 0.0, 0.0
    for i, value in enumerate(u):
        cumulative += value
        if value - (cumulative - 1.0) / (i + 1) > 0:
            theta = (cumulative - 1.0) / (i + 1)
    return [max(value - theta, 0.0) for value in v]


def gd_step(patterns, weights, pi, mu, step):
    """Eq. 2.17: pi and mu moved against the gradient (eqs. 2.10, 2.13), then projected."""
    m, D = len(pi), len(mu[0])
    grad_pi = [0.0] * m
    grad_mu = [[0.0] * D for _ in range(m)]
    for x, w in zip(patterns, weights, strict=True):
        p = mixture_probability(x, pi, mu)
        for c in range(m):
            grad_pi[c] -= w * component_probability(x, mu[c]) / p
            for j in range(D):
                others = 1.0
                for i in range(D):
                    if i != j:
                        others *= bernoulli(x[i], mu[c][i])
                sign = 1.0 if x[j] == 1 else -1.0
                grad_mu[c][j] -= w * pi[c] * sign * others / p
    new_pi = project_to_simplex([pi[c] - step * grad_pi[c] for c in range(m)])
    new_mu = [[min(max(mu[c][j] - step * grad_mu[c][j], 0.0), 1.0) for j in range(D)] for c in range(m)]
    return new_pi, new_mu


def run(patterns, weights, pi, mu, algorithm: str, iterations: int, step: float = 0.02, em_update: str = "simultaneous"):
    """``iterations`` steps of EM (eq. 2.7, or the authors' rule) or GD from (pi, mu) (no stopping
    rule): the final (pi, mu)."""
    patterns, weights = [list(map(float, x)) for x in patterns], list(map(float, weights))
    pi, mu = list(map(float, pi)), [list(map(float, row)) for row in mu]
    em = authors_em_step if em_update == "authors" else em_step
    for _ in range(iterations):
        pi, mu = em(patterns, weights, pi, mu) if algorithm == "em" else gd_step(patterns, weights, pi, mu, step)
    return pi, mu
