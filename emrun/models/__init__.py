"""Model families: the mathematics of each kind of mixture, batched over trials.

A family is anything that follows :class:`Family` (the built-in ones are modules with these
names at module level): it draws truths and initial points, builds data, and computes the loss,
responsibilities, the EM step and the gradient, with its own boundary handling. It declares what
it can do in ``capabilities``: an EM-only family (say, full covariances) is fine; a config that
pairs it with a gradient algorithm is refused. Nothing here knows how trials are scheduled.

Shapes: ``pi`` [T, m] and ``mu`` [T, m, D] for T trials; data is weighted points with
``weights`` [P] summing to 1, ``points`` [P, D], ``mean`` [D] and ``entropy`` (its lowest
possible loss where one exists, else None).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Family(Protocol):
    name: str
    capabilities: frozenset[str]  # "em": em_step; "gradient": gradient and project
    data_kinds: tuple[str, ...]  # which of "population", "samples", "dataset" it can use
    em_updates: tuple[str, ...]  # the EM rules it offers, the default first
    boundary_rules: tuple[str, ...]  # how its gradient treats parameters on the boundary, the default first
    mean_range: tuple[float, float] | None  # where a mean may lie (None: anywhere)

    def max_features(self, data_kind: str) -> int:
        """The largest D the family handles for this kind of data."""

    def max_points(self, data: dict, D: int) -> int:
        """At most how many weighted points a batch's data has, before drawing it (for memory)."""

    def random_mixture(self, m: int, D: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A random truth: (pi [m], mu [m, D]). (A family whose components hold more than a mean, such
        as a packed covariance, has an optional ``mean_width(D)``: mu is then [m, mean_width(D)].)
        A family may declare optional ``truth_options`` (name -> :class:`emrun.truths.TruthOption`):
        configs may then set them (``truth:`` or grid axes), and those not at their default are
        passed as keywords, ``random_mixture(m, D, rng, **options)``."""

    def random_init(self, m: int, D: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A random initial point of one run: (pi [m], mu [m, D])."""

    def population(self, pi: np.ndarray, mu: np.ndarray) -> Any:
        """The exact distribution of one mixture as weighted points (if the family has one)."""

    def sample(self, pi: np.ndarray, mu: np.ndarray, n: int, rng: np.random.Generator) -> Any:
        """N i.i.d. draws of one mixture as weighted points."""

    def loss(self, data: Any, pi: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """Average negative log-likelihood per trial [T]; +inf where the data are impossible."""

    def responsibilities(self, data: Any, pi: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """Posterior probability of each component for each point [T, m, P]."""

    def em_step(self, data: Any, pi: np.ndarray, mu: np.ndarray, update: str) -> tuple:
        """(new pi [T, m], new mu [T, m, D], loss at the current point [T])."""

    def gradient(self, data: Any, pi: np.ndarray, mu: np.ndarray, boundary: str) -> tuple:
        """(d loss / d pi [T, m], d loss / d mu [T, m, D], loss [T])."""

    def project(self, pi: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The nearest allowed parameters after a gradient step (pi on the simplex, ...)."""

    def at_boundary(self, mu: np.ndarray) -> np.ndarray:
        """[T]: whether a trial's means sit where the boundary rule matters."""


def __getattr__(name: str):
    # The built-in families, imported only when the registry first needs them.
    if name == "BUILT_IN":
        from emrun.models import bernoulli, gaussian, gaussian_full

        return {"bernoulli": bernoulli, "gaussian": gaussian, "gaussian_full": gaussian_full}
    raise AttributeError(f"module 'emrun.models' has no attribute {name!r}")
