"""The Gaussian family: gradients, EM monotonicity, eq. 4.4 and eq. 4.8, traces."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emrun.algorithms import run_batch
from emrun.closed_forms import escape_factor
from emrun.models import gaussian as g

seeds = st.integers(0, 2**32 - 1)


def setting(m, D, seed, n=300):
    rng = np.random.default_rng(seed)
    data = g.sample(*g.random_mixture(m, D, rng), n, rng)
    pi, mu = g.random_init(m, D, rng)
    return data, pi[None], mu[None]


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 4), D=st.integers(1, 3), seed=seeds, zero_weight=st.booleans())
def test_gradient_matches_finite_differences(m, D, seed, zero_weight):
    data, pi, mu = setting(m, D, seed)
    if zero_weight and m > 1:
        pi = np.concatenate([[[0.0]], pi[:, 1:] / pi[:, 1:].sum()], axis=1)
    grad_pi, grad_mu, loss = g.gradient(data, pi, mu)
    assert np.all(np.isfinite(grad_mu)) and np.all(np.isfinite(grad_pi)) and np.isfinite(loss[0])
    h = 1e-6
    for index in np.ndindex(mu.shape):
        e = np.zeros_like(mu)
        e[index] = h
        numeric = (g.loss(data, pi, mu + e)[0] - g.loss(data, pi, mu - e)[0]) / (2 * h)
        assert grad_mu[index] == pytest.approx(numeric, rel=1e-5, abs=1e-8)
    for c in np.flatnonzero(pi[0] >= h):  # d l / d pi_c off the simplex: the loss is defined for any pi > 0
        e = np.zeros_like(pi)
        e[0, c] = h
        numeric = (g.loss(data, pi + e, mu)[0] - g.loss(data, pi - e, mu)[0]) / (2 * h)
        assert grad_pi[0, c] == pytest.approx(numeric, rel=1e-5, abs=1e-8)


@settings(max_examples=20, deadline=None)
@given(m=st.integers(1, 4), D=st.integers(1, 3), seed=seeds)
def test_em_never_decreases_the_likelihood(m, D, seed):
    data, pi, mu = setting(m, D, seed)
    losses = []
    for _ in range(40):
        pi, mu, loss = g.em_step(data, pi, mu)
        losses.append(loss[0])
    assert np.all(np.diff(losses) <= 1e-12 * np.abs(losses[:-1]))
    assert pi.sum() == pytest.approx(1.0)


def test_far_points_and_zero_weights_give_no_nan():
    data = g.SampleSet(np.array([[0.0, 0.0], [80.0, -60.0]]), np.array([0.5, 0.5]))
    pi, mu = np.array([[0.0, 1.0]]), np.array([[[0.0, 0.0], [1.0, 1.0]]])
    for value in (g.loss(data, pi, mu), *g.gradient(data, pi, mu), *g.em_step(data, pi, mu)):
        assert np.all(np.isfinite(value))


def test_escape_factor_closed_form_matches_a_monte_carlo_z1():
    # Eq. 4.4 holds in the population with mu_2 at the mean and pi_1 -> 0: estimate Z_1 = E[gamma_1]
    # on a large sample of a fixed truth and compare, within a few Monte Carlo standard errors.
    rng = np.random.default_rng(44)
    true_pi, true_mu = np.array([0.3, 0.7]), np.array([[0.8, 0.5], [-0.8, -0.5]])
    data = g.sample(true_pi, true_mu, 400_000, rng)
    population_mean = true_pi @ true_mu
    for b in (np.array([0.6, 0.2]), np.array([-0.4, 0.9]), np.array([0.0, 0.3])):
        mu = np.stack([population_mean + b, population_mean])[None]
        pi = np.array([[1e-12, 1.0 - 1e-12]])
        _, gamma = g.density_ratios(data, pi, mu)
        monte_carlo, error = gamma[0, 0].mean(), gamma[0, 0].std() / np.sqrt(data.points.shape[0])
        assert abs(monte_carlo - escape_factor(b, true_pi, true_mu)) < 4 * error + 1e-3 * monte_carlo
    assert escape_factor(np.zeros(2), true_pi, true_mu) == pytest.approx(1.0)


def test_gd_step_on_pi_is_eq_4_8():
    # Projected GD moves pi_1 by (alpha/2)(Z_1 - Z_2) when both weights stay positive (eq. 4.8 with Z_2 -> 1).
    data, _, mu = setting(2, 2, 7, n=2000)
    pi = np.array([[1e-4, 1 - 1e-4]])
    z, _, _ = g.responsibility_sums(data, pi, mu)
    new_pi = run_batch(g, data, pi, mu, "gd", 1, 0.0, step=0.01).pi
    assert new_pi[0, 0] - pi[0, 0] == pytest.approx(0.005 * (z[0, 0] - z[0, 1]), rel=1e-10)


@pytest.mark.parametrize("algorithm", ["em", "gd"])
def test_trace_records_every_kth_iterate_and_the_last(algorithm):
    data, _, _ = setting(2, 2, 3)
    rng = np.random.default_rng(5)
    draws = [g.random_init(2, 2, rng) for _ in range(4)]
    pi, mu = np.array([d[0] for d in draws]), np.array([d[1] for d in draws])
    traced = run_batch(g, data, pi, mu, algorithm, 23, 1e-6, step=0.05, record=("pi", "mu", "loss"), record_every=5)
    plain = run_batch(g, data, pi, mu, algorithm, 23, 1e-6, step=0.05)
    np.testing.assert_array_equal(traced.pi, plain.pi)
    by_trial = {}
    for iteration, ids, values in traced.trace:
        for k, trial in enumerate(ids):
            by_trial.setdefault(trial, []).append((iteration, values["pi"][k], values["loss"][k]))
    for trial, entries in by_trial.items():
        iterations = [e[0] for e in entries]
        stop = traced.iterations[trial]
        assert iterations == sorted({*range(0, stop + 1, 5), stop})
        np.testing.assert_array_equal(entries[-1][1], traced.pi[trial])
        # The iterate at 10 is what 10 iterations alone give.
        short = run_batch(g, data, pi[trial:trial + 1], mu[trial:trial + 1], algorithm, 10, 1e-30, step=0.05)
        recorded = dict((e[0], e[1]) for e in entries)
        if 10 in recorded and stop >= 10:
            np.testing.assert_allclose(recorded[10], short.pi[0], rtol=1e-12)
        np.testing.assert_allclose(entries[0][2], g.loss(data, pi[trial:trial + 1], mu[trial:trial + 1])[0])
