"""The seed tree: every random draw is keyed by what it is, never by scheduling.

The truth of a cell comes from (config seed, m, D, truth index); its data set from that plus the
data spec; a run's initial point from (config seed, m, D, truth index, run index). None depends
on the algorithm or the step size, so EM and GD start from the same truth and the same initial
points (a paired comparison), and configs with the same seed share their truths and inits
(Table 1 and Table 2 differ only in the data).
"""

from __future__ import annotations

import numpy as np

_TRUTH, _DATA, _INIT = 0, 1, 2


def _key(m: int, D: int, truth: int, kind: int, *more: int) -> tuple[int, ...]:
    return (m, D, truth, kind, *more)


def describe(seed: int, key: tuple[int, ...]) -> str:
    """A string that names one draw, stored in result rows so a run can be replayed."""
    return f"{seed}:" + ",".join(str(k) for k in key)


def truth_key(m: int, D: int, truth: int) -> tuple[int, ...]:
    return _key(m, D, truth, _TRUTH)


def data_key(m: int, D: int, truth: int, n_samples: int) -> tuple[int, ...]:
    return _key(m, D, truth, _DATA, n_samples)


def init_key(m: int, D: int, truth: int, run: int) -> tuple[int, ...]:
    return _key(m, D, truth, _INIT, run)


def generator(seed: int, key: tuple[int, ...]) -> np.random.Generator:
    """The generator of one draw of the tree."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=key))
