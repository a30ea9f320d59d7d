"""Gaussian mixtures with full covariances, fitted by EM only (the lecture's image segmentation).

Each component has a weight, a mean and a covariance. To follow the family protocol, whose
parameters are (pi, mu), a component's mean and covariance travel together in ``mu``, packed:
``mu[..., :D]`` is the mean and ``mu[..., D:]`` the covariance, row by row, so ``mu`` is
[T, m, D + D * D] for data of dimension D (:func:`pack`, :func:`unpack`).

The M-step sets Sigma_c = S_c + (EPSILON / N_c) I, with S_c the responsibility-weighted
covariance and N_c the component's share of the data (so the added variance is in the data's
units: 1e-3 for a component holding a tenth of the pixels). That is the exact M-step of the penalised
objective F = mean_x log p(x) - (EPSILON / 2) sum_c tr(Sigma_c^-1) (a prior that keeps every
covariance away from singular), so EM never decreases F; ``loss`` is -F. There is no gradient
(``capabilities`` is EM only): a config that pairs this family with GD is refused.

Data are weighted points (:class:`emrun.models.gaussian.SampleSet`: ``points`` [P, D],
``weights`` [P] summing to 1), such as the pixels of an image.
"""

from __future__ import annotations

import numpy as np

from emrun.models.gaussian import SampleSet

name = "gaussian_full"
capabilities = frozenset({"em"})
data_kinds = ("image",)  # no population or sampled grid data: the grid kinds refuse this family
em_updates = ("simultaneous",)
boundary_rules = ("none",)
mean_range = None
EPSILON = 1e-4  # the covariance floor's strength (see the module docstring)
DEAD_SHARE = 1e-100  # a component with less of the data than this is dropped (see em_step)
MAX_FEATURES = 8


def max_features(data_kind: str) -> int:
    return MAX_FEATURES


def max_points(data: dict, D: int) -> int:
    return int(data.get("n", 128 * 128))


def mean_width(D: int) -> int:
    """A component's row of ``mu``: its mean and its covariance, packed (the family protocol's
    optional ``mean_width``; emrun check-plugin checks ``mu`` [m, mean_width(D)])."""
    return D + D * D


def pack(mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Means [..., m, D] and covariances [..., m, D, D] -> packed [..., m, D + D * D]."""
    return np.concatenate([mu, cov.reshape(*cov.shape[:-2], -1)], axis=-1)


def unpack(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Packed [..., m, D + D * D] -> means [..., m, D], covariances [..., m, D, D]."""
    D = int(round((np.sqrt(1 + 4 * packed.shape[-1]) - 1) / 2))
    return packed[..., :D], packed[..., D:].reshape(*packed.shape[:-1], D, D)


def random_mixture(m: int, D: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random truth: weights u / sum(u), means uniform in [0, 1]^D, covariances A A^T / D + 0.01 I."""
    pi = rng.uniform(size=m)
    a = rng.normal(scale=0.2, size=(m, D, D))
    cov = a @ np.swapaxes(a, 1, 2) / D + 0.01 * np.eye(D)
    return pi / pi.sum(), pack(rng.uniform(size=(m, D)), cov)


def random_init(m: int, D: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Equal weights, means uniform in [0, 1]^D, covariances 0.1 I."""
    return np.full(m, 1.0 / m), pack(rng.uniform(size=(m, D)), np.broadcast_to(0.1 * np.eye(D), (m, D, D)))


def sample(pi: np.ndarray, mu: np.ndarray, n: int, rng: np.random.Generator) -> SampleSet:
    means, cov = unpack(mu)
    components = rng.choice(len(pi), size=n, p=pi)
    factors = np.linalg.cholesky(cov)
    points = means[components] + np.einsum("nij,nj->ni", factors[components], rng.standard_normal((n, means.shape[1])))
    return SampleSet(points, np.full(n, 1.0 / n))


def population(pi: np.ndarray, mu: np.ndarray):
    raise ValueError("a Gaussian mixture has no finite population: use samples or an image")


def _log_terms(data: SampleSet, pi: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log pi_c + log N(x; mu_c, Sigma_c) [T, m, P], log p(x) [T, P], covariances [T, m, D, D])."""
    means, cov = unpack(mu)
    factor = np.linalg.cholesky(cov)  # [T, m, D, D]
    centred = data.points[None, None] - means[:, :, None, :]  # [T, m, P, D]
    solved = np.linalg.solve(factor[:, :, None], centred[..., None])[..., 0]  # L^-1 (x - mu)
    log_det = 2 * np.log(np.diagonal(factor, axis1=-2, axis2=-1)).sum(axis=-1)  # [T, m]
    D = means.shape[-1]
    with np.errstate(divide="ignore"):
        log_joint = (np.log(pi)[:, :, None] - 0.5 * (solved**2).sum(axis=-1)
                     - 0.5 * (log_det[:, :, None] + D * np.log(2 * np.pi)))
    top = log_joint.max(axis=1, keepdims=True)
    log_p = top[:, 0] + np.log(np.exp(log_joint - top).sum(axis=1))
    return log_joint, log_p, cov


def _penalty(cov: np.ndarray) -> np.ndarray:
    """(EPSILON / 2) sum_c tr(Sigma_c^-1) per trial [T]."""
    return 0.5 * EPSILON * np.trace(np.linalg.inv(cov), axis1=-2, axis2=-1).sum(axis=1)


def log_likelihood(data: SampleSet, pi: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """The weighted mean log-likelihood per trial [T], without the penalty."""
    _, log_p, _ = _log_terms(data, pi, mu)
    return log_p @ data.weights


def loss(data: SampleSet, pi: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """-F: the penalised average negative log-likelihood per trial [T]."""
    _, log_p, cov = _log_terms(data, pi, mu)
    return -(log_p @ data.weights) + _penalty(cov)


def responsibilities(data: SampleSet, pi: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Posterior probability of each component for each point [T, m, P]."""
    log_joint, log_p, _ = _log_terms(data, pi, mu)
    return np.exp(log_joint - log_p[:, None, :])


def em_step(data: SampleSet, pi: np.ndarray, mu: np.ndarray, update: str = "simultaneous"):
    """One EM iteration of every trial: (new pi [T, m], new packed mu, loss -F at the current point [T]).
    A component with no responsibility left keeps its mean and covariance and its weight becomes 0.
    "No responsibility" includes a share below DEAD_SHARE: there its optimal covariance,
    EPSILON / N_c on the diagonal, heads for overflow, while dropping it moves F by less than the
    share itself (far below the monotonicity check's 1e-10 |F|)."""
    if update != "simultaneous":
        raise ValueError(f"unknown EM update {update!r} (gaussian_full has: simultaneous)")
    log_joint, log_p, cov = _log_terms(data, pi, mu)
    current = -(log_p @ data.weights) + _penalty(cov)
    weighted = np.exp(log_joint - log_p[:, None, :]) * data.weights  # w_x r_c(x) [T, m, P]
    share = weighted.sum(axis=2)  # N_c [T, m]
    share = np.where(share > DEAD_SHARE, share, 0.0)
    safe = np.where(share > 0, share, 1.0)
    means_old, _ = unpack(mu)
    means = np.where(share[..., None] > 0, (weighted @ data.points) / safe[..., None], means_old)
    centred = data.points[None, None] - means[:, :, None, :]
    scatter = np.einsum("tmp,tmpi,tmpj->tmij", weighted, centred, centred) / safe[..., None, None]
    D = means.shape[-1]
    new_cov = np.where(share[..., None, None] > 0, scatter + (EPSILON / safe)[..., None, None] * np.eye(D), cov)
    return share, pack(means, new_cov), current


def gradient(data, pi, mu, boundary):
    raise ValueError("gaussian_full offers EM only")


def project(pi, mu):
    raise ValueError("gaussian_full offers EM only")


def at_boundary(mu: np.ndarray) -> np.ndarray:
    return np.zeros(mu.shape[0], dtype=bool)
