"""Init schemes: how the R runs of a batch choose their starting points.

A scheme is a function ``(ctx: InitContext) -> (pi [R, m], mu [R, m, D])``, registered by name
(``grid.init`` in a config). Its randomness comes from ``ctx.generators``, one generator per run
from the seed tree, so the same run of a truth starts from the same point whatever the
algorithm: EM and GD are compared on the same inits. A scheme that draws nothing (``given``) sets
``seeded = False``, and its runs are named ``given:R`` instead of by seed.

A scheme may declare options of its own: ``options = {"name": default, ...}`` as an attribute of
the function (or object). A config that uses the scheme may then set ``init_options.name`` (checked
against the default's type: a positive number, a positive integer, true/false, a name or a list),
and ``ctx.options`` holds the config's value or the default. emrun's own option names (epsilon,
given, at_data_mean) cannot be declared again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

BUILT_IN_OPTIONS = ("epsilon", "given", "at_data_mean")  # the init_options keys every config may set


class Truth(NamedTuple):
    """The batch's true mixture: ``pi`` [m] and ``mu`` [m, D] (copies: a scheme may not change the
    truth the rows record). ``ctx.family.sample(*ctx.truth, n, rng)`` draws n points from it."""

    pi: np.ndarray
    mu: np.ndarray


@dataclass(frozen=True)
class InitContext:
    """What an init scheme is given. ``truth`` is None where there is none (a real data set) and
    where a caller predates it."""

    family: Any  # emrun.models.Family
    m: int
    D: int
    runs: int
    data: Any  # the batch's data (weighted points, points [P, D], weights [P]), for schemes that look at it
    generators: list  # [R] numpy Generators, fresh for this call, one per run
    options: dict  # the config's init_options, over the scheme's declared defaults
    truth: Truth | None = None  # the batch's truth (pi [m], mu [m, D])


def declared_options(scheme: Any) -> dict[str, Any]:
    """The options an init scheme declares, with their defaults ({} for one that declares none)."""
    options = getattr(scheme, "options", None)
    return dict(options) if isinstance(options, dict) else {}


def options_for(scheme: Any, config_options: dict) -> dict:
    """``ctx.options`` for a scheme: its declared defaults, overridden by the config's init_options."""
    return {**declared_options(scheme), **config_options}


def uniform(ctx: InitContext) -> tuple[np.ndarray, np.ndarray]:
    """The family's random init (the paper's: drawn as the truths are)."""
    draws = [ctx.family.random_init(ctx.m, ctx.D, rng) for rng in ctx.generators]
    return np.array([d[0] for d in draws]), np.array([d[1] for d in draws])


def near_one_cluster(ctx: InitContext) -> tuple[np.ndarray, np.ndarray]:
    """A random init whose component 0 starts with weight epsilon (init_options.epsilon); the
    others keep their random proportions (the paper's Figure 2)."""
    pi, mu = uniform(ctx)
    epsilon = ctx.options["epsilon"]
    rest = pi[:, 1:]
    pi = np.concatenate([np.full((ctx.runs, 1), epsilon), rest * ((1 - epsilon) / rest.sum(axis=1, keepdims=True))],
                        axis=1)
    return pi, mu


def given(ctx: InitContext) -> tuple[np.ndarray, np.ndarray]:
    """The mixtures listed in init_options.given, one per run."""
    chosen = ctx.options["given"][:ctx.runs]
    return np.array([g["pi"] for g in chosen]), np.array([g["mu"] for g in chosen])


given.seeded = False


def kmeans(ctx: InitContext) -> tuple[np.ndarray, np.ndarray]:
    """One k-means fit (scikit-learn, one seeded start each) per run on the weighted data: pi = the
    clusters' weights, mu = their centres. Centres of a family with bounded means are kept 0.001
    inside the bounds (a Bernoulli centre at exactly 0 or 1 would make patterns impossible for that
    component from the start)."""
    from sklearn.cluster import KMeans

    data, bounds = ctx.data, ctx.family.mean_range
    pis, mus = [], []
    for rng in ctx.generators:
        fit = KMeans(n_clusters=ctx.m, n_init=1, random_state=int(rng.integers(2**31 - 1))).fit(
            data.points, sample_weight=data.weights)
        mass = np.bincount(fit.labels_, weights=data.weights, minlength=ctx.m) + 1e-6
        pis.append(mass / mass.sum())
        centres = fit.cluster_centers_
        mus.append(centres if bounds is None else np.clip(centres, bounds[0] + 1e-3, bounds[1] - 1e-3))
    return np.array(pis), np.array(mus)


BUILT_IN = {"uniform": uniform, "near_one_cluster": near_one_cluster, "given": given, "kmeans": kmeans}
