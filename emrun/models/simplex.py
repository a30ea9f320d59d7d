"""Euclidean projection onto the probability simplex, shared by every family's projected GD."""

from __future__ import annotations

import numpy as np


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row of v [T, m] onto the probability simplex.

    The sort-based algorithm of Duchi et al. (2008), vectorised over rows. The projection does not
    change when a constant is added to a row, so a row with an entry beyond 1e8 in size (a GD step
    on a huge gradient, where u - (u - 1) would round to 0) is first shifted by its largest entry;
    other rows are left as they are, so that their results stay bit for bit what they were.
    """
    largest = v.max(axis=1, keepdims=True)
    v = np.where(np.abs(v).max(axis=1, keepdims=True) > 1e8, v - largest, v)
    u = -np.sort(-v, axis=1)
    cumulative = np.cumsum(u, axis=1) - 1.0
    index = np.arange(1, v.shape[1] + 1)
    rho = np.count_nonzero(u - cumulative / index > 0, axis=1)  # >= 1 always
    theta = cumulative[np.arange(v.shape[0]), rho - 1] / rho
    return np.maximum(v - theta[:, None], 0.0)
