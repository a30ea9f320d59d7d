"""Mixtures of multivariate Bernoulli distributions, batched over trials.

Shapes: ``pi`` is [T, m] (T trials, m components), ``mu`` is [T, m, D]; data is a
:class:`PatternSet` of P binary patterns [P, D] with weights [P] that sum to 1 (the exact
population probabilities, or sample counts divided by N). The loss is the average negative
log-likelihood ``l = -sum_x w(x) log p(x)`` (UAI 2019, eq. 2.2).

Means at exactly 0 or 1 are handled exactly rather than by clipping to an epsilon: a factor
B(x_j | mu_j) that is 0 removes the pattern from that component, and the GD gradient (eq. 2.13)
takes the one-sided limit ``pi_c (-1)^(1-x_j) prod_{i != j} B(x_i|mu_ci) / p(x)`` for a pattern
whose only zero factor is feature j. A pattern with positive weight that every component gives
probability 0 makes the loss infinite; the step functions report that per trial instead of
producing NaN.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from functools import cached_property
from itertools import product

import numpy as np

from emrun.models.simplex import project_to_simplex

name = "bernoulli"
capabilities = frozenset({"em", "gradient"})
data_kinds = ("population", "samples", "dataset")
mean_range = (0.0, 1.0)
_MAX_FEATURES = {"population": 16, "samples": 64, "dataset": 64}  # patterns are 64-bit masks


def max_features(data_kind: str) -> int:
    """The population enumerates all 2^D patterns (65,536 at D = 16); samples are 64-bit masks."""
    return _MAX_FEATURES[data_kind]


def max_points(data: dict, D: int) -> int:
    """At most how many distinct patterns a batch's data has."""
    if data["kind"] == "population":
        return 2**D
    if data["kind"] == "dataset":
        return 1797  # scikit-learn's digits
    return min(data["n"], 2**D)


@dataclass(frozen=True)
class PatternSet:
    """A weighted set of distinct binary patterns: patterns [P, D] in {0, 1}, weights [P] > 0."""

    patterns: np.ndarray
    weights: np.ndarray

    @cached_property
    def both_values(self) -> np.ndarray:
        """[2D, P]: the patterns and their complements, so that one matrix product sums
        x_j log mu_j + (1 - x_j) log(1 - mu_j) over j."""
        return np.ascontiguousarray(np.concatenate([self.patterns, 1.0 - self.patterns], axis=1).T)

    @property
    def points(self) -> np.ndarray:
        """The patterns [P, D], under the name every family's data has."""
        return self.patterns

    @property
    def mean(self) -> np.ndarray:
        """E[x] under the weights: [D]."""
        return self.weights @ self.patterns

    @property
    def entropy(self) -> float:
        """-sum w log w: the lowest loss any model can reach on these weights."""
        return float(-np.sum(self.weights * np.log(self.weights)))


def all_patterns(D: int) -> np.ndarray:
    """The 2^D binary patterns as a float array [2^D, D]."""
    return np.array(list(product((0.0, 1.0), repeat=D)))


def log_pattern_probabilities(patterns: np.ndarray, pi: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """log p(x) of each pattern under the mixtures ``pi`` [T, m], ``mu`` [T, m, D]: [T, P]."""
    return _evaluate(PatternSet(patterns, np.ones(len(patterns))), pi, mu, weighted=False).log_p


def population_patterns(pi: np.ndarray, mu: np.ndarray) -> PatternSet:
    """Every pattern of {0,1}^D with its exact probability under one mixture (pi [m], mu [m, D]).

    Patterns of probability exactly 0 (possible when a mean is 0 or 1) are left out, so every
    weight is positive.

    The weights decide every row judged on the population, so they are computed with operations
    IEEE 754 rounds exactly (products, sums in a fixed order, one correctly rounded total) and no
    exp or log, whose last bits follow the instruction set numpy or the C library picks for the CPU.
    Each component's table is built feature by feature: the table over D features is the table
    over D - 1 times (1 - mu_D) or mu_D, in the pattern order of ``all_patterns``.
    """
    m, n_features = mu.shape
    table = np.ones((m, 1))
    has_zero_factor = np.zeros((m, 1), dtype=bool)
    for j in range(n_features):
        column = mu[:, j:j + 1]
        table = np.stack([table * (1.0 - column), table * column], axis=2).reshape(m, -1)
        has_zero_factor = np.stack([has_zero_factor | (column == 1.0), has_zero_factor | (column == 0.0)],
                                   axis=2).reshape(m, -1)
    probability = pi[0] * table[0]
    for c in range(1, m):
        probability = probability + pi[c] * table[c]
    keep = ((pi[:, None] > 0.0) & ~has_zero_factor).any(axis=0)
    if not (probability[keep] > 0.0).all():
        raise ValueError(f"a pattern probability of this {m}-component mixture in D = {n_features} underflows "
                         "double precision; its population cannot be enumerated exactly")
    weights = probability[keep]
    return PatternSet(all_patterns(n_features)[keep], weights / math.fsum(weights))


def sample_patterns(pi: np.ndarray, mu: np.ndarray, n: int, rng: np.random.Generator) -> PatternSet:
    """N i.i.d. samples of one mixture, aggregated to distinct patterns weighted by count / N."""
    components = rng.choice(len(pi), size=n, p=pi)
    samples = (rng.uniform(size=(n, mu.shape[-1])) < mu[components]).astype(np.float64)
    patterns, counts = np.unique(samples, axis=0, return_counts=True)
    return PatternSet(patterns, counts / n)


def random_mixture(m: int, D: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The paper's random mixture: pi = u / sum(u), u ~ U(0,1)^m; mu ~ U(0,1)^(m x D)."""
    u = rng.uniform(size=m)
    return u / u.sum(), rng.uniform(size=(m, D))


def at_boundary(mu: np.ndarray) -> np.ndarray:
    """[T]: whether any mean of a trial sits at exactly 0 or 1 (where GD's boundary rule matters)."""
    return ((mu == 0.0) | (mu == 1.0)).any(axis=(1, 2))


# The names every family has (emrun.models.Family).
population = population_patterns
sample = sample_patterns
random_init = random_mixture  # the paper draws inits the same way as truths


@dataclass(frozen=True)
class _Evaluation:
    """Per-trial quantities shared by the loss, the EM step and the gradient.

    ``h`` [T, m, P] is w(x) f(x|mu_c) / p(x) where f is computed without its zero factors, set to
    0 where a component has two or more zero factors; ``one_zero`` [T, m, P] marks the patterns
    whose f has exactly one zero factor (None when no mean of the batch sits on the boundary).
    """

    log_p: np.ndarray  # [T, P]
    h: np.ndarray  # [T, m, P]
    one_zero: np.ndarray | None  # [T, m, P] bool
    at_zero: np.ndarray | None  # [T, m, D] bool: mu == 0
    at_one: np.ndarray | None  # [T, m, D] bool: mu == 1


def _products(factors: np.ndarray, data: PatternSet) -> np.ndarray:
    """sum_j over [T, k, 2D] factors for every pattern: [T, k, P], as one 2-D matrix product
    (a stacked 3-D matmul would make one small BLAS call per trial)."""
    n_trials, k, width = factors.shape
    return (factors.reshape(n_trials * k, width) @ data.both_values).reshape(n_trials, k, -1)


def _evaluate(data: PatternSet, pi: np.ndarray, mu: np.ndarray, weighted: bool = True) -> _Evaluation:
    # Log factors with the zero factors (log 0) replaced by 0 and counted separately, so that a
    # single matrix product gives both log f without them and the number of zero factors.
    at_zero, at_one = mu == 0.0, mu == 1.0
    boundary = bool(at_zero.any() or at_one.any())
    n_features = mu.shape[2]
    log_factors = np.empty(mu.shape[:2] + (2 * n_features,))  # [T, m, 2D]: log mu, log(1 - mu)
    with np.errstate(divide="ignore"):
        np.log(mu, out=log_factors[:, :, :n_features])
        np.log(1.0 - mu, out=log_factors[:, :, n_features:])
    if boundary:
        zero_factor = np.concatenate([at_zero, at_one], axis=2)
        log_factors[zero_factor] = 0.0
        m = mu.shape[1]
        stacked = _products(np.concatenate([log_factors, zero_factor.astype(float)], axis=1), data)
        log_f, n_zero = stacked[:, :m], stacked[:, m:]
        one_zero = n_zero == 1.0
        usable = n_zero == 0.0
    else:
        log_f = _products(log_factors, data)  # [T, m, P]
        one_zero = None
        usable = None

    # Scale every f_c(x) by the largest term max_c pi_c f_c(x), so that one exp gives both p(x)
    # and f_c(x) / p(x) without underflow. f_c / max_c pi_c f_c <= 1 / pi_c, so the cap at e^700
    # only acts where p(x) < 1e-300, and keeps an astronomically large gradient finite.
    log_f_mixed = log_f if usable is None else np.where(usable, log_f, -np.inf)
    with np.errstate(divide="ignore"):
        top = (np.log(pi)[:, :, None] + log_f_mixed).max(axis=1)  # [T, P]
    finite = np.isfinite(top)  # p(x) > 0
    all_finite = bool(finite.all())
    if not all_finite:
        top = np.where(finite, top, 0.0)
    scaled = np.exp(np.minimum(log_f - top[:, None, :], 700.0))  # f_c(x) / e^top
    if usable is not None:
        scaled = np.where(usable | one_zero, scaled, 0.0)
        mixture = (pi[:, :, None] * np.where(usable, scaled, 0.0)).sum(axis=1)
    else:
        mixture = (pi[:, :, None] * scaled).sum(axis=1)  # p(x) / e^top, >= 1 where p(x) > 0
    if not all_finite:
        mixture = np.where(finite, mixture, 1.0)
    log_p = np.where(finite, top + np.log(mixture), -np.inf)

    # Where p(x) = 0 the trial's loss is infinite; h is meaningless there and is set to 0 so that
    # no NaN spreads. The caller sees the infinite loss and stops that trial.
    scale = data.weights / mixture if weighted else 1.0 / mixture
    h = scaled * scale[:, None, :]
    if not all_finite:
        h = np.where(finite[:, None, :], h, 0.0)
    return _Evaluation(log_p, h, one_zero, at_zero if boundary else None, at_one if boundary else None)


def _loss(data: PatternSet, log_p: np.ndarray) -> np.ndarray:
    finite = np.isfinite(log_p).all(axis=1)
    loss = -(np.where(np.isfinite(log_p), log_p, 0.0) @ data.weights)
    return np.where(finite, loss, np.inf)


def loss(data: PatternSet, pi: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Average negative log-likelihood per trial [T]; +inf where some pattern is impossible."""
    return _loss(data, _evaluate(data, pi, mu, weighted=False).log_p)


def responsibilities(data: PatternSet, pi: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Posterior probability of each component for each pattern, pi_c f_c(x) / p(x): [T, m, P]
    (0 for a pattern the component cannot produce; 0 everywhere for an impossible pattern)."""
    ev = _evaluate(data, pi, mu, weighted=False)
    h = ev.h if ev.one_zero is None else np.where(ev.one_zero, 0.0, ev.h)
    return pi[:, :, None] * h


def _pattern_sums(h: np.ndarray, data: PatternSet) -> np.ndarray:
    """sum_x h(x) x for h [T, m, P]: [T, m, D], as one 2-D matrix product."""
    n_trials, m, n_patterns = h.shape
    return (h.reshape(n_trials * m, n_patterns) @ data.patterns).reshape(n_trials, m, -1)


def _responsibility_sums(ev: _Evaluation, data: PatternSet):
    """Z_c = E[gamma_c] [T, m] and E[gamma_c x] [T, m, D] over the patterns with no zero factor."""
    h_usable = ev.h if ev.one_zero is None else np.where(ev.one_zero, 0.0, ev.h)
    return h_usable.sum(axis=2), _pattern_sums(h_usable, data)


# eq. 2.7; the authors' code (cluster by cluster, pi from the partial points, not renormalised); and
# the same means with pi from the new means (a conditional maximisation, emrun's earlier reading).
EM_UPDATES = ("simultaneous", "authors", "ecm")
em_updates = EM_UPDATES
# 'in_place' named two rules in turn; a config must say which (one config hash, one rule).
retired_variants = {"in_place": "choose 'authors' (the authors' code: pi from each component's partial point, "
                                "not renormalised) or 'ecm' (the means in place, then pi at the new means)"}
UNNORMALISED_UPDATES = ("authors",)  # rules that leave sum(pi) != 1: losses are taken with pi renormalised
unnormalised_updates = UNNORMALISED_UPDATES


def em_step(data: PatternSet, pi: np.ndarray, mu: np.ndarray, update: str = "simultaneous"):
    """One EM iteration of every trial.

    Returns (new pi [T, m], new mu [T, m, D], loss at the current parameters [T]).
    ``simultaneous`` is eq. 2.7: every parameter from the responsibilities at the current point.
    ``authors`` is the authors' code (docs/protocols.md, section 1.3): with pi held at its value
    from the start of the iteration, for c = 0, 1, ..., m-1 in order, the responsibilities of
    component c at the current point (means 0..c-1 already updated, c.. still old) give
    N_c = sum w r_c and mu_c = sum w r_c x / N_c; then pi = N / n, each N_c from its own partial
    point, not renormalised. Its loss is taken with pi renormalised (pi / sum(pi)).
    ``ecm`` updates the means the same way, then pi from the responsibilities at the new means: a
    sequence of conditional maximisations (ECM) whose likelihood cannot decrease, with pi on the
    simplex. A component with Z_c = 0 keeps its means (its weight becomes 0).
    """
    if update not in EM_UPDATES:
        raise ValueError(f"unknown EM update {update!r} (one of {', '.join(EM_UPDATES)})")
    ev = _evaluate(data, pi, mu)
    z, zx = _responsibility_sums(ev, data)
    current_loss = _loss(data, ev.log_p)
    if update == "simultaneous":
        return pi * z, _new_means(z, zx, mu), current_loss
    new_mu, new_pi = mu.copy(), np.empty_like(pi)
    for c in range(mu.shape[1]):
        if c > 0:
            z, zx = _responsibility_sums(_evaluate(data, pi, new_mu), data)
        new_pi[:, c] = pi[:, c] * z[:, c]  # N_c / n at the partial point (the weights sum to 1)
        new_mu[:, c] = _new_means(z, zx, new_mu)[:, c]
    if update == "authors":
        with np.errstate(divide="ignore"):
            return new_pi, new_mu, current_loss + np.log(pi.sum(axis=1))  # the loss of pi / sum(pi)
    z, _ = _responsibility_sums(_evaluate(data, pi, new_mu), data)
    return pi * z, new_mu, current_loss


def _new_means(z: np.ndarray, zx: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """E[gamma_c x] / Z_c, clipped to [0, 1]; a component with Z_c = 0 keeps ``mu``."""
    z_safe = np.where(z > 0, z, 1.0)[:, :, None]
    return np.clip(np.where(z[:, :, None] > 0, zx / z_safe, mu), 0.0, 1.0)


# The kernel multiplies D factors directly (logs only when p(x) itself is tiny); beyond this D a
# component's density can underflow to 0 while p(x) is fine, which the log-space numpy engine
# keeps (at D = 64 that changed an EM run's outcome), so larger D runs in the numpy engine.
FUSED_MAX_D = 32

BOUNDARY_RULES = ("exact", "as_published")  # GD's term for a mean at exactly 0 or 1
boundary_rules = BOUNDARY_RULES


def _check_boundary_rule(boundary: str) -> None:
    if boundary not in BOUNDARY_RULES:
        raise ValueError(f"unknown boundary rule {boundary!r} (one of {', '.join(BOUNDARY_RULES)})")


def gradient(data: PatternSet, pi: np.ndarray, mu: np.ndarray, boundary: str = "exact"):
    """Gradient of the loss: (d l / d pi [T, m], d l / d mu [T, m, D], loss [T]).

    d l / d pi_c = -Z_c (eq. 2.10); d l / d mu_cj from eq. 2.13, written as
    -pi_c (E[gamma_c x_j] / mu_cj - E[gamma_c (1 - x_j)] / (1 - mu_cj)) away from the boundary,
    plus, for each pattern whose only zero factor (a mean at exactly 0 or 1) is feature j0:
    - ``exact``: the one-sided limit -pi_c w(x) (-1)^(1-x_j0) prod_{i != j0} B(x_i|mu_ci) / p(x),
      added to d l / d mu_{c,j0};
    - ``as_published``: what the authors' code computes there (docs/protocols.md, section 1.3):
      -pi_c w(x) (-1)^(1-x_{D-1}) prod_{i < j0} B(x_i|mu_ci) / p(x), added to d l / d mu_{c,D-1}.
    Trials with infinite loss get a zero gradient.
    """
    _check_boundary_rule(boundary)
    ev = _evaluate(data, pi, mu)
    z, zx = _responsibility_sums(ev, data)
    # E[gamma_c x_j] carries the factor mu_cj and E[gamma_c (1-x_j)] the factor 1-mu_cj, so the
    # divisions below are well conditioned; where mu_cj = 0 (resp. 1) that sum is exactly 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = np.where(mu > 0, zx / mu, 0.0) - np.where(mu < 1, (z[:, :, None] - zx) / (1.0 - mu), 0.0)
    if ev.one_zero is not None and boundary == "exact":
        h_one = np.where(ev.one_zero, ev.h, 0.0)
        ones = _pattern_sums(h_one, data)  # patterns with x_j = 1
        zeros = h_one.sum(axis=2)[:, :, None] - ones  # patterns with x_j = 0
        inner += np.where(ev.at_zero, ones, 0.0) - np.where(ev.at_one, zeros, 0.0)
    elif ev.one_zero is not None:
        inner[:, :, -1] += _published_boundary_terms(data, mu, ev)
    # A component of weight 0 has no gradient in its means (the factor pi_c), even where the sums
    # for it are huge (its density far above p(x)): 0 x inf must not make a NaN.
    return -z, np.where(pi[:, :, None] > 0, -pi[:, :, None] * inner, 0.0), _loss(data, ev.log_p)


def _published_boundary_terms(data: PatternSet, mu: np.ndarray, ev: _Evaluation) -> np.ndarray:
    """[T, m]: sum over single-zero patterns of w (-1)^(1-x_{D-1}) prod_{i<j0} B_i / p(x)."""
    x = data.patterns[None, None]  # [1, 1, P, D]
    zero = x * ev.at_zero[:, :, None, :] + (1 - x) * ev.at_one[:, :, None, :]  # [T, m, P, D]
    first_zero = zero.argmax(axis=3)[..., None]
    with np.errstate(divide="ignore"):
        log_factor = np.where(x == 1, np.log(mu)[:, :, None, :], np.log(1 - mu)[:, :, None, :])
    log_factor = np.where(zero > 0, 0.0, log_factor)
    before = np.take_along_axis(np.cumsum(log_factor, axis=3) - log_factor, first_zero, axis=3)[..., 0]
    finite = np.isfinite(ev.log_p)  # [T, P]
    log_p = np.where(finite, ev.log_p, 0.0)[:, None, :]
    term = np.where(ev.one_zero & finite[:, None, :], data.weights * np.exp(np.minimum(before - log_p, 700.0)), 0.0)
    return term @ (2.0 * data.patterns[:, -1] - 1.0)


def project(pi: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """After a gradient step: pi onto the simplex, the means clipped to [0, 1] (eq. 2.17)."""
    return project_to_simplex(pi), np.clip(mu, 0.0, 1.0)


class CompiledLoop:
    """The accelerator of :mod:`bernoulli_fused`: the whole EM or GD loop of every trial in one
    compiled kernel (same stopping rule and statuses as the numpy loop; tests hold them to 1e-10).
    It implements EM (both updates) and GD (both boundary rules) for D <= FUSED_MAX_D, without traces."""

    algorithms = ("em", "gd")
    max_features = FUSED_MAX_D
    _ready = False  # compiled (or loaded from the cache) in this process

    def supports(self, problem, algorithm: str, record: tuple) -> bool:
        return (algorithm in self.algorithms and not record and problem.family.name == name
                and problem.data.patterns.shape[1] <= self.max_features)

    def bytes_per_trial(self, m: int, D: int) -> int:
        """The kernel's per-trial lane state (with the products of leading factors, (D + 1) m words);
        what it keeps per pattern, about P (3 D + 8 ceil(m / 8) + 5) words, is shared by the batch."""
        return 8 * (6 * m * D + 6 * m + 8)

    def prepare(self, say=None) -> None:
        """Compile the kernel in this process (once), into the on-disk cache that other processes
        load it from (emrun.env.kernel_cache: outside the source tree). Says so first when nothing
        is cached yet: compiling takes about a minute on a loaded 2-core machine."""
        if self._ready:
            return
        from emrun.models import bernoulli_fused as kernel

        if say is not None:  # the sweep process, before its workers start: it only compiles
            if kernel.cached():
                return  # the workers load it from the cache, in parallel
            say("compiling the Bernoulli kernel (first run only; about a minute)")
        from emrun.algorithms import Problem

        data = population_patterns(np.array([0.5, 0.5]), np.array([[0.2, 0.8], [0.7, 0.3]]))
        problem = Problem(sys.modules[__name__], data, "simultaneous", "exact")
        # Not deferred: compiling is Python, which a signal interrupts as it should.
        self._run(problem, np.full((1, 2), 0.5), np.full((1, 2, 2), 0.5), "em", {}, 1, 1e-5, defer=False)
        self._ready = True

    def run(self, problem, pi: np.ndarray, mu: np.ndarray, algorithm: str, params: dict, max_iter: int, tol: float,
            chunk: int | None = None):
        """Returns (pi [T, m], mu [T, m, D], iterations [T], status names [T], touched the boundary [T],
        loss increases [T] (counted for the authors' EM only)). The kernel runs ``chunk`` iterations
        per call (emrun.models.bernoulli_chunks: same results, and a signal stops it within a call);
        the first run in a process compiles or loads it, then runs with signals deferred."""
        self.prepare()
        return self._run(problem, pi, mu, algorithm, params, max_iter, tol, chunk)

    def _run(self, problem, pi: np.ndarray, mu: np.ndarray, algorithm: str, params: dict, max_iter: int, tol: float,
             chunk: int | None = None, defer: bool = True):
        from emrun.batch import CAPPED, CONVERGED, DIVERGED
        from emrun.models import bernoulli_fused as kernel
        from emrun.models.bernoulli_chunks import run_in_chunks

        if algorithm not in self.algorithms:
            raise ValueError(f"the compiled Bernoulli loop runs {' and '.join(self.algorithms)}, not {algorithm!r}")
        _check_boundary_rule(problem.boundary)
        if problem.em_update not in EM_UPDATES:
            raise ValueError(f"unknown EM update {problem.em_update!r} (one of {', '.join(EM_UPDATES)})")
        data = problem.data
        bits = np.ascontiguousarray(data.patterns, dtype=np.uint8)
        # Each pattern as a bit mask (feature j is bit j); up to 64 features, held as int64.
        codes = (bits.astype(np.uint64) << np.arange(bits.shape[1], dtype=np.uint64)).sum(axis=1, dtype=np.uint64)
        codes = codes.view(np.int64)
        step = float(params.get("step") or 0.0)
        rule = {"simultaneous": kernel.SIMULTANEOUS, "ecm": kernel.ECM, "authors": kernel.AUTHORS}[problem.em_update]
        final_pi, final_mu, iterations, status, touched, increases = run_in_chunks(
            bits, codes, np.ascontiguousarray(data.patterns), data.weights, np.ascontiguousarray(pi, dtype=float),
            np.ascontiguousarray(mu, dtype=float), algorithm == "gd", step, int(max_iter), float(tol),
            problem.boundary == "as_published", rule, chunk=chunk, defer=defer)
        names = {kernel.CAPPED: CAPPED, kernel.CONVERGED: CONVERGED, kernel.DIVERGED: DIVERGED}
        statuses = np.array([names[code] for code in status], dtype=object)
        return final_pi, final_mu, iterations, statuses, touched, increases


KERNEL = CompiledLoop()
ACCELERATORS = {"bernoulli/em": KERNEL, "bernoulli/gd": KERNEL}
