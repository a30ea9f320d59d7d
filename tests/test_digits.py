"""Real data: the digits data set as a weighted pattern set, k-means inits, and a tiny sweep + report."""

import numpy as np
import pytest

from emrun import datasets, experiments
from emrun.config import Cell, load
from emrun.results import load_results
from tests.conftest import emrun

TINY_DIGITS = """\
name: tiny_digits
seed: 3
grid: {m: [2], D: [64], algorithm: [em, gd], step: [0.02], init: [uniform, kmeans]}
data: {dataset: digits, threshold: 8, classes: [0, 1]}
runs: 3
stopping: {em: {max_iter: 30}, gd: {max_iter: 60}}
"""


def test_digits_are_a_weighted_pattern_set_with_labels():
    labelled = datasets.digits(8, (0, 1))
    data = labelled.data
    assert data.patterns.shape[1] == 64 and set(np.unique(data.patterns)) <= {0.0, 1.0}
    assert data.weights.sum() == pytest.approx(1.0) and len(labelled.labels) == 360
    np.testing.assert_array_equal(data.patterns[labelled.pattern_of_item].sum(axis=1) > 0, True)
    counts = np.bincount(labelled.pattern_of_item, minlength=len(data.weights))
    np.testing.assert_allclose(data.weights, counts / counts.sum())
    # Assignments in log space agree with the most probable component computed directly.
    pi, mu = np.array([0.4, 0.6]), np.random.default_rng(0).uniform(0.1, 0.9, size=(2, 64))  # no ties
    direct = np.argmax([[np.prod(np.where(x == 1, mu[c], 1 - mu[c])) * pi[c] for c in range(2)] for x in data.patterns], axis=1)
    np.testing.assert_array_equal(datasets.assignments(data, pi, mu), direct)


def test_kmeans_inits_are_seeded_and_inside_the_cube(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text(TINY_DIGITS)
    values = load(path).values
    data = experiments.make_data(values, 2, 64, 0, None, None)
    cell = Cell(2, 64, "em", None, "kmeans")
    first, again = (experiments.initial_points(values, cell, 0, data) for _ in range(2))
    np.testing.assert_array_equal(first[1], again[1])
    assert (first[1] >= 1e-3).all() and (first[1] <= 1 - 1e-3).all()
    np.testing.assert_allclose(first[0].sum(axis=1), 1.0)


@pytest.mark.slow
def test_tiny_digits_sweep_and_report(tmp_path):
    (tmp_path / "d.yaml").write_text(TINY_DIGITS)
    emrun("sweep", str(tmp_path / "d.yaml"), "--quiet", cwd=tmp_path)
    rows = load_results(tmp_path / "results" / "tiny_digits")
    assert len(rows) == 4 * 3 and rows["ari"].between(-1, 1).all()
    assert (rows["truth_seed"] == "dataset:digits").all() and rows["truth_pi"].isna().all()
    emrun("report", cwd=tmp_path)
    report = (tmp_path / "results" / "tiny_digits" / "report.md").read_text()
    assert "GD ends at k-cluster points on real data**:" in report and "GD diverges on real data" in report
    assert "| em |" in report
    assert (tmp_path / "results" / "tiny_digits" / "prototypes.png").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY_DIGITS.replace("D: [64]", "D: [8]"))
    refused = emrun("sweep", str(bad), cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "grid.D: [64]" in refused.stderr
