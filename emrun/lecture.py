"""The lecture's claim that k-means and EM on a Gaussian mixture need not give the same centres
(docs/protocols.md section 4.2), as a check of ``experiment: theory`` (``check: kmeans_vs_em``).

Two synthetic two-dimensional sets: overlapping clusters of unequal size and spread (800 points of
N(0, I), 200 of N((2.5, 0), 0.09 I)), where they should disagree, and two well-separated equal
clusters (500 + 500, 10 apart), where they should agree. On each: k-means (scikit-learn, 10 seeded
starts), scikit-learn's GaussianMixture with full covariances started from k-means, and emrun's
unit-covariance EM (the Gaussian family) started from the k-means centres. Rows: every point with
its k-means and full-covariance labels, each method's centres, and the centre differences.
"""

from __future__ import annotations

import numpy as np

from emrun.algorithms import run_batch as run_algorithm
from emrun.models import gaussian

SETS = ("overlapping", "separated")


def synthetic(name: str, rng: np.random.Generator) -> np.ndarray:
    if name == "overlapping":
        return np.concatenate([rng.standard_normal((800, 2)), rng.normal((2.5, 0.0), 0.3, size=(200, 2))])
    return np.concatenate([rng.standard_normal((500, 2)), rng.standard_normal((500, 2)) + (10.0, 0.0)])


def compare(points: np.ndarray, seed: int) -> dict:
    """k-means, full-covariance GMM and unit-covariance EM on the points: centres, labels, losses."""
    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture

    kmeans = KMeans(n_clusters=2, n_init=10, random_state=seed).fit(points)
    order = np.argsort(kmeans.cluster_centers_[:, 0])  # name the clusters left to right
    centres = kmeans.cluster_centers_[order]
    labels = np.argsort(order)[kmeans.labels_]
    full = GaussianMixture(2, covariance_type="full", means_init=centres, random_state=seed, tol=1e-8,
                           max_iter=1000).fit(points)
    data = gaussian.SampleSet(points, np.full(len(points), 1.0 / len(points)))
    pi0 = np.bincount(labels, minlength=2)[None] / len(points)
    unit = run_algorithm(gaussian, data, pi0, centres[None], "em", 500, 1e-10, record=("loss",))
    losses = np.array([values["loss"][0] for _, _, values in unit.trace])
    return {"kmeans": centres, "full": full.means_, "unit": unit.mu[0], "kmeans_labels": labels,
            "full_labels": full.predict(points), "unit_losses": losses}
