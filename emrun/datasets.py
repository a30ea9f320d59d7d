"""Real binary data sets that ship with an installed package (no download at run time).

A data set is a finite weighted pattern set like any sample (distinct patterns, weights = counts
/ N), plus, for each item, the index of its pattern and its label, so that clusterings can be
scored against the labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from emrun.models.bernoulli import PatternSet

DATASETS = ("digits",)


@dataclass(frozen=True)
class LabelledPatterns:
    data: PatternSet
    pattern_of_item: np.ndarray  # [N]: the row of data.patterns each item is
    labels: np.ndarray  # [N]


@cache
def _digits_images() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()  # 1797 8x8 images, grey levels 0..16, bundled with scikit-learn
    return digits.data, digits.target


def digits(threshold: int = 8, classes: tuple[int, ...] | None = None) -> LabelledPatterns:
    """scikit-learn's 8x8 digits binarised at grey level >= ``threshold`` (D = 64), optionally only
    the digits in ``classes``."""
    images, labels = _digits_images()
    if classes is not None:
        keep = np.isin(labels, classes)
        images, labels = images[keep], labels[keep]
    binary = (images >= threshold).astype(np.float64)
    patterns, pattern_of_item, counts = np.unique(binary, axis=0, return_inverse=True, return_counts=True)
    return LabelledPatterns(PatternSet(patterns, counts / counts.sum()), pattern_of_item.ravel(), labels)


def load(spec: dict) -> LabelledPatterns:
    """The data set a config's ``data`` names."""
    if spec["name"] == "digits":
        classes = tuple(spec["classes"]) if spec.get("classes") else None
        return digits(spec["threshold"], classes)
    raise ValueError(f"unknown data set {spec['name']!r}")


def assignments(data: PatternSet, pi: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """The most responsible component of each pattern under one mixture (pi [m], mu [m, D]),
    computed in log space: [P]."""
    with np.errstate(divide="ignore"):
        factors = np.where(data.patterns[:, None, :] == 1, np.log(mu)[None], np.log(1 - mu)[None])  # [P, m, D]
        scores = factors.sum(axis=2) + np.log(pi)
    return np.argmax(scores, axis=1)
