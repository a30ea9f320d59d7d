"""Paper C (EM with means on a simplex): EM on theta is GD with unit step, the DFT condition is the
invertibility of A = sum_j pi_j R^j, and the linearised rate; plus the dynamics studies end to end
through the real CLI (papers B and C) on tiny configs."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

from emrun.dynamics import lloyd_radius
from emrun.models import gaussian_means as gm
from tests.conftest import emrun


def _tied(k: int, d: int):
    return gm.powers(gm.rotation(k, d), k)


@settings(max_examples=20, deadline=None)
@given(weights=st.lists(st.floats(0.05, 1.0), min_size=3, max_size=3), angle=st.floats(0, 2 * np.pi),
       radius=st.floats(0.05, 2.0))
def test_em_on_theta_is_gradient_descent_with_unit_step(weights, angle, radius):
    pi = np.array([weights]) / sum(weights)
    theta = radius * np.array([[np.cos(angle), np.sin(angle)]])
    R_powers = _tied(3, 2)
    x, w = gm.gauss_hermite(60, 2)
    nodes = gm.Nodes(x[None], w, None)
    em, _ = gm.tied_em(pi, theta, R_powers, nodes)
    h, numeric = 1e-6, np.zeros(2)
    for a in range(2):
        step = np.zeros((1, 2))
        step[0, a] = h
        numeric[a] = (gm.kl(pi, gm.tied_means(theta + step, R_powers), nodes)[0]
                      - gm.kl(pi, gm.tied_means(theta - step, R_powers), nodes)[0]) / (2 * h)
    assert np.allclose(em[0], theta[0] - numeric, atol=1e-7)
    assert np.allclose(gm.tied_gradient(pi, theta, R_powers, nodes)[0][0], numeric, atol=1e-7)


@settings(max_examples=40, deadline=None)
@given(weights=st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3).filter(lambda w: sum(w) > 0.1))
def test_the_mixture_mean_matrix_is_invertible_exactly_when_the_dft_has_no_zero(weights):
    """k = 3, d = 2: A = sum_j pi_j R^j is |DFT_1(pi)| times a rotation, so det A = |DFT_1(pi)|^2."""
    pi = np.array(weights) / sum(weights)
    A = gm.mixture_mean_matrix(pi, _tied(3, 2))
    assert np.isclose(np.linalg.det(A), gm.weight_dft_min(pi), atol=1e-12)
    assert np.allclose(A.T @ A, gm.weight_dft_min(pi) * np.eye(2), atol=1e-12)


def test_uniform_weights_make_the_mean_matrix_zero_and_k2_is_the_difference_of_weights():
    assert np.abs(gm.mixture_mean_matrix(np.full(3, 1 / 3), _tied(3, 2))).max() < 1e-15
    pi = np.array([0.7, 0.3])
    assert np.isclose(gm.mixture_mean_matrix(pi, _tied(2, 1))[0, 0], 0.4)
    assert np.isclose(gm.weight_dft_min(pi), 0.16)


def test_near_zero_em_contracts_by_one_minus_the_dft_and_kl_stays_finite():
    """theta+ = (I - A^T A) theta + O(||theta||^2): the linearised rate behind the exponential claim."""
    pi = np.array([[0.5, 0.3, 0.2]])
    theta = np.array([[1e-3, 0.0]])
    nodes = gm.Expectations(gm.Estimator("quadrature", 40), 2).nodes(gm.tied_means(theta, _tied(3, 2)))
    em, loss = gm.tied_em(pi, theta, _tied(3, 2), nodes)
    assert np.isclose(np.linalg.norm(em) / 1e-3, 1 - gm.weight_dft_min(pi[0]), rtol=1e-2)
    assert 0 < loss[0] < 1e-6 and np.isfinite(loss).all()


def test_lloyd_closed_form_radius_is_the_centroid_of_a_sector():
    """k = 3: the centroid of a 120-degree sector of N(0, I_2) (integrated in polar coordinates)."""
    # E[x_1 ; sector] / P(sector) with density exp(-r^2/2) / (2 pi) r dr dphi and x_1 = r cos(phi)
    radial = integrate.quad(lambda r: r * r * np.exp(-r * r / 2), 0, np.inf)[0]
    angular = integrate.quad(np.cos, -np.pi / 3, np.pi / 3)[0]
    centroid = radial * angular / (2 * np.pi) / (1 / 3)
    assert np.isclose(lloyd_radius(3), centroid, rtol=1e-10)
    assert np.isclose(lloyd_radius(2), np.sqrt(2 / np.pi))


DYNAMICS = """\
name: {name}
experiment: dynamics
model: gaussian
study: {study}
seed: 1
grid: {{m: [{m}], D: [{D}], algorithm: [{algorithm}], step: [0.7]}}
truths: {truths}
runs: 1
options: {options}
estimator: {estimator}
"""


def _write(tmp_path, **fields):
    path = tmp_path / f"{fields['name']}.yaml"
    path.write_text(DYNAMICS.format(**fields))
    return path


@pytest.mark.slow
def test_dynamics_studies_sweep_and_report_through_the_cli(tmp_path):
    configs = [
        _write(tmp_path, name="b_rates", study="rates", m="2, 3", D=2, algorithm="gd", truths=1,
               options="{iterations: 400, checkpoints: 30}", estimator="{kind: quadrature, size: 8}"),
        _write(tmp_path, name="b_grad", study="gradnorm", m=3, D="2, 4, 8, 9, 10", algorithm="gd", truths=1,
               options="{trap_max_D: 10}", estimator="{kind: quadrature, size: 200}"),
        _write(tmp_path, name="b_stat", study="statrate", m=2, D=2, algorithm="em", truths=2,
               options="{samples: [100, 400, 3200], max_iter: 3000, tol: 1.0e-6}", estimator="{kind: sample, size: 3200}"),
        _write(tmp_path, name="b_stat_gd", study="statrate", m=2, D=2, algorithm="gd", truths=2,
               options="{samples: [100, 400, 3200], max_iter: 30000, tol: 1.0e-6}", estimator="{kind: sample, size: 3200}"),
        _write(tmp_path, name="c_rates", study="simplex_rates", m=3, D=2, algorithm="em", truths=1,
               options="{weights: [[0.5, 0.3, 0.2], [0.3333333333333333, 0.3333333333333333, 0.3333333333333334]], "
                       "radii: [1.0], iterations: 300}", estimator="{kind: quadrature, size: 40}"),
        _write(tmp_path, name="c_lloyd", study="lloyd", m=3, D=2, algorithm="em", truths=1, options="{}",
               estimator="{kind: sample, size: 20000}"),
        _write(tmp_path, name="b_mc", study="weights", m=3, D=2, algorithm="gd", truths=1,
               options="{iterations: 300, checkpoints: 20}", estimator="{kind: whitened_mc, size: 4096}"),
    ]
    for config, other in ((configs[2], "b_stat_gd"), (configs[3], "b_stat")):  # pair the two updates' end points
        config.write_text(config.read_text() + f"companions: {{other_update: {other}}}\n")
    for config in configs:
        emrun("sweep", str(config), "--results", "out", "--quiet", cwd=tmp_path)
    emrun("report", "--results", "out", cwd=tmp_path)
    for config in configs:
        report = (tmp_path / "out" / config.stem / "report.md").read_text()
        assert ("holds." in report or "does not hold." in report) and "nan" not in report.lower().split("## provenance")[0]
        assert list((tmp_path / "out" / config.stem).glob("*.png"))
    rows = pd.read_parquet(tmp_path / "out" / "b_grad" / "batches")
    assert set(rows["estimator"]) == {"quadrature"} and set(rows["estimator_size"]) == {200}
    monte_carlo = pd.read_parquet(tmp_path / "out" / "b_mc" / "batches")
    assert set(monte_carlo["estimator"]) == {"whitened_mc"} and monte_carlo["kl"].notna().all()
    paired = (tmp_path / "out" / "b_stat_gd" / "report.md").read_text()
    assert "Gradient EM and EM's M-step stop at the same stationary points**: holds. Paired with `b_stat`" in paired
    simplex = (tmp_path / "out" / "c_rates" / "report.md").read_text()
    assert "pi = (0.5, 0.3, 0.2), ||theta_0|| = 1" in simplex and "holds. slope -0.14" in simplex
    # The same config and seed give the same rows, whatever the number of workers.
    emrun("sweep", str(configs[2]), "--results", "again", "--quiet", "--workers", "1", cwd=tmp_path)
    first = pd.read_parquet(tmp_path / "out" / "b_stat" / "batches").drop(columns=["batch_seconds"])
    second = pd.read_parquet(tmp_path / "again" / "b_stat" / "batches").drop(columns=["batch_seconds"])
    pd.testing.assert_frame_equal(first.sort_values(["batch_id", "series"], ignore_index=True),
                                  second.sort_values(["batch_id", "series"], ignore_index=True))


def test_dynamics_config_errors_name_the_key_and_write_nothing(tmp_path):
    cases = [
        ({"estimator": "{kind: sample, size: 10}"}, "estimator.kind"),
        ({"estimator": "{kind: magic, size: 10}"}, "'estimator.kind' must be one of quadrature"),
        ({"options": "{iterations: many}"}, "'options.iterations' must be an integer"),
        ({"options": "{speed: 3}"}, "unknown key 'options.speed'"),
        ({"study": "nonsense"}, "'study' must be one of rates"),
    ]
    for change, message in cases:
        fields = {"name": "bad", "study": "rates", "m": 2, "D": 2, "algorithm": "gd", "truths": 1,
                  "options": "{iterations: 10}", "estimator": "{kind: quadrature, size: 4}", **change}
        result = emrun("sweep", str(_write(tmp_path, **fields)), "--results", "out", cwd=tmp_path, check=False)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert not (tmp_path / "out" / "bad").exists()
    stat = {"name": "bad", "study": "statrate", "m": 2, "D": 2, "algorithm": "em", "truths": 1,
            "options": "{samples: [100, 200]}", "estimator": "{kind: sample, size: 100}"}
    result = emrun("sweep", str(_write(tmp_path, **stat)), "--results", "out", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "'estimator.size' must be the largest of options.samples (200)" in result.stderr
