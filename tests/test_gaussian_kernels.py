"""The compiled parts of the Gaussian expectations (emrun.models.gaussian_kernels): the fused passes
bit for bit against the all-numpy node-by-node sum, and the factorised quadrature against that sum
at the tolerances the module docstring states."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from emrun.dynamics import follow
from emrun.models import gaussian_means as gm
from emrun.models.gaussian_kernels import tensor_moments

TOLERANCE = 1e-13  # absolute, on z, E[psi x] and L (measured: ~1e-15 at 7776 nodes)


def _all_numpy(pi, mu, nodes):
    """The node-by-node sum as plain numpy expressions (emrun's until the passes were fused)."""
    coords = mu if nodes.basis is None else mu @ nodes.basis
    with np.errstate(divide="ignore"):
        logits = np.log(pi)[:, :, None] + coords @ np.swapaxes(nodes.x, 1, 2)
    logits -= 0.5 * (mu**2).sum(axis=2)[:, :, None]
    top = logits.max(axis=1, keepdims=True)
    shifted = logits - top
    log_ratio = top[:, 0] + np.log(np.exp(shifted, out=shifted).sum(axis=1))
    logits -= log_ratio[:, None, :]
    psi = np.exp(logits, out=logits)
    weighted = psi * nodes.w
    moment = weighted @ nodes.x
    if nodes.basis is not None:
        moment = moment @ np.swapaxes(nodes.basis, 1, 2)
    return weighted.sum(axis=2), moment, -(log_ratio @ nodes.w), psi


@settings(max_examples=60, deadline=None)
@example(seed=1, T=2, n=12, d=2, estimator="sample", size=1, scale=0.5, zero_weight=False, nan_mean=False)  # P = 1
@given(seed=st.integers(0, 10**6), T=st.integers(1, 4), n=st.integers(1, 12), d=st.integers(1, 4),
       estimator=st.sampled_from(["quadrature", "whitened_mc", "sample", "sample per trial"]),
       size=st.integers(1, 3000), scale=st.sampled_from([0.0, 0.01, 0.5, 2.0, 8.0]),
       zero_weight=st.booleans(), nan_mean=st.booleans())
def test_fused_passes_are_bit_for_bit_numpy(seed, T, n, d, estimator, size, scale, zero_weight, nan_mean):
    """Every estimator, zero weights and NaN means included: the same bits as the numpy sum, psi too."""
    rng = np.random.default_rng(seed)
    pi, mu = rng.dirichlet(np.ones(n), size=T), scale * rng.standard_normal((T, n, d))
    if zero_weight and n > 1:
        pi[:, 0] = 0.0
        pi /= pi.sum(axis=1, keepdims=True)
    if nan_mean:
        mu[0, 0, 0] = np.nan
    if estimator == "quadrature":
        expectations = gm.Expectations(gm.Estimator("quadrature", 2 + size % 25), d)
    elif estimator == "whitened_mc":
        expectations = gm.Expectations(gm.Estimator("whitened_mc", 2 * (size + d)), d)  # at least d pairs
    else:
        shape = (size, d) if estimator == "sample" else (T, size, d)
        expectations = gm.Expectations(gm.Estimator("sample", size), d, rng.standard_normal(shape))
    with np.errstate(invalid="ignore"):
        nodes = expectations.nodes(np.nan_to_num(mu))
        expected, got = _all_numpy(pi, mu, nodes), gm.posterior_moments(pi, mu, nodes)
        without_psi = gm.posterior_moments(pi, mu, nodes, keep_psi=False)
    for a, b in zip(expected, got, strict=True):
        assert np.array_equal(a, b, equal_nan=True)
    for a, b in zip(expected[:3], without_psi[:3], strict=True):
        assert np.array_equal(a, b, equal_nan=True)


def _both(pi, mu, points, d):
    plain = gm.Expectations(gm.Estimator("quadrature", points), d)
    factorised = gm.Expectations(gm.Estimator("quadrature", points), d, factorised=True)
    nodes = factorised.nodes(mu)
    assert nodes.axis is not None
    return gm.posterior_moments(pi, mu, plain.nodes(mu))[:3], gm.moments(pi, mu, nodes)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), T=st.integers(1, 3), n=st.integers(1, 6), d=st.integers(1, 4),
       points=st.integers(2, 7), scale=st.sampled_from([0.0, 0.3, 1.0, 3.0]))
def test_factorised_quadrature_matches_the_node_by_node_sum(seed, T, n, d, points, scale):
    """Full rank (standard axes) and lower rank (a span basis): the same expectations to 1e-13."""
    rng = np.random.default_rng(seed)
    pi, mu = rng.dirichlet(np.ones(n), size=T), scale * rng.standard_normal((T, n, d))
    reference, fast = _both(pi, mu, points, d)
    for expected, got in zip(reference, fast, strict=True):
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= TOLERANCE


def test_a_perturbed_factor_is_seen():
    """The tolerance is tight enough to catch a wrong node: one axis' weights moved by 1e-9."""
    rng = np.random.default_rng(3)
    pi, mu = rng.dirichlet(np.ones(4), size=2), rng.standard_normal((2, 4, 3))
    reference, _ = _both(pi, mu, 5, 3)
    nodes = gm.Expectations(gm.Estimator("quadrature", 5), 3, factorised=True).nodes(mu)
    x, w = nodes.axis
    w = w.copy()
    w[0] += 1e-9
    moved = gm.moments(pi, mu, gm.Nodes(nodes.x, nodes.w, nodes.basis, (x, w)))
    assert np.abs(moved[0] - reference[0]).max() > TOLERANCE


def test_without_the_loss_the_moments_are_the_same_and_the_loss_is_nan():
    rng = np.random.default_rng(5)
    pi, mu = rng.dirichlet(np.ones(5), size=2), rng.standard_normal((2, 5, 5))
    nodes = gm.Expectations(gm.Estimator("quadrature", 6), 5, factorised=True).nodes(mu)
    z, zx, loss = gm.moments(pi, mu, nodes)
    z2, zx2, loss2 = gm.moments(pi, mu, nodes, with_loss=False)
    assert np.array_equal(z, z2) and np.array_equal(zx, zx2)
    assert np.isfinite(loss).all() and np.isnan(loss2).all()


def test_a_zero_weight_gives_zero_mass_and_no_nan():
    pi = np.array([[0.0, 0.4, 0.6]])
    mu = np.array([[[1.0, -0.5], [0.2, 0.3], [-0.7, 0.1]]])
    reference, fast = _both(pi, mu, 8, 2)
    assert fast[0][0, 0] == 0.0 and np.isfinite(fast[2]).all()
    assert np.abs(fast[2] - reference[2]).max() <= TOLERANCE


def test_one_weight_vector_serves_every_trial():
    """pi [1, n] with T trials, as numpy broadcasting allowed: the same as pi repeated."""
    rng = np.random.default_rng(8)
    mu, pi = rng.standard_normal((3, 4, 2)), rng.dirichlet(np.ones(4), size=1)
    nodes = gm.Expectations(gm.Estimator("quadrature", 7), 2).nodes(mu)
    for a, b in zip(gm.posterior_moments(pi, mu, nodes), _all_numpy(np.repeat(pi, 3, axis=0), mu, nodes), strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("scale", [60.0, np.inf, np.nan, "one NaN"])
def test_out_of_range_means_fall_back_to_the_node_by_node_sum(scale):
    """Where some node's density could underflow (or some mean is not finite), the numpy path
    answers, bit for bit."""
    mu = np.array([[[1.0, 0.0], [np.nan, 0.5], [-1.0, 0.0]]]) if scale == "one NaN" else \
        np.array([[[scale, 0.0], [-scale, 0.0]]])
    pi = np.full((1, mu.shape[1]), 1.0 / mu.shape[1])
    nodes = gm.Expectations(gm.Estimator("quadrature", 30), 2, factorised=True).nodes(np.ones((1, 2, 2)))
    with np.errstate(invalid="ignore"):
        expected = gm.posterior_moments(pi, mu, gm.Nodes(nodes.x, nodes.w, nodes.basis))[:3]
        got = gm.moments(pi, mu, nodes)
    for a, b in zip(expected, got, strict=True):
        assert np.array_equal(a, b, equal_nan=True)
    T, n, r = mu.shape
    with np.errstate(invalid="ignore"):
        offsets = np.log(pi) - 0.5 * (mu**2).sum(axis=2)
    assert not tensor_moments(offsets, mu, *nodes.axis, np.empty((T, n)), np.empty((T, n, r)), np.empty(T), True)


def test_a_trajectory_is_the_same_to_the_tolerance_and_its_unrecorded_losses_are_not_computed():
    """Gradient EM for 300 steps (paper B's setting, n = 4, d = 3): the recorded L, D and gradient
    norms of both paths agree; the steps between records skip L."""
    rng = np.random.default_rng(11)
    pi, mu0 = rng.dirichlet(np.ones(4), size=2), rng.standard_normal((2, 4, 3))
    record_at = np.array([0, 10, 100, 300])
    runs = [follow("gradient", pi, mu0, gm.Expectations(gm.Estimator("quadrature", 6), 3, factorised=f), 0.7, 300,
                   record_at)[0] for f in (False, True)]
    assert [r["iteration"] for r in runs[0]] == [r["iteration"] for r in runs[1]] == [0, 10, 100, 300]
    for plain, fast in zip(*runs, strict=True):
        for quantity in ("kl", "distance", "grad_norm"):
            assert np.abs(plain[quantity] - fast[quantity]).max() <= 1e-12
