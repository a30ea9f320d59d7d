"""The lecture's image segmentation: the full-covariance family, label matching, the check end to end."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emrun import segmentation
from emrun.contract import check_family
from emrun.models import gaussian_full as g
from emrun.results import load_results
from tests.conftest import emrun

TINY = """\
name: seg
experiment: segmentation
options: {size: 16, iterations: 40, kmeans_starts: 1}
seed: 5
K: [3, 4]
seeds: 2
"""


def test_gaussian_full_meets_the_family_contract():
    assert all(result.passed for result in check_family(g))


@settings(max_examples=15, deadline=None)
@given(m=st.integers(1, 4), D=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_em_never_lowers_the_penalised_objective(m, D, seed):
    rng = np.random.default_rng(seed)
    data = g.sample(*g.random_mixture(m, D, rng), 300, rng)
    starts = [g.random_init(m, D, rng) for _ in range(4)]
    pi, mu = np.array([s[0] for s in starts]), np.array([s[1] for s in starts])
    losses = []
    for _ in range(25):
        pi, mu, loss = g.em_step(data, pi, mu)
        losses.append(loss)
    losses = np.array(losses)
    assert np.isfinite(losses).all()
    assert (np.diff(losses, axis=0) <= 1e-10 * np.abs(losses[:-1])).all()  # -F never rises


def test_the_m_step_is_the_penalised_one():
    # Two components with unequal shares, so the floor's division by N_c is what is checked: the
    # new covariance is the weighted scatter about the new mean plus (EPSILON / N_c) I.
    rng = np.random.default_rng(3)
    data = g.sample(*g.random_mixture(2, 2, rng), 400, rng)
    pi, mu = np.array([[0.8, 0.2]]), g.random_init(2, 2, rng)[1][None]
    r = g.responsibilities(data, pi, mu)[0]  # [2, P]
    new_pi, packed, _ = g.em_step(data, pi, mu)
    means, cov = g.unpack(packed[0])
    for c in range(2):
        weights = r[c] * data.weights
        share = weights.sum()
        assert new_pi[0, c] == pytest.approx(share, rel=1e-12)
        mean = weights @ data.points / share
        centred = data.points - mean
        scatter = (weights[:, None] * centred).T @ centred / share
        np.testing.assert_allclose(means[c], mean, rtol=1e-12)
        np.testing.assert_allclose(cov[c], scatter + g.EPSILON / share * np.eye(2), rtol=1e-10)
    assert abs(new_pi[0, 0] - new_pi[0, 1]) > 0.05  # the shares differ: EPSILON alone would fail above


def test_a_component_left_without_data_is_dropped_not_overflowed():
    # A component far from every point gets a share that underflows: its weight becomes 0 and its
    # mean and covariance stay, instead of a covariance EPSILON / N_c that overflows.
    rng = np.random.default_rng(4)
    data = g.sample(*g.random_mixture(1, 3, rng), 300, rng)
    means = np.array([[0.5, 0.5, 0.5], [40.0, 40.0, 40.0]])
    mu = g.pack(means, np.broadcast_to(0.01 * np.eye(3), (2, 3, 3)))[None]
    with np.errstate(over="raise", invalid="raise"):  # no overflow, no invalid value (underflow is the point)
        new_pi, packed, loss = g.em_step(data, np.array([[0.5, 0.5]]), mu)
    assert new_pi[0, 1] == 0.0 and np.array_equal(packed[0, 1], mu[0, 1]) and np.isfinite(loss).all()
    assert new_pi[0, 0] == pytest.approx(1.0, rel=1e-12)


def test_a_non_finite_objective_counts_as_a_decrease():
    falls, largest = segmentation.objective_decreases(np.array([-1.0, -1.5, -1.5, np.nan, -2.0]))
    assert falls == 2 and largest == np.inf  # into and out of the NaN
    falls, largest = segmentation.objective_decreases(np.array([-1.0, -1.5, -1.4, -1.6]))
    assert falls == 1 and largest == pytest.approx(0.1 / 1.5)
    assert segmentation.objective_decreases(np.array([-1.0, -1.0 - 1e-12]))[0] == 0


def test_accuracy_takes_the_best_matching_of_labels_to_regions():
    regions = np.array([[0, 0, 1, 1], [2, 2, 2, 2]])
    assert segmentation.best_accuracy((regions + 1) % 3, regions) == 1.0  # a relabelling costs nothing
    wrong = (regions + 1) % 3
    wrong[0, 0] = wrong[0, 2]  # one pixel in the wrong cluster
    assert segmentation.best_accuracy(wrong, regions) == pytest.approx(7 / 8)
    assert segmentation.best_accuracy(np.zeros_like(regions), regions) == pytest.approx(4 / 8)  # K < regions


def test_the_synthetic_images_have_the_protocols_regions():
    regions = segmentation.region_map("unequal_noise")
    assert (regions == 2).sum() == 32 * 32 and 0.29 < (regions == 1).mean() < 0.32
    assert np.bincount(segmentation.region_map("equal_noise").ravel()).tolist() == [64 * 64] * 4
    image, _ = segmentation.synthetic("equal_noise", np.random.default_rng(0))
    assert image.shape == (128, 128, 3) and image.min() >= 0 and image.max() <= 1


@pytest.mark.parametrize("change,bad,key", [
    ("K: [3, 4]", "K: [3, 1]", "K"),
    ("K: [3, 4]", "options: {size: 4}\nK: [3, 20]", "K"),
    ("seeds: 2", "seeds: 0", "seeds"),
    ("seed: 5", "seed: 5\nmodel: gaussian_full", "model"),
    ("options: {size: 16, iterations: 40, kmeans_starts: 1}", "options: {size: 16, colours: 3}", "options.colours")])
def test_segmentation_config_errors_are_one_line(tmp_path, change, bad, key):
    config = TINY.replace(change, bad)
    if "size: 4" in bad:
        config = config.replace("options: {size: 16, iterations: 40, kmeans_starts: 1}\n", "")
    (tmp_path / "bad.yaml").write_text(config)
    refused = emrun("sweep", "bad.yaml", cwd=tmp_path, check=False)
    assert refused.returncode == 2 and key in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "results").exists()
    if "size: 4" in bad:
        assert "more than the 16 pixels of a 4 x 4 image" in refused.stderr


def test_a_grid_config_cannot_use_the_image_family(tmp_path):
    (tmp_path / "grid.yaml").write_text("name: g\nseed: 1\nmodel: gaussian_full\ngrid: {m: [2], D: [3]}\n"
                                        "data: {samples: 100}\n")
    refused = emrun("sweep", "grid.yaml", cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "images (experiment: segmentation)" in refused.stderr


@pytest.mark.slow
def test_a_tiny_segmentation_sweep_reports_its_verdicts_and_figures(tmp_path):
    (tmp_path / "seg.yaml").write_text(TINY)
    emrun("sweep", "seg.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    rows = load_results(tmp_path / "results" / "seg")
    decreases = rows[rows["quantity"] == "objective_decreases"]
    assert len(decreases) == 2 * 2 * 3 and (decreases["value"] == 0).all()  # (K, seed) x 3 images
    accuracy = rows[rows["quantity"] == "gmm_accuracy"]
    assert set(zip(accuracy["image"], accuracy["K"], strict=True)) == {("equal_noise", 4), ("unequal_noise", 3)}
    stored = rows[(rows["quantity"] == "gmm_labels") & (rows["image"] == "china")].iloc[0]
    labels = segmentation.decode(stored["encoded"], (int(stored["height"]), int(stored["width"])))
    assert labels.max() < stored["K"] and labels.shape == (106, 128)
    emrun("report", cwd=tmp_path)
    verdicts = json.loads((tmp_path / "results" / "seg" / "verdicts.json").read_text())["verdicts"]
    claims = [v["claim"] for v in verdicts]
    assert len(claims) == 3 and claims[0].startswith("EM's objective never decreases")
    assert claims[1].startswith("On image (a)") and claims[2].startswith("On image (b)")
    assert all(v["criterion"] for v in verdicts) and verdicts[0]["status"] == "holds"
    for figure in ("segmentations.png", "accuracies.png", "china.png"):
        assert (tmp_path / "results" / "seg" / figure).exists()


def test_a_config_of_the_retired_segmentation_check_says_what_it_became(tmp_path):
    (tmp_path / "old.yaml").write_text("name: old\nexperiment: theory\ncheck: segmentation\nmodel: gaussian_full\nseed: 5\n"
                                       "grid: {m: [3], D: [3], algorithm: [em]}\ntruths: 2\n")
    refused = emrun("sweep", "old.yaml", cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "'experiment: segmentation' with 'K' (was grid.m)" in refused.stderr
