"""The paper's closed forms (emrun.theory) on small cases, and a theory sweep end to end."""

import json

import numpy as np
import pytest

from emrun import closed_forms as theory
from emrun.models import bernoulli as b
from emrun.results import load_results
from emrun.theory import one_cluster_gap
from tests.conftest import emrun


def small_case(D, seed):
    rng = np.random.default_rng(seed)
    true_pi, true_mu = b.random_mixture(2, D, rng)
    data = b.population_patterns(true_pi, true_mu)
    return true_pi, true_mu, data, rng.uniform(size=D)


@pytest.mark.parametrize("D", [2, 3, 5])
def test_bmm_z1_and_lambda_update_match_one_em_step(D):
    true_pi, true_mu, data, mu1 = small_case(D, D)
    xbar = data.mean
    epsilon = 1e-10
    new_pi, new_mu, _ = b.em_step(data, np.array([[epsilon, 1 - epsilon]]), np.stack([mu1, xbar])[None])
    lam = theory.bmm_lambda(true_mu, xbar, mu1)
    assert theory.bmm_z1_products(true_pi, true_mu, xbar, mu1) == pytest.approx(new_pi[0, 0] / epsilon, rel=1e-8)
    assert theory.bmm_z1_lambda(true_pi, lam) == pytest.approx(new_pi[0, 0] / epsilon, rel=1e-8)
    np.testing.assert_allclose(theory.bmm_lambda_update(true_pi, true_mu, xbar, mu1),
                               theory.bmm_lambda(true_mu, xbar, new_mu[0, 0]), rtol=1e-7, atol=1e-12)


def test_two_features_z1_is_one_plus_pi1_pi2_lambda1_lambda2():
    true_pi = np.array([0.3, 0.7])
    for lam in (np.array([0.5, -0.8]), np.array([1.2, 0.4]), np.array([0.0, 3.0])):
        assert theory.bmm_z1_lambda(true_pi, lam) == pytest.approx(1 + 0.3 * 0.7 * lam[0] * lam[1])


def test_one_cluster_gap_is_the_kl_and_tends_to_d_minus_one_log_two():
    _, _, data, _ = small_case(4, 1)
    gap, kl = one_cluster_gap(data)
    assert gap == pytest.approx(kl, rel=1e-10) and gap > 0
    for D in (2, 5, 8):
        extreme = b.population_patterns(np.array([0.5, 0.5]), np.array([[1 - 1e-6] * D, [1e-6] * D]))
        assert one_cluster_gap(extreme)[0] == pytest.approx((D - 1) * np.log(2), rel=1e-3)


def test_theory_sweep_and_report(tmp_path):
    config = tmp_path / "gap.yaml"
    config.write_text("name: gap\nexperiment: theory\ncheck: one_cluster_gap\n"
                      "check_options: {deltas: [0.01, 0.0001], perturbations: 50}\n"
                      "seed: 1\ngrid: {m: [2], D: [2, 3, 4], algorithm: [em]}\ntruths: 3\n")
    emrun("sweep", str(config), "--quiet", cwd=tmp_path)
    rows = load_results(tmp_path / "results" / "gap")
    assert set(rows["quantity"]) == {"gap_random_truth", "gap_independent_truth", "gap_extreme_truth",
                                     "local_minimum_trap", "local_minimum_escape"}
    emrun("report", cwd=tmp_path)
    verdicts = {v["claim"]: v["status"] for v in
                json.loads((tmp_path / "results" / "gap" / "verdicts.json").read_text())["verdicts"]}
    assert verdicts == {
        "One-cluster points where Z_1 < 1 are local minima, and those where Z_1 > 1 are not (Theorem 5.1)": "holds",
        "The one-cluster gap is positive when the features are dependent and zero when they are independent "
        "(Theorem 5.2: one-cluster local minima are not global)": "holds",
        "The gap grows like (D - 1) log 2 along the paper's extreme truths (Theorem 5.2: Theta(D))": "holds"}
    assert f"check rows: {len(rows)}" in emrun("status", cwd=tmp_path).stdout
    replay = emrun("replay", "gap/whatever/0", cwd=tmp_path, check=False)
    assert replay.returncode == 2 and "check rows of experiment theory" in replay.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nexperiment: theory\ncheck: nope\nseed: 1\ngrid: {m: [2], D: [2]}\n")
    refused = emrun("sweep", str(bad), cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "check" in refused.stderr and "closed_forms" in refused.stderr


@pytest.mark.slow
def test_gd_trap_and_escape_checks_run_and_judge(tmp_path):
    for name, check, options in (("trap", "gd_trap", "{grid: 6, gd_iterations: 200, em_iterations: 60}"),
                                 ("escape", "bmm_escape", "{starts: 40, em_iterations: 200, trajectories: 3}")):
        (tmp_path / f"{name}.yaml").write_text(
            f"name: {name}\nexperiment: theory\ncheck: {check}\ncheck_options: {options}\nseed: 4\n"
            "grid: {m: [2], D: [2], algorithm: [em]}\ntruths: 2\n")
        emrun("sweep", str(tmp_path / f"{name}.yaml"), "--quiet", cwd=tmp_path)
    trap = load_results(tmp_path / "results" / "trap")
    starts = trap[trap["quantity"] == "start"]
    assert len(starts) == 2 * 36
    lam = starts[["lambda_1", "lambda_2"]].to_numpy()
    np.testing.assert_array_equal(starts["in_trap"].astype(bool), lam[:, 0] * lam[:, 1] < 0)  # D = 2: Z_1 < 1 iff
    escape = load_results(tmp_path / "results" / "escape")
    first = escape[escape["quantity"] == "first_positive_iteration"]
    assert len(first) == 2 * 40 and (first["engine"] != 0).all()  # every start is outside a positive region
    emrun("report", cwd=tmp_path)
    trap_verdicts = json.loads((tmp_path / "results" / "trap" / "verdicts.json").read_text())["verdicts"]
    assert [v["claim"].split(" (")[0] for v in trap_verdicts] == [
        "D = 2: GD is trapped where Z_1 < 1", "D = 2: there are one-cluster regions that trap GD and that EM escapes",
        "D = 2: EM escapes from every start with Z_1 < 1"]
    assert all(v["status"] in ("holds", "does not hold") and v["criterion"] for v in trap_verdicts)
    escape_verdicts = json.loads((tmp_path / "results" / "escape" / "verdicts.json").read_text())["verdicts"]
    assert len(escape_verdicts) == 1 and escape_verdicts[0]["status"] in ("holds", "does not hold")


def test_kmeans_and_em_centres_differ_on_overlapping_clusters_only():
    from emrun import lecture

    rng = np.random.default_rng(5)
    overlapping = lecture.compare(lecture.synthetic("overlapping", rng), 1)
    separated = lecture.compare(lecture.synthetic("separated", rng), 1)
    assert np.abs(overlapping["full"] - overlapping["kmeans"]).max() > 0.2
    assert np.abs(separated["full"] - separated["kmeans"]).max() < 0.01
    for result in (overlapping, separated):  # EM's loss never goes up
        assert np.all(np.diff(result["unit_losses"]) <= 1e-12 * np.abs(result["unit_losses"][:-1]))


@pytest.mark.parametrize("D", [2, 3])
def test_the_gaussian_population_rule_has_the_mixtures_mean_and_covariance(D):
    from emrun.models import gaussian

    rng = np.random.default_rng(D)
    pi, mu = gaussian.random_mixture(2, D, rng)
    data = gaussian.population(pi, mu, 12)
    centred = data.points - pi @ mu
    covariance = (data.weights[:, None] * centred).T @ centred
    spread = mu - pi @ mu
    np.testing.assert_allclose(data.mean, pi @ mu, atol=1e-13)
    np.testing.assert_allclose(covariance, np.eye(D) + (pi[:, None] * spread).T @ spread, atol=1e-12)


def test_population_em_in_the_span_of_the_means_is_the_full_rule_s():
    """EM on a rule laid in span(mu*, mu_1) gives the iterates of the rule over all of R^D (D = 3)."""
    from emrun.algorithms import run_batch
    from emrun.models import gaussian

    rng = np.random.default_rng(5)
    pi, mu = gaussian.random_mixture(2, 3, rng)
    mu1 = rng.uniform(-1, 1, size=3)
    basis = np.linalg.qr(np.stack([mu[0], mu1]).T)[0].T
    ends = []
    for data in (gaussian.population(pi, mu, 40), gaussian.population(pi, mu, 40, basis)):
        start = np.stack([mu1, data.mean])[None]
        ends.append(run_batch(gaussian, data, np.array([[0.01, 0.99]]), start, "em", 20, 0.0).mu[0])
    np.testing.assert_allclose(ends[0], ends[1], atol=1e-8)  # two quadratures of one integral


def test_the_population_checks_run_and_judge_with_the_estimators_error(tmp_path):
    for name, check, options in (
            ("escape", "escape_population", "{em_steps: 40, gd_steps: 30, points: 24, coarse_points: 16}"),
            ("rotation", "gmm_rotation_population", "{steps: 10, points: 24, coarse_points: 16}")):
        (tmp_path / f"{name}.yaml").write_text(
            f"name: {name}\nmodel: gaussian\nexperiment: theory\ncheck: {check}\ncheck_options: {options}\nseed: 4\n"
            "grid: {m: [2], D: [2], algorithm: [em]}\ntruths: 3\n")
        emrun("sweep", str(tmp_path / f"{name}.yaml"), "--quiet", cwd=tmp_path)
    emrun("report", cwd=tmp_path)
    escape = json.loads((tmp_path / "results" / "escape" / "verdicts.json").read_text())["verdicts"]
    assert [v["id"] for v in escape] == ["figure2.population.em_multiplicative", "figure2.population.eq_4_4",
                                         "figure2.population.gd_linear"]
    assert escape[0]["source"]["kind"] == "paper" and escape[1]["source"]["kind"] == "extension"
    assert "Gauss-Hermite rules of 24 and 16 points per axis" in escape[0]["criterion"]
    rotation = json.loads((tmp_path / "results" / "rotation" / "verdicts.json").read_text())["verdicts"]
    assert rotation[0]["id"] == "theory.rotation_population" and rotation[0]["status"] in ("holds", "does not hold")
    rows = load_results(tmp_path / "results" / "escape")
    assert (rows["pi1_coarse"] != rows["engine"]).any(), "the coarse rule is a different estimate"
