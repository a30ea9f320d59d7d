"""The lecture's image segmentation: k-means and a full-covariance Gaussian mixture (EM) on the
pixels of an RGB image as points in [0, 1]^3 (docs/protocols.md, section 4.3, fixes every choice).

Images: two synthetic ones with known regions, (a) ``equal_noise`` (four flat colours, isotropic
noise) and (b) ``unequal_noise`` (a background with wide anisotropic noise beside a tight disc, so
k-means splits the background's tail off), whose noise is drawn per seed; and ``china``,
scikit-learn's bundled photograph, block-averaged down. One batch is one (K, seed): every image
segmented by k-means and by EM started from the k-means solution (the ``segmentation`` kind,
:mod:`emrun.kinds.segmentation`): rows of quantities, the images and label maps of seed 0 stored
compactly.
"""

from __future__ import annotations

import base64

import numpy as np

from emrun import seeds
from emrun.algorithms import run_batch
from emrun.models import gaussian_full
from emrun.models.gaussian import SampleSet

SIZE = 128  # the protocol's synthetic images are SIZE x SIZE pixels (options.size)
OPTIONS = {"iterations": 300, "tol": 1e-6, "kmeans_starts": 10, "size": SIZE}  # each default's type is the option's
DECREASE_TOLERANCE = 1e-10  # a step lowers F when F falls by more than this times |F| (rounding)
IMAGES = ("equal_noise", "unequal_noise", "china")
REGIONS = {"equal_noise": 4, "unequal_noise": 3}  # images with known regions
EQUAL_COLOURS = np.array([[0.75, 0.25, 0.25], [0.25, 0.75, 0.25], [0.25, 0.25, 0.75], [0.7, 0.7, 0.3]])
UNEQUAL = ((np.array([0.5, 0.5, 0.5]), np.array([0.15, 0.04, 0.04])),  # background: wide along R
           (np.array([0.8, 0.5, 0.5]), np.array([0.03, 0.03, 0.03])),  # disc of radius 40, centred
           (np.array([0.3, 0.3, 0.7]), np.array([0.05, 0.05, 0.05])))  # 32 x 32 square, top left


def region_map(name: str, size: int = SIZE) -> np.ndarray:
    """The known region of every pixel [size, size] (images (a) and (b); the protocol's sizes are
    for size = 128 and scale with it)."""
    rows, columns = np.mgrid[0:size, 0:size]
    if name == "equal_noise":
        return (rows >= size // 2) * 2 + (columns >= size // 2)
    centre, radius, corner = (size - 1) / 2, 40 * size / SIZE, 32 * size // SIZE
    regions = np.where((rows - centre) ** 2 + (columns - centre) ** 2 <= radius**2, 1, 0)
    regions[:corner, :corner] = 2
    return regions


def synthetic(name: str, rng: np.random.Generator, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(image [size, size, 3] in [0, 1], regions [size, size]) with this seed's noise."""
    regions = region_map(name, size)
    noise = rng.standard_normal((size, size, 3))
    if name == "equal_noise":
        image = EQUAL_COLOURS[regions] + 0.1 * noise
    else:
        colours = np.array([colour for colour, _ in UNEQUAL])
        spreads = np.array([spread for _, spread in UNEQUAL])
        image = colours[regions] + spreads[regions] * noise
    return np.clip(image, 0.0, 1.0), regions


def china() -> np.ndarray:
    """scikit-learn's china.jpg (427 x 640), block-averaged by 4 and 5 to 106 x 128, in [0, 1]."""
    from sklearn.datasets import load_sample_image

    pixels = load_sample_image("china.jpg").astype(float) / 255.0
    rows, columns = pixels.shape[0] // 4, pixels.shape[1] // 5
    return pixels[: rows * 4, : columns * 5].reshape(rows, 4, columns, 5, 3).mean(axis=(1, 3))


def best_accuracy(labels: np.ndarray, regions: np.ndarray) -> float:
    """The share of pixels whose label matches their region under the best one-to-one matching of
    labels to regions (Hungarian algorithm on the confusion matrix)."""
    from scipy.optimize import linear_sum_assignment

    size = max(labels.max(), regions.max()) + 1
    confusion = np.zeros((size, size))
    np.add.at(confusion, (labels.ravel(), regions.ravel()), 1)
    matched_labels, matched_regions = linear_sum_assignment(-confusion)
    return float(confusion[matched_labels, matched_regions].sum() / labels.size)


def kmeans_start(points: np.ndarray, K: int, seed: int, starts: int):
    """k-means (scikit-learn, ``starts`` seeded starts): labels, inertia per pixel, and the
    mixture it implies (each cluster's share, centre and covariance) as the EM start."""
    from sklearn.cluster import KMeans

    fitted = KMeans(n_clusters=K, n_init=starts, random_state=seed).fit(points)
    labels = fitted.labels_
    share = np.bincount(labels, minlength=K) / len(points)
    cov = np.stack([np.cov(points[labels == c].T, bias=True) if (labels == c).sum() > 1 else np.eye(3) * 1e-2
                    for c in range(K)]) + gaussian_full.EPSILON * np.eye(3)
    packed = gaussian_full.pack(fitted.cluster_centers_, cov)
    return labels, float(fitted.inertia_ / len(points)), share, packed


def _encode(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.uint8).tobytes()).decode()


def decode(text: str, shape: tuple[int, ...]) -> np.ndarray:
    """A stored image or label map back as uint8 [shape]."""
    return np.frombuffer(base64.b64decode(text), dtype=np.uint8).reshape(shape)


def segment(image: np.ndarray, K: int, seed: int, options: dict) -> dict:
    """k-means, then EM from its solution: both label maps, EM's objective at every iteration,
    the GMM's log-likelihood and k-means' inertia (per pixel)."""
    points = image.reshape(-1, 3)
    data = SampleSet(points, np.full(len(points), 1.0 / len(points)))
    kmeans_labels, inertia, share, packed = kmeans_start(points, K, seed, options["kmeans_starts"])
    traced = run_batch(gaussian_full, data, share[None], packed[None], "em", options["iterations"],
                       options["tol"], record=("loss",), record_every=1)
    losses = np.array([recorded["loss"][0] for _, _, recorded in traced.trace])  # -F at every iterate
    responsibilities = gaussian_full.responsibilities(data, traced.pi, traced.mu)[0]
    return {"kmeans": kmeans_labels.reshape(image.shape[:2]),
            "gmm": responsibilities.argmax(axis=0).reshape(image.shape[:2]),
            "losses": losses, "iterations": int(traced.iterations[0]), "status": str(traced.status[0]),
            "components": int((traced.pi[0] > 0).sum()),  # a component can be dropped (gaussian_full.DEAD_SHARE)
            "log_likelihood": float(gaussian_full.log_likelihood(data, traced.pi, traced.mu)[0]), "inertia": inertia}


def objective_decreases(losses: np.ndarray) -> tuple[int, float]:
    """Of EM's -F at successive iterates: (the steps where F falls by more than DECREASE_TOLERANCE
    x |F| or becomes non-finite, the largest one-step fall of F relative to |F|; inf if non-finite)."""
    before, after = losses[:-1], losses[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = (after - before) / np.abs(before)  # -F rising = F falling
    broken = ~np.isfinite(relative)
    falls = int((broken | (relative > DECREASE_TOLERANCE)).sum())
    largest = np.inf if broken.any() else float(max(relative.max(initial=0.0), 0.0))
    return falls, largest


def segment_images(seed: int, K: int, t: int, rng: np.random.Generator, options: dict) -> list[dict]:
    """One (K, seed index ``t``): every image segmented by k-means and by EM; rows of accuracies
    (images with known regions, at their number of regions), EM's objective decreases, likelihood
    and inertia; for seed 0 the images and label maps. ``seed`` is the config's; ``rng`` draws the
    k-means seeds."""
    # The noise depends on the seed index only (m = 0 in its key), so every K segments the same images.
    size = options["size"]
    noise = seeds.generator(seed, seeds.data_key(0, 3, t, size * size))
    images = {name: synthetic(name, noise, size) for name in IMAGES[:2]}
    images["china"] = (china(), None)
    rows = []

    def row(quantity: str, index: int, value: float, **extra) -> None:
        rows.append({"truth_index": t, "quantity": quantity, "index": index, "value": float(value), **extra})

    for index, (name, (image, regions)) in enumerate(images.items()):
        result = segment(image, K, int(rng.integers(2**31 - 1)), options)
        falls, largest = objective_decreases(result["losses"])
        common = {"image": name, "K": K, "regions": REGIONS.get(name, 0), "em_iterations": result["iterations"],
                  "em_status": result["status"], "gmm_components": result["components"]}
        row("objective_decreases", index, falls, steps=len(result["losses"]) - 1, largest_rise=largest, **common)
        row("gmm_log_likelihood", index, result["log_likelihood"], **common)
        row("kmeans_inertia", index, result["inertia"], **common)
        if regions is not None and K == REGIONS[name]:
            for method in ("gmm", "kmeans"):
                row(f"{method}_accuracy", index, best_accuracy(result[method], regions), **common)
        if t == 0:
            shape = image.shape
            row("image", index, 0.0, height=shape[0], width=shape[1], encoded=_encode(np.round(image * 255)), **common)
            for method in ("gmm", "kmeans"):
                row(f"{method}_labels", index, 0.0, height=shape[0], width=shape[1], encoded=_encode(result[method]),
                    **common)
    return rows
