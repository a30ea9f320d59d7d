"""Gaussian mixtures with fixed weights and identity covariances fitted to N(0, I_d): only the means
are learned (Xu, Fazel & Du 2024, "paper B"; Assylbekov et al. 2025, "paper C").

Shapes: ``pi`` [T, n], means ``mu`` [T, n, d], for T trials batched together. The loss is
L(mu) = KL(N(0, I) || p_mu) = -E_x[logsumexp_i(log pi_i + <x, mu_i> - ||mu_i||^2 / 2)], an
expectation over x ~ N(0, I) written so that it is exactly 0 at mu = 0 (no entropy is subtracted,
so L can be followed down to the float64 floor). Gradient EM (paper B, eq. 3) is GD on L (Fact 1):
grad_i L = E[psi_i(x) (mu_i - x)], psi the posterior (eq. 2).

Expectations come from an :class:`Estimator`: tensor Gauss-Hermite quadrature in the span of the
means (every integrand depends on x only through <x, mu_i>, so integrating in r = rank(mu)
dimensions is exact), a fixed antithetic whitened sample (common random numbers: deterministic
dynamics), a fresh sample per step (the paper's Monte Carlo), or a finite data set (sample EM).
A quadrature rule's expectations can also be computed through its tensor structure
(:mod:`emrun.models.gaussian_kernels`, compiled): faster, at a last-bits cost in L.

Tied means (paper C): mu_j = R^j theta with R orthogonal, R^k = I; the loss is a function of theta,
whose gradient is sum_j R^{-j} grad_j L, and EM on theta is GD with unit step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ESTIMATORS = ("quadrature", "whitened_mc", "fresh_mc", "sample")
MAX_NODES = 2_000_000  # quadrature nodes per evaluation (points^rank); beyond that, memory and time explode
_RANK_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Estimator:
    """How E_{x ~ N(0, I_d)}[.] is computed. ``size`` is points per axis (quadrature) or the number
    of sample points (the other kinds); ``seed`` feeds the samples."""

    kind: str
    size: int
    seed: int = 0


@dataclass(frozen=True)
class Nodes:
    """Where the integrand is evaluated: ``x`` [T or 1, P, r] in the coordinates of ``basis``
    [T, d, r] (None: the standard axes, r = d), with weights ``w`` [P] summing to 1. ``axis``
    (nodes [p], weights [p]): the nodes are that one-axis rule's tensor product, and expectations
    may be computed through it (:mod:`emrun.models.gaussian_kernels`)."""

    x: np.ndarray
    w: np.ndarray
    basis: np.ndarray | None
    axis: tuple[np.ndarray, np.ndarray] | None = None


def gauss_hermite(points: int, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor Gauss-Hermite rule for N(0, I_dims): nodes [points^dims, dims], weights summing to 1."""
    if points**dims > MAX_NODES:
        raise ValueError(f"quadrature with {points} points per axis in {dims} dimensions needs {points**dims:,} "
                         f"nodes (at most {MAX_NODES:,}); lower estimator.size or use a Monte Carlo estimator")
    x, w = axis_rule(points)
    grids = np.meshgrid(*([x] * dims), indexing="ij")
    weights = np.ones(1)
    for _ in range(dims):
        weights = np.multiply.outer(weights, w)
    return np.stack([g.ravel() for g in grids], axis=1), weights.ravel()


def axis_rule(points: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite rule for N(0, 1): nodes [points], weights [points] summing to 1."""
    from scipy.special import roots_hermitenorm  # here: scipy.special costs every emrun process 0.17 s to import

    x, w = roots_hermitenorm(points)  # numpy's hermegauss overflows beyond ~300 points
    return x, w / w.sum()


def whitened_sample(size: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` points (even) whose empirical mean is exactly 0 (antithetic pairs x, -x) and whose
    empirical covariance is exactly I (whitened): the first two moments of N(0, I) are exact."""
    half = rng.standard_normal((size // 2, d))
    points = np.concatenate([half, -half])
    covariance = points.T @ points / len(points)
    return points @ np.linalg.inv(np.linalg.cholesky(covariance)).T


def _rank(singular: np.ndarray) -> int:
    scale = np.maximum(singular[:, :1], 1e-300)
    return max(1, int((singular > _RANK_TOLERANCE * scale).sum(axis=1).max()))


def span_basis(mu: np.ndarray) -> np.ndarray | None:
    """An orthonormal basis [T, d, r] holding every trial's means (r = the largest numerical rank),
    or None when the means span all d dimensions (then the standard axes serve). The rank comes
    from the singular values alone, which cost a fraction of the full SVD the basis needs."""
    d = mu.shape[2]
    if mu.shape[1] >= d and _rank(np.linalg.svd(mu, compute_uv=False)) == d:
        return None
    _, singular, vt = np.linalg.svd(mu, full_matrices=False)  # vt [T, min(n, d), d]
    return np.swapaxes(vt[:, :_rank(singular)], 1, 2)


class Expectations:
    """The nodes of an estimator at each step: quadrature rules are cached by rank, a fixed sample is
    drawn once, a fresh sample is drawn from (seed, step). ``data`` [P, d] or [T, P, d]: sample EM.
    ``factorised``: quadrature expectations go through the rule's tensor structure (several times
    faster; L differs from the node-by-node sum by ~1e-15, tested to 1e-13, so not for studies that
    follow L to the float64 floor)."""

    def __init__(self, estimator: Estimator, d: int, data: np.ndarray | None = None, factorised: bool = False):
        self.estimator, self.d, self.factorised = estimator, d, factorised
        self._rules: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._fixed: Nodes | None = None
        self._axis: tuple[np.ndarray, np.ndarray] | None = None
        kind, size = estimator.kind, estimator.size
        if kind == "sample":
            if data is None:
                raise ValueError("estimator 'sample' needs the data points")
            self._fixed = Nodes(data if data.ndim == 3 else data[None], np.full(data.shape[-2], 1.0 / data.shape[-2]), None)
        elif kind == "whitened_mc":
            points = whitened_sample(size, d, np.random.default_rng([estimator.seed, d]))
            self._fixed = Nodes(points[None], np.full(len(points), 1.0 / len(points)), None)
        elif kind not in ("quadrature", "fresh_mc"):
            raise ValueError(f"unknown estimator {kind!r} (allowed: {', '.join(ESTIMATORS)})")

    def nodes(self, mu: np.ndarray, step: int = 0) -> Nodes:
        if self._fixed is not None:
            return self._fixed
        if self.estimator.kind == "fresh_mc":
            rng = np.random.default_rng([self.estimator.seed, self.d, step])
            points = rng.standard_normal((self.estimator.size, self.d))
            return Nodes(points[None], np.full(len(points), 1.0 / len(points)), None)
        basis = span_basis(mu)
        rank = self.d if basis is None else basis.shape[2]
        if rank not in self._rules:
            self._rules[rank] = gauss_hermite(self.estimator.size, rank)
        x, w = self._rules[rank]
        if self.factorised and self._axis is None:
            self._axis = axis_rule(self.estimator.size)
        return Nodes(x[None], w, None if rank == self.d else basis, self._axis)


def _coordinates(mu: np.ndarray, nodes: Nodes) -> np.ndarray:
    return mu if nodes.basis is None else mu @ nodes.basis


def posterior_moments(pi: np.ndarray, mu: np.ndarray, nodes: Nodes, keep_psi: bool = True):
    """(E[psi_i] [T, n], E[psi_i x] [T, n, d], L [T], psi [T, n, P]) under the nodes, summed node by
    node (without ``keep_psi`` the last array holds psi times the node weights instead).

    log pi_i + <x, mu_i> - ||mu_i||^2 / 2 is the log of pi_i N(x; mu_i, I) / N(x; 0, I), so the
    log-sum-exp over i is log p_mu(x) / N(x; 0, I) and its mean is -L. The additions, subtractions
    and maximum run fused and compiled (emrun.models.gaussian_kernels), in numpy's order, so the
    bits are those of the plain numpy expression; the exponentials are numpy's, two of them
    (exp(logits - log_ratio), not exp(shifted) / sum: one exponential would do, at a few ulps'
    difference, which moves a KL near the float64 floor by its own size)."""
    from emrun.models import gaussian_kernels as kernels

    logits = _coordinates(mu, nodes) @ np.swapaxes(nodes.x, 1, 2)  # <x, mu_i>: [T, n, P]
    T, n, P = logits.shape
    with np.errstate(divide="ignore"):
        log_pi = np.ascontiguousarray(np.broadcast_to(np.log(pi), (T, n)))  # pi [1, n] serves every trial
    shifted, top, log_ratio = np.empty_like(logits), np.empty((T, P)), np.empty((T, P))
    kernels.shifted_logits(logits, log_pi, 0.5 * (mu**2).sum(axis=2), shifted, top)
    np.exp(shifted, out=shifted)
    if P == 1:  # numpy then sums along a contiguous axis, pairwise from 8 terms on: its own sum keeps its bits
        np.sum(shifted, axis=1, out=log_ratio)
    else:
        kernels.component_sum(shifted, log_ratio)
    kernels.log_posterior(logits, top, np.log(log_ratio, out=log_ratio))
    psi = np.exp(logits, out=logits)
    weighted = psi * nodes.w if keep_psi else np.multiply(psi, nodes.w, out=psi)
    moment = weighted @ nodes.x  # [T, n, r]
    if nodes.basis is not None:
        moment = moment @ np.swapaxes(nodes.basis, 1, 2)
    return weighted.sum(axis=2), moment, -(log_ratio @ nodes.w), (psi if keep_psi else weighted)


def moments(pi: np.ndarray, mu: np.ndarray, nodes: Nodes, with_loss: bool = True):
    """(E[psi_i] [T, n], E[psi_i x] [T, n, d], L [T]) as :func:`posterior_moments`, through the
    rule's tensor structure where the nodes allow it (then L is NaN unless ``with_loss``)."""
    if nodes.axis is not None:
        from emrun.models.gaussian_kernels import tensor_moments

        coords = np.ascontiguousarray(_coordinates(mu, nodes))
        with np.errstate(divide="ignore"):
            offsets = np.log(pi) - 0.5 * (mu**2).sum(axis=2)
        T, n, r = coords.shape
        z, moment, loss = np.empty((T, n)), np.empty((T, n, r)), np.empty(T)
        if tensor_moments(np.ascontiguousarray(offsets), coords, *nodes.axis, z, moment, loss, with_loss):
            return z, (moment if nodes.basis is None else moment @ np.swapaxes(nodes.basis, 1, 2)), loss
    return posterior_moments(pi, mu, nodes, keep_psi=False)[:3]


def kl(pi: np.ndarray, mu: np.ndarray, nodes: Nodes) -> np.ndarray:
    """L(mu) = KL(N(0, I) || p_mu) per trial [T] (eq. 4), >= 0 up to the estimator's error."""
    return moments(pi, mu, nodes)[2]


def gradient(pi: np.ndarray, mu: np.ndarray, nodes: Nodes) -> tuple[np.ndarray, np.ndarray]:
    """(grad L [T, n, d] = E[psi_i (mu_i - x)] (eq. 3, Fact 1), L [T])."""
    z, zx, loss = moments(pi, mu, nodes)
    return z[:, :, None] * mu - zx, loss


def stein_gradient(pi: np.ndarray, mu: np.ndarray, nodes: Nodes) -> np.ndarray:
    """Lemma 9's form of the same gradient: E[psi_i(x) sum_k psi_k(x) mu_k] [T, n, d]. Its Monte
    Carlo noise shrinks with ||mu|| (eq. 3's does not), so it is the better form for samples."""
    _, _, _, psi = posterior_moments(pi, mu, nodes)
    mean_of_means = np.swapaxes(psi, 1, 2) @ mu  # sum_k psi_k(x) mu_k: [T, P, d]
    return (psi * nodes.w) @ mean_of_means


def parametric_distance(pi: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """D(mu) = sum_i pi_i ||mu_i||^2 [T] (the truth is mu* = 0)."""
    return np.einsum("tn,tnd->t", pi, mu**2)


def kl_upper_bound(pi: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Theorem 14: L(mu) <= sum_i pi_i ||mu_i||^2 / 2 [T] (convexity of -log)."""
    return 0.5 * parametric_distance(pi, mu)


# --- tied means: mu_j = R^j theta (paper C) -----------------------------------------------------

def rotation(k: int, d: int) -> np.ndarray:
    """R [d, d]: rotation by 2 pi / k in the (e_1, e_2) plane (d >= 2), or -1 for k = 2, d = 1; R^k = I."""
    if d == 1:
        if k != 2:
            raise ValueError("in d = 1 only k = 2 (means +theta, -theta) has an orthogonal R with R^k = I")
        return -np.ones((1, 1))
    angle = 2 * np.pi / k
    R = np.eye(d)
    R[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    return R


def powers(R: np.ndarray, k: int) -> np.ndarray:
    """R^0 .. R^(k-1): [k, d, d]."""
    out = [np.eye(len(R))]
    for _ in range(k - 1):
        out.append(R @ out[-1])
    return np.array(out)


def tied_means(theta: np.ndarray, R_powers: np.ndarray) -> np.ndarray:
    """mu_j = R^j theta: theta [T, d] -> mu [T, k, d]."""
    return np.einsum("jab,tb->tja", R_powers, theta)


def tied_gradient(pi: np.ndarray, theta: np.ndarray, R_powers: np.ndarray, nodes: Nodes):
    """(d L / d theta = sum_j (R^j)^T grad_{mu_j} L [T, d], L [T]) by the chain rule."""
    grad_mu, loss = gradient(pi, tied_means(theta, R_powers), nodes)
    return np.einsum("jba,tjb->ta", R_powers, grad_mu), loss


def tied_em(pi: np.ndarray, theta: np.ndarray, R_powers: np.ndarray, nodes: Nodes):
    """EM on theta: theta+ = sum_j R^{-j} E[psi_j x] [T, d] (sum_j E[psi_j] = 1), and L [T]; equals
    theta - dL/dtheta, i.e. GD with unit step."""
    _, zx, loss = moments(pi, tied_means(theta, R_powers), nodes)
    return np.einsum("jba,tjb->ta", R_powers, zx), loss


def mixture_mean_matrix(pi: np.ndarray, R_powers: np.ndarray) -> np.ndarray:
    """A = sum_j pi_j R^j [d, d]: the mixture's mean is A theta; A is invertible iff the DFT of pi has no
    zero at a nontrivial k-th root of unity present in R (paper C's non-degeneracy condition)."""
    return np.einsum("j,jab->ab", pi, R_powers)


def weight_dft_min(pi: np.ndarray) -> float:
    """min over nontrivial frequencies of |DFT(pi)|^2 (paper C): the linearised EM contracts by
    1 - this per step, so ln KL falls by 2 ln(1 - this) per iteration."""
    return float(np.min(np.abs(np.fft.fft(pi)[1:]) ** 2))


# --- one iteration, free or tied --------------------------------------------------------------

def iterate(update: str, pi: np.ndarray, params: np.ndarray, nodes: Nodes, step: float = 1.0,
            R_powers: np.ndarray | None = None, with_loss: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One gradient-EM step (``update='gradient'``, step eta) or EM step on the parameters, which are
    the free means [T, n, d] or, with ``R_powers``, theta [T, d] of tied means. Returns (new
    parameters, L at the current ones [T] (possibly NaN unless ``with_loss``), the gradient of L in
    the parameters [T, ...])."""
    mu = params if R_powers is None else tied_means(params, R_powers)
    z, zx, loss = moments(pi, mu, nodes, with_loss)
    grad = z[:, :, None] * mu - zx
    if R_powers is not None:
        grad = np.einsum("jba,tjb->ta", R_powers, grad)
    if update == "gradient":
        return params - step * grad, loss, grad
    if R_powers is not None:  # EM on theta is GD with unit step
        return params - grad, loss, grad
    return np.where(z[:, :, None] > 0, zx / np.maximum(z, 1e-300)[:, :, None], mu), loss, grad
