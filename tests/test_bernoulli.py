"""The Bernoulli family: probabilities, gradients, EM monotonicity, projection, boundaries."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from emrun.algorithms import run_batch
from emrun.models import bernoulli as b
from emrun.registry import RegistryError

seeds = st.integers(0, 2**32 - 1)


def mixture(m, D, seed):
    return b.random_mixture(m, D, np.random.default_rng(seed))


def random_problem(m, D, trials, seed, samples=0):
    """A random truth's data (population, or ``samples`` draws) and ``trials`` random inits."""
    rng = np.random.default_rng(seed)
    truth = b.random_mixture(m, D, rng)
    data = b.population_patterns(*truth) if samples == 0 else b.sample_patterns(*truth, samples, rng)
    draws = [b.random_mixture(m, D, rng) for _ in range(trials)]
    return data, np.array([d[0] for d in draws]), np.array([d[1] for d in draws])


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 5), D=st.integers(1, 7), seed=seeds)
def test_population_probabilities_sum_to_one(m, D, seed):
    pi, mu = mixture(m, D, seed)
    data = b.population_patterns(pi, mu)
    assert data.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(data.weights > 0)
    # Log-probabilities agree with the product of Bernoulli factors computed directly.
    direct = np.array([np.sum(pi * np.prod(np.where(x == 1, mu, 1 - mu), axis=1)) for x in data.patterns])
    np.testing.assert_allclose(data.weights, direct, rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 4), D=st.integers(1, 8), seed=seeds, boundary=st.booleans())
def test_population_weights_agree_with_the_log_space_probabilities(m, D, seed, boundary):
    pi, mu = mixture(m, D, seed)
    if boundary:
        mu[0, 0], mu[-1, -1] = 0.0, 1.0
    data = b.population_patterns(pi, mu)
    log_p = b.log_pattern_probabilities(b.all_patterns(D), pi[None], mu[None])[0]
    kept = np.isfinite(log_p)
    np.testing.assert_array_equal(data.patterns, b.all_patterns(D)[kept])
    np.testing.assert_allclose(data.weights, np.exp(log_p[kept]) / np.exp(log_p[kept]).sum(), rtol=1e-13)


def test_population_weights_do_not_depend_on_numpys_instruction_set():
    """The weights decide every population row, so they must not follow numpy's SIMD dispatch:
    the same bits with dispatch limited to numpy's compiled baseline (as on an older CPU)."""
    import os
    import subprocess
    import sys

    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    program = ("import hashlib, numpy as np; from emrun.models import bernoulli as b; rng = np.random.default_rng(7); "
               "h = hashlib.sha256()\n"
               "for m, D in [(2, 6), (3, 10), (5, 12)]:\n"
               "    h.update(b.population_patterns(*b.random_mixture(m, D, rng)).weights.tobytes())\n"
               "print(h.hexdigest())")
    dispatched = " ".join(name for name in __cpu_dispatch__ if __cpu_features__.get(name))
    native = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout
    limited = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True,
                             env={**os.environ, "NPY_DISABLE_CPU_FEATURES": dispatched}).stdout
    assert native == limited and len(native.strip()) == 64


def test_a_population_whose_probabilities_underflow_is_refused():
    with pytest.raises(ValueError, match="underflows"):
        b.population_patterns(np.array([1.0]), np.array([[1e-200, 1e-200]]))


def test_sample_patterns_aggregate_counts():
    pi, mu = mixture(3, 4, 0)
    data = b.sample_patterns(pi, mu, 500, np.random.default_rng(1))
    assert len(np.unique(data.patterns, axis=0)) == len(data.patterns)
    assert np.allclose(data.weights * 500, np.round(data.weights * 500))
    assert data.weights.sum() == pytest.approx(1.0)


def numeric_mu_gradient(data, pi, mu, h=1e-7):
    """Central differences inside (0, 1); second-order one-sided differences at 0 and 1. Both err
    by O(h^2), so the differences at h and h / 10 are extrapolated (Richardson): next to the
    boundary the loss can curve so sharply that h alone is 0.2% off (m=3, D=5, seed=498 below)."""
    loss = lambda u: b.loss(data, pi, u)[0]  # noqa: E731

    def differences(step):
        grad = np.zeros_like(mu)
        for index in np.ndindex(mu.shape):
            e = np.zeros_like(mu)
            e[index] = step
            if mu[index] == 0.0:
                grad[index] = (-3 * loss(mu) + 4 * loss(mu + e) - loss(mu + 2 * e)) / (2 * step)
            elif mu[index] == 1.0:
                grad[index] = (3 * loss(mu) - 4 * loss(mu - e) + loss(mu - 2 * e)) / (2 * step)
            else:
                grad[index] = (loss(mu + e) - loss(mu - e)) / (2 * step)
        return grad

    return (100 * differences(h / 10) - differences(h)) / 99


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 4), D=st.integers(1, 5), seed=seeds, n_boundary=st.integers(0, 3))
@example(m=4, D=4, seed=6773, n_boundary=3)  # a sharply curved loss next to the boundary
@example(m=3, D=5, seed=498, n_boundary=2)  # curved enough that one step size alone is 0.2% off
def test_gradient_matches_finite_differences(m, D, seed, n_boundary):
    rng = np.random.default_rng(seed)
    truth = mixture(m, D, seed)
    data = b.population_patterns(*truth)
    pi, mu = b.random_mixture(m, D, rng)
    mu = np.clip(mu, 0.05, 0.95)
    # Put some means exactly on the boundary, where eq. 2.13 needs the one-sided limit.
    for _ in range(n_boundary):
        mu[rng.integers(m), rng.integers(D)] = float(rng.integers(2))
    pi, mu = pi[None], mu[None]
    if not np.isfinite(b.loss(data, pi, mu)[0]):
        return  # a pattern made impossible: no gradient to compare (tested separately)
    grad_pi, grad_mu, loss = b.gradient(data, pi, mu)
    assert np.all(np.isfinite(grad_mu)) and np.all(np.isfinite(grad_pi))
    np.testing.assert_allclose(grad_mu, numeric_mu_gradient(data, pi, mu), rtol=1e-4, atol=1e-6)
    h = 1e-6
    numeric_pi = [(b.loss(data, pi + h * e, mu)[0] - b.loss(data, pi - h * e, mu)[0]) / (2 * h)
                  for e in np.eye(m)[:, None, :]]
    np.testing.assert_allclose(grad_pi[0], numeric_pi, rtol=1e-5, atol=1e-7)


def test_boundary_gradient_hand_made():
    # m = 1, D = 2, mu = (0, 0.5): pattern (1, x2) has f = 0. The one-sided limit of dl/dmu_1 is
    # -(sum over x1 = 1 of w(x) B(x2|mu_2) / p(x)) + ..., computed here by hand.
    data = b.PatternSet(np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.array([0.5, 0.3, 0.2]))
    pi, mu = np.array([[1.0]]), np.array([[[0.0, 0.5]]])
    _, grad_mu, loss = b.gradient(data, pi, mu)
    assert loss[0] == np.inf  # pattern (1, 1) is impossible at mu_1 = 0
    assert np.all(np.isfinite(grad_mu))
    mu = np.array([[[0.0, 0.5]]])
    data = b.PatternSet(np.array([[0.0, 0.0], [0.0, 1.0]]), np.array([0.6, 0.4]))
    _, grad_mu, loss = b.gradient(data, pi, mu)
    # p(00) = p(01) = 0.5. Limit at mu_1 = 0: -(0 - sum_x w B(x2)/p) with x1 = 0 -> -(-1) * ... :
    # d l/d mu_1 = -E[(-1)^(1-x1) B(x2|mu2) / p] = -(-(0.6 * 0.5 + 0.4 * 0.5) / 0.5) = 1.
    assert grad_mu[0, 0, 0] == pytest.approx(1.0)
    assert grad_mu[0, 0, 1] == pytest.approx(-(0.4 / 0.5 - 0.6 / 0.5) * 1.0)


def test_one_sided_limit_where_another_component_covers_the_pattern():
    # Component 0 has mu = 0 and 1 exactly; component 1 keeps every pattern possible, so the loss is
    # finite and the gradient of component 0 is the one-sided limit of eq. 2.13.
    data = b.population_patterns(*mixture(2, 3, 4))
    pi = np.array([[0.3, 0.7]])
    mu = np.array([[[0.0, 0.4, 1.0], [0.5, 0.6, 0.3]]])
    _, grad_mu, loss = b.gradient(data, pi, mu)
    assert np.isfinite(loss[0])
    np.testing.assert_allclose(grad_mu, numeric_mu_gradient(data, pi, mu), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("update", b.EM_UPDATES)
@settings(max_examples=20, deadline=None)
@given(m=st.integers(1, 5), D=st.integers(1, 6), seed=seeds, samples=st.sampled_from([0, 50, 1000]))
def test_em_never_decreases_the_likelihood(update, m, D, seed, samples):
    rng = np.random.default_rng(seed)
    truth = mixture(m, D, seed)
    data = b.population_patterns(*truth) if samples == 0 else b.sample_patterns(*truth, samples, rng)
    pi, mu = b.random_mixture(m, D, rng)
    pi, mu = pi[None], mu[None]
    losses = []
    for _ in range(60):
        pi, mu, loss = b.em_step(data, pi, mu, update)
        losses.append(loss[0])
    assert np.all(np.diff(losses) <= 1e-12 * np.abs(losses[:-1]) + 1e-13)
    assert np.all(np.isfinite(losses)) and losses[-1] >= data.entropy - 1e-12


@settings(max_examples=60, deadline=None)
@given(v=st.lists(st.floats(-5, 5), min_size=1, max_size=8), seed=seeds)
def test_simplex_projection(v, seed):
    v = np.array([v])
    p = b.project_to_simplex(v)
    assert np.all(p >= 0) and p.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(b.project_to_simplex(p), p, atol=1e-12)  # idempotent
    # Optimality: (v - p) . (y - p) <= 0 for every y on the simplex (checked at random points).
    y = np.random.default_rng(seed).dirichlet(np.ones(v.shape[1]), size=20)
    assert np.all((y - p) @ (v - p)[0] <= 1e-9)


def test_projection_is_row_independent():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(7, 4))
    together = b.project_to_simplex(v)
    alone = np.vstack([b.project_to_simplex(row[None]) for row in v])
    np.testing.assert_array_equal(together, alone)


def test_zero_weights_and_boundary_means_give_no_nan():
    data = b.population_patterns(*mixture(3, 4, 3))
    pi = np.array([[0.0, 0.4, 0.6]])
    mu = np.array([[[0.0, 1.0, 0.3, 0.2], [0.5, 0.5, 0.5, 0.5], [0.9, 0.1, 0.0, 0.6]]])
    step = run_batch(b, data, pi, mu, "gd", 1, 0.0, step=0.02, fused=False)
    for result in (b.gradient(data, pi, mu), b.em_step(data, pi, mu), (step.pi, step.mu, step.loss),
                   b.responsibilities(data, pi, mu)[None]):
        for array in result:
            assert not np.any(np.isnan(array))


def test_gd_run_that_makes_a_pattern_impossible_ends_diverged():
    # m = 1, D = 1, data mostly 0: a large step clips mu to 0, so x = 1 becomes impossible.
    data = b.PatternSet(np.array([[0.0], [1.0]]), np.array([0.999, 0.001]))
    outcome = run_batch(b, data, np.array([[1.0]]), np.array([[[0.01]]]), "gd", 100, 1e-7, step=1.0)
    assert outcome.status[0] == "diverged"
    assert outcome.loss[0] == np.inf
    assert outcome.mu[0, 0, 0] == 0.0 and outcome.iterations[0] == 1


def batch(m=3, D=4, runs=6, seed=5):
    rng = np.random.default_rng(seed)
    data = b.population_patterns(*b.random_mixture(m, D, rng))
    draws = [b.random_mixture(m, D, rng) for _ in range(runs)]
    return data, np.array([d[0] for d in draws]), np.array([d[1] for d in draws])


@pytest.mark.parametrize("algorithm,max_iter,tol", [("em", 3000, 1e-5), ("gd", 1500, 1e-7)])
def test_trial_in_a_batch_equals_the_trial_alone(algorithm, max_iter, tol):
    data, pi, mu = batch()
    together = run_batch(b, data, pi, mu, algorithm, max_iter, tol, step=0.02)
    for r in range(len(pi)):
        alone = run_batch(b, data, pi[r:r + 1], mu[r:r + 1], algorithm, max_iter, tol, step=0.02)
        np.testing.assert_allclose(alone.pi[0], together.pi[r], atol=1e-12, rtol=0)
        np.testing.assert_allclose(alone.mu[0], together.mu[r], atol=1e-12, rtol=0)
        assert alone.iterations[0] == together.iterations[r] and alone.status[0] == together.status[r]


def test_converged_trial_keeps_the_parameters_of_its_stopping_iteration():
    data, pi, mu = batch(m=2, D=3)
    outcome = run_batch(b, data, pi, mu, "em", 20000, 1e-5)
    converged = np.flatnonzero(outcome.status == "converged")
    assert converged.size > 0
    for r in converged:
        n = outcome.iterations[r]
        # The same trial run for exactly n iterations with a tolerance that never stops it.
        exact = run_batch(b, data, pi[r:r + 1], mu[r:r + 1], "em", int(n), 0.0)
        assert exact.status[0] == "capped"
        np.testing.assert_allclose(exact.mu[0], outcome.mu[r], atol=1e-12, rtol=0)
        np.testing.assert_allclose(exact.pi[0], outcome.pi[r], atol=1e-12, rtol=0)


def test_em_keeps_a_zero_weight_at_zero_and_k_cluster_is_detected():
    data = b.population_patterns(*mixture(2, 3, 11))
    pi = np.array([[0.0, 1.0]])
    mu = np.array([[[0.3, 0.6, 0.2], [0.5, 0.5, 0.5]]])
    outcome = run_batch(b, data, pi, mu, "em", 500, 1e-9)
    assert outcome.pi[0, 0] == 0.0
    assert (outcome.pi >= 5e-4).sum() == 1  # one non-zero weight: a 1-cluster point


@pytest.mark.parametrize("algorithm,step,max_iter", [("em", None, 400), ("gd", 0.02, 400), ("gd", 0.5, 60)])
@pytest.mark.parametrize("samples", [0, 300])
def test_fused_kernel_matches_the_numpy_engine(algorithm, step, max_iter, samples):
    # A large GD step clips many means to 0 or 1, exercising the boundary terms and divergence; its
    # dynamics amplify rounding differences, so it is compared over fewer iterations.
    data, pi, mu = random_problem(4, 5, 12, 8, samples)
    fused = run_batch(b, data, pi, mu, algorithm, max_iter, 1e-7, step=step, fused=True)
    plain = run_batch(b, data, pi, mu, algorithm, max_iter, 1e-7, step=step, fused=False)
    if step == 0.5:
        assert np.sum(fused.mu == 0) + np.sum(fused.mu == 1) > 0  # the boundary was reached
    assert list(fused.status) == list(plain.status)
    np.testing.assert_array_equal(fused.iterations, plain.iterations)
    np.testing.assert_allclose(fused.pi, plain.pi, atol=1e-10, rtol=0)
    np.testing.assert_allclose(fused.mu, plain.mu, atol=1e-10, rtol=0)
    np.testing.assert_allclose(fused.loss, plain.loss, rtol=1e-12)


def test_ecm_em_is_simultaneous_em_applied_one_component_at_a_time_then_pi_at_the_new_means():
    # Component 0's means from the current point, component 1's from the point with component 0
    # moved, then pi at the new means.
    data = b.population_patterns(*mixture(2, 4, 31))
    pi, mu = mixture(2, 4, 32)
    pi, mu = np.stack([pi, pi[::-1]]), np.stack([mu, mu[::-1]])
    step = b.em_step(data, pi, mu, "ecm")
    expected_mu = mu.copy()
    expected_mu[:, 0] = b.em_step(data, pi, expected_mu)[1][:, 0]
    expected_mu[:, 1] = b.em_step(data, pi, expected_mu)[1][:, 1]
    expected_pi = b.em_step(data, pi, expected_mu)[0]
    np.testing.assert_allclose(step[1], expected_mu, rtol=1e-13)
    np.testing.assert_allclose(step[0], expected_pi, rtol=1e-13)
    assert np.abs(step[1] - b.em_step(data, pi, mu)[1]).max() > 1e-4  # it is not eq. 2.7
    np.testing.assert_allclose(step[2], b.loss(data, pi, mu))


@pytest.mark.parametrize("rule", ["ecm", "authors"])
@pytest.mark.parametrize("samples", [0, 300])
def test_fused_kernel_matches_the_numpy_engine_for_in_place_em(rule, samples):
    data, pi, mu = random_problem(3, 3, 12, 10, samples)
    fused, plain = (run_batch(b, data, pi, mu, "em", 200, 1e-5, fused=f, em_update=rule) for f in (True, False))
    # Trials leave the batch at different iterations, so lanes are handed over.
    assert 0 < np.sum(fused.status == "converged") < len(pi)
    assert list(fused.status) == list(plain.status)
    np.testing.assert_array_equal(fused.iterations, plain.iterations)
    np.testing.assert_allclose(fused.pi, plain.pi, atol=1e-10, rtol=0)
    np.testing.assert_allclose(fused.mu, plain.mu, atol=1e-10, rtol=0)
    np.testing.assert_allclose(fused.loss, plain.loss, rtol=1e-12)
    np.testing.assert_array_equal(fused.loss_increases, plain.loss_increases)


@pytest.mark.parametrize("m,D,samples", [(2, 3, 0), (3, 4, 0), (4, 3, 200), (3, 5, 500)])
def test_the_authors_em_in_both_engines_matches_a_plain_reference_written_from_its_description(m, D, samples):
    from emrun import reference as plain_reference

    data, pi, mu = random_problem(m, D, 4, 700 + m * 10 + D, samples)
    engines = [run_batch(b, data, pi, mu, "em", 25, 1e-300, fused=fused, em_update="authors") for fused in (True, False)]
    for t in range(len(pi)):
        plain_pi, plain_mu = plain_reference.run(data.patterns, data.weights, pi[t], mu[t], "em", 25,
                                                 em_update="authors")
        for engine in engines:
            np.testing.assert_allclose(engine.pi[t], plain_pi, atol=1e-10, rtol=0)
            np.testing.assert_allclose(engine.mu[t], plain_mu, atol=1e-10, rtol=0)
    # pi is not renormalised: it leaves the simplex, by a little; the loss is taken at pi / sum(pi).
    assert np.abs(engines[1].pi.sum(axis=1) - 1).max() > 1e-8
    np.testing.assert_allclose(engines[1].loss, b.loss(data, engines[1].pi / engines[1].pi.sum(axis=1)[:, None],
                                                        engines[1].mu), rtol=1e-13)


def test_the_authors_em_differs_from_ecm_only_in_pi():
    data, pi, mu = random_problem(3, 4, 3, 42, 0)
    authors, ecm = (b.em_step(data, pi, mu, rule) for rule in ("authors", "ecm"))
    np.testing.assert_array_equal(authors[1], ecm[1])  # the same means, cluster by cluster
    assert np.abs(authors[0] - ecm[0]).max() > 1e-6 and np.allclose(ecm[0].sum(axis=1), 1.0)


def test_unknown_algorithm_and_bad_step_are_refused():
    data, pi, mu = batch(runs=2)
    with pytest.raises(RegistryError, match="unknown algorithm 'sgd'"):
        run_batch(b, data, pi, mu, "sgd", 10, 1e-5)
    with pytest.raises(ValueError, match="positive step"):
        run_batch(b, data, pi, mu, "gd", 10, 1e-5, step=0.0)


def published_gradient_by_hand(data, pi, mu):
    """The authors' boundary rule written out pattern by pattern (docs/protocols.md, section 1.3), for one trial."""
    m, D = mu.shape
    grad = np.zeros_like(mu)
    p = np.array([np.sum(pi * np.prod(np.where(x == 1, mu, 1 - mu), axis=1)) for x in data.patterns])
    for x, w, px in zip(data.patterns, data.weights, p, strict=True):
        for c in range(m):
            factors = np.where(x == 1, mu[c], 1 - mu[c])
            zeros = np.flatnonzero(factors == 0)
            for j in range(D):  # eq. 2.13 where no factor is zero
                if zeros.size == 0:
                    grad[c, j] -= pi[c] * w * (1 if x[j] else -1) * np.prod(np.delete(factors, j)) / px
            if zeros.size == 1:
                j0 = zeros[0]
                grad[c, D - 1] -= pi[c] * w * (1 if x[D - 1] else -1) * np.prod(factors[:j0]) / px
    return grad


def test_as_published_boundary_term_matches_the_written_out_rule():
    data = b.population_patterns(*mixture(3, 4, 21))
    pi = np.array([[0.3, 0.4, 0.3]])
    # Boundary means at features 1 (component 0) and 2 (component 2); component 1 keeps every
    # pattern possible, so the loss is finite.
    mu = np.array([[[0.3, 0.0, 0.6, 0.8], [0.5, 0.4, 0.7, 0.2], [0.5, 0.5, 1.0, 0.3]]])
    assert np.isfinite(b.loss(data, pi, mu)[0])
    _, published, _ = b.gradient(data, pi, mu, boundary="as_published")
    np.testing.assert_allclose(published[0], published_gradient_by_hand(data, pi[0], mu[0]), rtol=1e-12, atol=1e-14)
    _, exact, _ = b.gradient(data, pi, mu)
    assert np.abs(exact - published).max() > 1e-3  # the two rules differ here
    # They agree when the only boundary mean is on the last feature (j0 = D - 1).
    mu_last = np.array([[[0.3, 0.2, 0.6, 0.0], [0.5, 0.4, 0.7, 0.2], [0.5, 0.5, 0.4, 0.3]]])
    np.testing.assert_allclose(b.gradient(data, pi, mu_last, boundary="as_published")[1],
                               b.gradient(data, pi, mu_last)[1], rtol=1e-12)


@pytest.mark.parametrize("samples", [0, 300])
def test_fused_kernel_matches_the_numpy_engine_with_the_published_rule(samples):
    data, pi, mu = random_problem(3, 5, 10, 9, samples)
    runs = [run_batch(b, data, pi, mu, "gd", 60, 1e-7, step=0.5, fused=fused, gd_boundary="as_published")
            for fused in (True, False)]
    assert list(runs[0].status) == list(runs[1].status)
    np.testing.assert_allclose(runs[0].mu, runs[1].mu, atol=1e-10, rtol=0)
    np.testing.assert_array_equal(runs[0].touched_boundary, runs[1].touched_boundary)
    assert runs[0].touched_boundary.any()
    exact = run_batch(b, data, pi, mu, "gd", 60, 1e-7, step=0.5)
    assert np.abs(exact.mu - runs[0].mu).max() > 1e-6  # the rule matters once the boundary is reached


def test_em_from_inside_never_touches_the_boundary_on_population_data():
    data, pi, mu = batch()
    assert not run_batch(b, data, pi, mu, "em", 200, 1e-5).touched_boundary.any()


@pytest.mark.parametrize("algorithm", ["em", "gd"])
@pytest.mark.parametrize("m,D,samples", [(2, 3, 0), (3, 4, 0), (3, 5, 0), (4, 3, 200)])
def test_batched_and_fused_engines_match_the_plain_implementation(algorithm, m, D, samples):
    from emrun import reference as plain_reference

    data, pi, mu = random_problem(m, D, 3, 100 + m * 10 + D, samples)
    # A large step reaches the boundary within 30 GD iterations (and amplifies rounding: keep it short).
    iterations, step = (40, None) if algorithm == "em" else (30, 0.3)
    engines = [run_batch(b, data, pi, mu, algorithm, iterations, 1e-300, step=step, fused=fused) for fused in (True, False)]
    for t in range(len(pi)):
        if engines[0].status[t] == "diverged":  # a pattern made impossible: the plain code divides by p(x) = 0
            with pytest.raises(ZeroDivisionError):
                plain_reference.run(data.patterns, data.weights, pi[t], mu[t], algorithm, iterations, step)
            continue
        plain_pi, plain_mu = plain_reference.run(data.patterns, data.weights, pi[t], mu[t], algorithm, iterations, step)
        for engine in engines:
            assert engine.iterations[t] == iterations
            np.testing.assert_allclose(engine.pi[t], plain_pi, atol=1e-10, rtol=0)
            np.testing.assert_allclose(engine.mu[t], plain_mu, atol=1e-10, rtol=0)


def test_many_features_run_in_log_space_where_products_would_underflow():
    # D = 64, 300 samples: a component's product of 64 factors underflows in the kernel while the
    # log-space engine keeps it; the default path must give the log-space result.
    rng = np.random.default_rng(0)
    for D in (20, 40, 64):  # the draws of the case that exposed it; the last one is used
        data = b.sample_patterns(*b.random_mixture(3, D, rng), 300, rng)
        pi = np.array([b.random_mixture(3, D, rng)[0] for _ in range(4)])
        mu = rng.uniform(size=(4, 3, D))
    default = run_batch(b, data, pi, mu, "em", 10, 1e-300)
    logs = run_batch(b, data, pi, mu, "em", 10, 1e-300, fused=False)
    np.testing.assert_array_equal(default.mu, logs.mu)
    assert 64 > b.FUSED_MAX_D


def test_projection_of_rows_with_huge_entries_keeps_its_mass():
    # A GD step on a huge gradient: u - (u - 1) would round to 0 without the shift.
    rows = np.array([[1e300, 5.0, -3.0], [1e20, 1e20 - 1e5, 0.0], [-1e12, 2.0, 3.0]])
    projected = b.project_to_simplex(rows)
    np.testing.assert_allclose(projected.sum(axis=1), 1.0)
    np.testing.assert_allclose(projected, [[1, 0, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    assert np.isfinite(projected).all()


def test_the_authors_em_can_raise_the_likelihood_and_both_engines_count_it():
    # Found by a search over random starts: with pi from each component's partial point and not
    # renormalised, the first iteration raises the loss (pi renormalised) by 0.149; ECM from the same
    # start cannot (a sequence of conditional maximisations).
    data = b.PatternSet(np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]), np.array([0.2, 0.8]))
    pi = np.array([[0.0320955453110559, 9.999990017533518e-07, 0.9653095962101699, 0.0025938584797725157]])
    mu = np.array([[[0.0001, 0.9681080178649106, 0.0001], [0.9913450107715981, 0.8213514866226732, 0.9999],
                    [0.7241389817373795, 0.9909490766809207, 0.9999],
                    [0.9333275181826143, 0.9970427034351972, 0.9017455488400362]]])
    start = b.em_step(data, pi, mu, "authors")
    assert b.em_step(data, start[0], start[1], "authors")[2][0] - start[2][0] > 0.1
    for fused in (True, False):
        authors = run_batch(b, data, pi, mu, "em", 500, 1e-12, fused=fused, em_update="authors")
        ecm = run_batch(b, data, pi, mu, "em", 500, 1e-12, fused=fused, em_update="ecm")
        assert (fused, list(authors.loss_increases), list(ecm.loss_increases)) == (fused, [1], [0])


@pytest.mark.parametrize("trials", [1, 2])
@pytest.mark.parametrize("algorithm,rule", [("em", "simultaneous"), ("em", "authors"), ("em", "ecm"), ("gd", None)])
def test_no_engine_writes_into_the_callers_arrays(trials, algorithm, rule):
    # With one trial the kernel's transposed working arrays were views of the caller's (fixed).
    data, pi, mu = random_problem(3, 3, trials, 5)
    kept_pi, kept_mu = pi.copy(), mu.copy()
    for fused in (True, False):
        run_batch(b, data, pi, mu, algorithm, 50, 1e-9, step=0.05 if algorithm == "gd" else None, fused=fused,
                  em_update=rule)
        np.testing.assert_array_equal(pi, kept_pi)
        np.testing.assert_array_equal(mu, kept_mu)


@pytest.mark.parametrize("algorithm,samples", [("em", 0), ("gd", 0), ("em", 400)])
def test_one_trial_alone_gives_the_same_bits_as_among_sixty(algorithm, samples):
    # Among 60 the kernel runs the lanes-inner pass until few trials are left, then the
    # patterns-inner one; alone it runs the patterns-inner one throughout: the arithmetic of each
    # trial must not depend on which pass shape ran it, nor on how many lanes were active.
    data, pi, mu = random_problem(4, 6, 60, 11, samples)
    together = run_batch(b, data, pi, mu, algorithm, 3000, 1e-7, step=0.02)
    for r in (0, 17, 59):
        alone = run_batch(b, data, pi[r:r + 1], mu[r:r + 1], algorithm, 3000, 1e-7, step=0.02)
        np.testing.assert_array_equal(alone.pi[0], together.pi[r])
        np.testing.assert_array_equal(alone.mu[0], together.mu[r])
        assert alone.iterations[0] == together.iterations[r] and alone.status[0] == together.status[r]


@pytest.mark.parametrize("boundary", ["exact", "as_published"])
def test_gd_from_the_boundary_alone_gives_the_same_bits_as_in_a_batch(boundary):
    # GD's boundary terms visit only the lanes with a mean at 0 or 1, and components with no such
    # lane take the unmasked loops: a trial's bits must not depend on its neighbours' boundaries.
    data, pi, mu = random_problem(4, 6, 24, 12)
    mu[:5, 0, 0], mu[5:8, 2, 3], mu[8, 1] = 0.0, 1.0, 1.0  # some trials, some components on the boundary
    together = run_batch(b, data, pi, mu, "gd", 400, 1e-9, step=0.05, gd_boundary=boundary)
    assert together.touched_boundary[:9].all() and not together.touched_boundary.all()
    for r in (0, 6, 8, 20):
        alone = run_batch(b, data, pi[r:r + 1], mu[r:r + 1], "gd", 400, 1e-9, step=0.05, gd_boundary=boundary)
        np.testing.assert_array_equal(alone.pi[0], together.pi[r])
        np.testing.assert_array_equal(alone.mu[0], together.mu[r])
        assert alone.iterations[0] == together.iterations[r] and alone.status[0] == together.status[r]


@pytest.mark.parametrize("m", [3, 10])  # 10: two groups of eight accumulators in the patterns-inner sums
def test_incomplete_population_alone_gives_the_same_bits_as_among_many(m):
    # A truth whose every component has a mean at exactly 0 for x_0 or x_1 gives the patterns with
    # x_0 = x_1 = 1 probability 0, and the population leaves them out: the patterns-inner pass then
    # multiplies factors pattern by pattern instead of doubling a complete table.
    rng = np.random.default_rng(5)
    pi_true, mu_true = b.random_mixture(m, 6, rng)
    mu_true[0, 0], mu_true[1:, 1] = 0.0, 0.0
    data = b.population_patterns(pi_true, mu_true)
    assert len(data.weights) == 48
    draws = [b.random_mixture(m, 6, rng) for _ in range(30)]
    pi, mu = np.array([d[0] for d in draws]), np.array([d[1] for d in draws])
    together = run_batch(b, data, pi, mu, "em", 3000, 1e-7)
    for r in (0, 29):
        alone = run_batch(b, data, pi[r:r + 1], mu[r:r + 1], "em", 3000, 1e-7)
        np.testing.assert_array_equal(alone.pi[0], together.pi[r])
        np.testing.assert_array_equal(alone.mu[0], together.mu[r])
        assert alone.iterations[0] == together.iterations[r]


def test_the_authors_em_with_one_component_runs_the_same_in_both_engines():
    # One component: the authors' rule makes a single pass, which still updates the means in place;
    # the kernel must keep the iteration's start apart as it does for two or more (it compared the
    # new means with themselves, and stopped at once, writing past an empty array).
    data, pi, mu = random_problem(1, 4, 5, 21)
    fused, plain = (run_batch(b, data, pi, mu, "em", 50, 1e-9, fused=f, em_update="authors") for f in (True, False))
    assert list(fused.status) == list(plain.status)
    np.testing.assert_array_equal(fused.iterations, plain.iterations)
    assert (fused.iterations > 1).all()
    np.testing.assert_allclose(fused.mu, plain.mu, atol=1e-10, rtol=0)
