"""Mixtures of Gaussians with identity covariances, batched over trials (UAI 2019, eq. 2.3).

Shapes: ``pi`` is [T, m], ``mu`` is [T, m, D]; data is a :class:`SampleSet` of N points [N, D]
with weights [N] that sum to 1 (1/N for an i.i.d. sample). The loss is the average negative
log-likelihood ``l = -sum_n w_n log p(x_n)``. Only the weights and the means are learned; the
covariances stay the identity, so GD projects pi onto the simplex and leaves the means free.

Everything is computed in log space (log-sum-exp over components), so a weight of exactly 0 and
points far from every mean give finite losses and gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emrun.models.simplex import project_to_simplex
from emrun.truths import TruthOption

name = "gaussian"
capabilities = frozenset({"em", "gradient"})
data_kinds = ("samples",)  # a continuous mixture has no finite population to enumerate
EM_UPDATES = ("simultaneous",)
BOUNDARY_RULES = ("exact",)  # a Gaussian mean has no boundary
em_updates, boundary_rules = EM_UPDATES, BOUNDARY_RULES
unnormalised_updates = ()
mean_range = None


def max_features(data_kind: str) -> int:
    return 1000


def max_points(data: dict, D: int) -> int:
    return data["n"]


@dataclass(frozen=True)
class SampleSet:
    """Weighted points: points [N, D], weights [N] > 0 summing to 1."""

    points: np.ndarray
    weights: np.ndarray

    @property
    def entropy(self) -> None:
        """No closed form for a sample of a continuous mixture (the reference loss is the best run's)."""
        return None

    @property
    def mean(self) -> np.ndarray:
        return self.weights @ self.points


def random_mixture(m: int, D: int, rng: np.random.Generator, weights: str = "random", separation: float = 0.0,
                   spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """One random truth (pi [m], mu [m, D]); with the defaults, the paper's (Figure 2): pi = u / sum(u),
    u ~ U(0,1)^m; for m = 2, mu_1 ~ U(0,1)^D and mu_2 = -mu_1 (the origin at the midpoint, as in
    Section 4.1). For m != 2 (not in the paper) every mean is drawn from U(-1,1)^D.

    The config's truth options (:data:`truth_options`, key ``truth:`` or grid axes):
    ``weights: equal`` gives pi = 1/m (u is still drawn, so the means are those of the default
    truth); ``spread`` scales the means (mu ~ spread U(-1,1)^D, or mu_1 ~ spread U(0,1)^D for
    m = 2); ``separation`` s makes every pair of means at least s apart: the means are taken in
    order and a mean closer than s to an earlier one is drawn again from the same generator
    (:func:`_separated`; for m = 2, mu_1 is drawn again), so a truth that already meets s is the
    default truth. A ValueError after MAX_REDRAWS redraws says the separation is out of reach of
    the spread (the config check draws every planned truth first, so a sweep never meets it)."""
    u = rng.uniform(size=m)
    pi = np.full(m, 1.0 / m) if weights == "equal" else u / u.sum()
    if m == 2:
        first = spread * rng.uniform(size=D)
        for _ in range(MAX_REDRAWS):
            if not 2.0 * np.linalg.norm(first) < separation:
                return pi, np.stack([first, -first])
            first = spread * rng.uniform(size=D)
        raise ValueError(_too_close(m, D, separation, spread))
    mu = spread * rng.uniform(-1.0, 1.0, size=(m, D))
    if separation > 0:
        mu = _separated(mu, separation, spread, rng)
    return pi, mu


MAX_REDRAWS = 20_000  # redraws of means per truth before a separation is declared out of reach
PATIENCE = 50  # redraws of one mean before the placement starts again from a fresh draw of all of them
truth_options = {
    "weights": TruthOption("random", "random: u / sum(u), u ~ U(0,1)^m; equal: 1/m", choices=("random", "equal")),
    "separation": TruthOption(0.0, "the least distance between two means"),
    "spread": TruthOption(1.0, "the scale of the means: mu ~ spread U(-1,1)^D", strict=True),
}


def _separated(mu: np.ndarray, separation: float, spread: float, rng: np.random.Generator) -> np.ndarray:
    """Means [m, D] at least ``separation`` apart: taken in order, a mean closer than that to an
    earlier one is drawn again; after PATIENCE failures for one mean (the earlier ones leave it no
    room) every mean is drawn again. Means that already meet it are returned unchanged."""
    m, D = mu.shape
    redraws = 0
    while redraws <= MAX_REDRAWS:
        for i in range(1, m):
            tries = 0
            while np.linalg.norm(mu[:i] - mu[i], axis=1).min() < separation and tries < PATIENCE:
                mu[i] = spread * rng.uniform(-1.0, 1.0, size=D)
                tries += 1
            redraws += tries
            if tries == PATIENCE:
                break
        else:
            return mu
        mu = spread * rng.uniform(-1.0, 1.0, size=(m, D))
    raise ValueError(_too_close(m, D, separation, spread))


def _too_close(m: int, D: int, separation: float, spread: float) -> str:
    reach = "2 spread sqrt(D)" if m == 2 else "the box [-spread, spread]^D"
    return (f"no {m} means at least {separation:g} apart found in {MAX_REDRAWS:,} redraws in {reach} with spread "
            f"{spread:g}, D = {D}: raise truth.spread or lower the separation")


def random_init(m: int, D: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The paper's random initialisation: pi = u / sum(u); mu ~ U(-1,1)^(m x D)."""
    u = rng.uniform(size=m)
    return u / u.sum(), rng.uniform(-1.0, 1.0, size=(m, D))


def sample(pi: np.ndarray, mu: np.ndarray, n: int, rng: np.random.Generator) -> SampleSet:
    """N i.i.d. points of one mixture (pi [m], mu [m, D]), each of weight 1/N."""
    components = rng.choice(len(pi), size=n, p=pi)
    points = mu[components] + rng.standard_normal((n, mu.shape[-1]))
    return SampleSet(points, np.full(n, 1.0 / n))


def population(pi: np.ndarray, mu: np.ndarray, points_per_axis: int, basis: np.ndarray | None = None) -> SampleSet:
    """The mixture itself (pi [m], mu [m, D]) as weighted points: a tensor Gauss-Hermite rule of
    ``points_per_axis`` nodes per axis around each component, weighted by pi_c (expectations under
    the mixture of polynomials up to degree 2 * points_per_axis - 1 in each axis are exact).

    With ``basis`` (orthonormal rows [r, D] whose span holds the means), the rule is laid in that
    span only: EM and GD from means in the span stay there (the orthogonal part of x is noise
    independent of every responsibility), so their iterates are those of the population, while the
    loss misses the constant (D - r) (1 + log 2 pi) / 2 of the orthogonal directions."""
    D = mu.shape[1]
    basis = np.eye(D) if basis is None else np.asarray(basis, dtype=float)
    coordinates = mu @ basis.T  # [m, r]
    if np.abs(coordinates @ basis - mu).max() > 1e-9 * max(1.0, np.abs(mu).max()):
        raise ValueError("the means do not lie in the span of the basis")
    nodes, weights = np.polynomial.hermite.hermgauss(points_per_axis)
    r = basis.shape[0]
    grid = np.stack(np.meshgrid(*[np.sqrt(2.0) * nodes] * r, indexing="ij"), axis=-1).reshape(-1, r)
    grid_weights = np.prod(np.stack(np.meshgrid(*[weights / np.sqrt(np.pi)] * r, indexing="ij"), axis=-1).reshape(-1, r),
                           axis=1)
    points = np.concatenate([(c + grid) @ basis for c in coordinates])
    point_weights = np.concatenate([p * grid_weights for p in pi])
    return SampleSet(points, point_weights / point_weights.sum())


def _log_densities(data: SampleSet, mu: np.ndarray) -> np.ndarray:
    """log N(x_n | mu_c, I) for every trial, component and point: [T, m, N]."""
    D = mu.shape[-1]
    squared = (np.sum(data.points**2, axis=1)[None, None, :] - 2.0 * mu @ data.points.T
               + np.sum(mu**2, axis=2)[:, :, None])
    return -0.5 * np.maximum(squared, 0.0) - 0.5 * D * np.log(2.0 * np.pi)


def density_ratios(data: SampleSet, pi: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log p(x_n) [T, N], gamma_c(x_n) = f_c(x_n) / p(x_n) [T, m, N], the paper's eq. 2.6)."""
    log_f = _log_densities(data, mu)
    with np.errstate(divide="ignore"):
        log_terms = np.log(pi)[:, :, None] + log_f  # a weight of 0 gives -inf, dropped by the max
    top = log_terms.max(axis=1)
    log_p = top + np.log(np.exp(log_terms - top[:, None, :]).sum(axis=1))
    return log_p, np.exp(log_f - log_p[:, None, :])


def loss(data: SampleSet, pi: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Average negative log-likelihood per trial [T]."""
    return -(density_ratios(data, pi, mu)[0] @ data.weights)


def responsibilities(data: SampleSet, pi: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Posterior probability of each component for each point, pi_c gamma_c(x_n): [T, m, N]."""
    return pi[:, :, None] * density_ratios(data, pi, mu)[1]


def responsibility_sums(data: SampleSet, pi: np.ndarray, mu: np.ndarray):
    """Z_c = E[gamma_c] [T, m], E[gamma_c x] [T, m, D] and the loss [T] at the given point."""
    log_p, gamma = density_ratios(data, pi, mu)
    weighted = gamma * data.weights
    return weighted.sum(axis=2), weighted @ data.points, -(log_p @ data.weights)


def em_step(data: SampleSet, pi: np.ndarray, mu: np.ndarray, update: str = "simultaneous"):
    """One EM update (eq. 2.7): (new pi [T, m], new mu [T, m, D], loss at the current point [T]).

    A component with Z_c = 0 keeps its means (its weight is 0)."""
    if update not in EM_UPDATES:
        raise ValueError(f"the Gaussian family has EM update {EM_UPDATES[0]!r} only, not {update!r}")
    z, zx, current_loss = responsibility_sums(data, pi, mu)
    z_safe = np.where(z > 0, z, 1.0)[:, :, None]
    return pi * z, np.where(z[:, :, None] > 0, zx / z_safe, mu), current_loss


def gradient(data: SampleSet, pi: np.ndarray, mu: np.ndarray, boundary: str = "exact"):
    """(d l / d pi = -Z_c [T, m], d l / d mu_c = -pi_c E[gamma_c (x - mu_c)] [T, m, D] (eq. 2.11), loss [T])."""
    if boundary not in BOUNDARY_RULES:
        raise ValueError(f"the Gaussian family has no boundary rule {boundary!r}")
    z, zx, current_loss = responsibility_sums(data, pi, mu)
    return -z, -pi[:, :, None] * (zx - z[:, :, None] * mu), current_loss


def project(pi: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """After a gradient step: pi onto the simplex; the means are unconstrained."""
    return project_to_simplex(pi), mu


def at_boundary(mu: np.ndarray) -> np.ndarray:
    """Gaussian means have no boundary: [T] all False."""
    return np.zeros(mu.shape[0], dtype=bool)
