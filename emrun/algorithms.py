"""Algorithms and the one batched loop that runs any of them on any model family.

An algorithm (:class:`Algorithm`) says which capability it needs from a family, its named
hyperparameters with defaults (each can be a grid axis), its default stopping rule, and one
batched update of every trial. EM and projected GD are the two built in; a plug-in adds more.

Every trial stops on its own: after each iteration the trials whose parameter change is below the
tolerance (both ||delta pi||_2 and ||delta mu||_F, the paper's rule) leave the batch with the
parameters of that iteration. Trials whose loss becomes infinite (projected GD can clip a mean
onto 0 or 1 so that a pattern of the data becomes impossible) leave the batch as ``diverged``
with the last parameters they had. The rest are ``capped`` at ``max_iter``, or ``cycling``: projected
GD can end in a cycle (a weight alternating between 0 and a small value, say), where the iterate at
the cap, and so whether the run ends at a k-cluster point, depends on the parity of the cap. A
capped trial of a stateless algorithm is continued for CYCLE_WINDOW iterations; if every one of
them still moves by the tolerance or more, while each iterate returns to within CYCLE_RETURN times
the largest step of the one p iterations before (p from 2 to CYCLE_PERIODS; distances are the
Euclidean norm over pi and mu together), the trial is ``cycling`` (the cycle may drift slowly), and
its final parameters are those of the last cycle's iterate with the smallest weight: the same
decision at cap N and N + 1.

A compiled loop for some (family, algorithm) pairs is an accelerator (:class:`Accelerator`,
registered under "family/algorithm"); it must give the same results (tests hold the Bernoulli
kernel to 1e-10). Anything without one runs in the numpy loop below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from emrun import registry
from emrun.batch import CAPPED, CONVERGED, CYCLING, DIVERGED, FAILED
from emrun.registry import ACCELERATORS, ALGORITHMS, FAMILIES

RECORDABLE = ("pi", "mu", "loss")
CYCLE_PERIODS = 8  # the longest cycle looked for at the cap
CYCLE_WINDOW = 3 * CYCLE_PERIODS  # iterations past the cap in which a cycle must repeat
CYCLE_RETURN = 0.1  # a cycle returns within a tenth of its largest step (a slow drift is allowed)


@dataclass(frozen=True)
class Problem:
    """A family with its data and the variants a config chose (EM update rule, gradient boundary
    rule): what an algorithm's update sees. Shapes: pi [T, m], mu [T, m, D]."""

    family: Any
    data: Any
    em_update: str
    boundary: str

    @property
    def renormalises(self) -> bool:
        """Whether the chosen EM rule leaves sum(pi) != 1 (the authors' update), so that losses are
        taken at pi / sum(pi)."""
        return self.em_update in getattr(self.family, "unnormalised_updates", ())

    def loss(self, pi: np.ndarray, mu: np.ndarray) -> np.ndarray:
        if self.renormalises:
            pi = pi / pi.sum(axis=1, keepdims=True)
        return self.family.loss(self.data, pi, mu)

    def em_step(self, pi: np.ndarray, mu: np.ndarray):
        """(new pi, new mu, loss at the current point [T])."""
        return self.family.em_step(self.data, pi, mu, self.em_update)

    def gradient(self, pi: np.ndarray, mu: np.ndarray):
        """(d loss / d pi [T, m], d loss / d mu [T, m, D], loss [T])."""
        return self.family.gradient(self.data, pi, mu, self.boundary)

    def project(self, pi: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.family.project(pi, mu)


class Algorithm(Protocol):
    name: str
    requires: str  # the family capability it uses: "em" or "gradient"
    hyperparameters: dict[str, float]  # name -> default; a step size is always called "step"
    stopping: dict[str, float]  # {"max_iter": ..., "tol": ...}: its default stopping rule

    def start(self, problem: Problem, pi: np.ndarray, mu: np.ndarray, params: dict) -> dict[str, np.ndarray]:
        """Per-trial state beyond (pi, mu), arrays with the trial as first axis ({} if none)."""

    def update(self, problem: Problem, pi: np.ndarray, mu: np.ndarray, state: dict, params: dict) -> tuple:
        """One iteration of every trial: (new pi, new mu, loss at the current point [T], new state)."""


class EM:
    """EM (eq. 2.7, or the family's other update rule the config chose)."""

    name = "em"
    requires = "em"
    hyperparameters: dict[str, float] = {}
    stopping = {"max_iter": 20000, "tol": 1.0e-5}  # the paper's

    def start(self, problem, pi, mu, params):
        return {}

    def update(self, problem, pi, mu, state, params):
        new_pi, new_mu, loss = problem.em_step(pi, mu)
        return new_pi, new_mu, loss, state


class GD:
    """Projected gradient descent (eq. 2.17): a step along -gradient, then the family's projection."""

    name = "gd"
    requires = "gradient"
    hyperparameters = {"step": 0.02}
    stopping = {"max_iter": 10000, "tol": 1.0e-7}  # the paper's

    def start(self, problem, pi, mu, params):
        return {}

    def update(self, problem, pi, mu, state, params):
        grad_pi, grad_mu, loss = problem.gradient(pi, mu)
        step = params["step"]
        new_pi, new_mu = problem.project(pi - step * grad_pi, mu - step * grad_mu)
        return new_pi, new_mu, loss, state


BUILT_IN = {"em": EM(), "gd": GD()}


class Accelerator(Protocol):
    max_features: int  # the largest D it runs (beyond it, the numpy loop)

    def supports(self, problem: Problem, algorithm: str, record: tuple) -> bool:
        """Whether it can run this problem (it may decline some sizes or variants)."""

    def bytes_per_trial(self, m: int, D: int) -> int:
        """Memory one trial needs beside the batch's shared data."""

    def run(self, problem: Problem, pi: np.ndarray, mu: np.ndarray, algorithm: str, params: dict, max_iter: int,
            tol: float) -> tuple:
        """(pi [T, m], mu [T, m, D], iterations [T], status names [T], touched the boundary [T])."""


def accelerator_for(problem: Problem, algorithm: str, record: tuple = ()) -> Accelerator | None:
    """The registered accelerator that runs this (family, algorithm) and problem, if any."""
    key = f"{problem.family.name}/{algorithm}"
    if key not in ACCELERATORS:
        return None
    accelerator = ACCELERATORS.get(key)
    return accelerator if accelerator.supports(problem, algorithm, record) else None


def loop_bytes_per_trial(m: int, n_points: int) -> int:
    """Memory of one trial in the numpy loop: about twelve [m, P] float64 arrays."""
    return 96 * m * n_points


@dataclass(frozen=True)
class BatchOutcome:
    """Final state of each trial of a batch: pi [T, m], mu [T, m, D], iterations, status, loss [T],
    and whether any iterate had a mean where the family's boundary rule matters [T].

    ``trace`` holds the recorded iterates, when asked for: a list of (iteration, trial ids [k],
    {quantity: values [k, ...]}), each trial from iteration 0 every ``record_every`` iterations and
    at the iteration it stopped. ``loss_increases`` [T] counts the iterations at whose start the
    loss was above that at the start of the one before (by more than 1e-12 relative): never for a
    monotone rule (EM); the authors' EM is not one."""

    pi: np.ndarray
    mu: np.ndarray
    iterations: np.ndarray
    status: np.ndarray
    loss: np.ndarray
    touched_boundary: np.ndarray
    trace: list = field(default_factory=list)
    loss_increases: np.ndarray | None = None
    errors: dict = field(default_factory=dict)  # trial -> why it failed (status FAILED): a plug-in's bad output


class PluginOutputError(ValueError):
    """An algorithm's update returned arrays of the wrong shape for its batch: every trial of the
    computation is failed (the fault is the code's, not one trial's), naming where it came from."""


def _check_update(algorithm, problem: Problem, p: np.ndarray, u: np.ndarray, result) -> tuple:
    """The update's (new pi, new mu, loss, state), checked against the batch it was given: an
    update returning arrays for fewer trials would otherwise be broadcast into every trial's row."""
    def refuse(what: str) -> None:
        raise PluginOutputError(f"algorithm '{algorithm.name}' ({ALGORITHMS.origin(algorithm.name)}): its update() returned "
                                f"{what} (a batch of {p.shape[0]} trials, m = {p.shape[1]}, D = {u.shape[2]})")

    if not isinstance(result, tuple) or len(result) != 4:
        refuse(f"{type(result).__name__} {'of length ' + str(len(result)) if isinstance(result, tuple) else ''}, "
               "not (pi, mu, loss, state)")
    new_p, new_u, loss, state = (np.asarray(result[0]), np.asarray(result[1]), np.asarray(result[2]), result[3])
    for name, value, shape in (("pi", new_p, p.shape), ("mu", new_u, u.shape), ("loss", loss, (p.shape[0],))):
        if value.shape != shape:
            refuse(f"{name} of shape {value.shape}, expected {shape}")
    if not isinstance(state, dict):
        refuse(f"a state of type {type(state).__name__}, not a dict")
    for key, value in state.items():
        if np.shape(value)[:1] != (p.shape[0],):
            refuse(f"state['{key}'] of shape {np.shape(value)}, expected the trials first ({p.shape[0]}, ...)")
    return new_p, new_u, loss, state


def check_pair(family: Any, algorithm: Any) -> None:
    """Refuse an algorithm that needs a capability the family does not have."""
    if algorithm.requires not in family.capabilities:
        raise ValueError(f"algorithm '{algorithm.name}' needs a family with '{algorithm.requires}' steps; model "
                         f"'{family.name}' offers {', '.join(sorted(family.capabilities)) or 'none'}")


def run_batch(
    family: Any,
    data,
    pi: np.ndarray,
    mu: np.ndarray,
    algorithm: Any,
    max_iter: int,
    tol: float,
    step: float | None = None,
    *,
    params: dict | None = None,
    fused: bool = True,
    gd_boundary: str | None = None,
    em_update: str | None = None,
    record: tuple[str, ...] = (),
    record_every: int = 1,
) -> BatchOutcome:
    """Run ``algorithm`` (a name or an :class:`Algorithm`) from pi [T, m], mu [T, m, D].

    ``family`` is a name or a :class:`emrun.models.Family`. ``params`` are the algorithm's
    hyperparameters (``step`` may also be given alone); the others take their defaults.
    ``gd_boundary`` and ``em_update`` choose the family's variants (its defaults if None).
    ``record`` names the quantities to trace (of RECORDABLE); tracing takes the numpy loop, since an
    accelerator keeps no history. ``fused=False`` never uses an accelerator.
    """
    family = FAMILIES.get(family) if isinstance(family, str) else family
    algorithm = ALGORITHMS.get(algorithm) if isinstance(algorithm, str) else algorithm
    check_pair(family, algorithm)
    params = {**algorithm.hyperparameters, **(params or {}), **({"step": step} if step is not None else {})}
    if "step" in algorithm.hyperparameters and not params["step"] > 0:
        raise ValueError(f"algorithm '{algorithm.name}' needs a positive step size")
    if unknown := set(record) - set(RECORDABLE):
        raise ValueError(f"cannot record {sorted(unknown)} (one of {', '.join(RECORDABLE)})")
    problem = Problem(family, data, em_update or family.em_updates[0], gd_boundary or family.boundary_rules[0])
    accelerator = accelerator_for(problem, algorithm.name, tuple(record)) if fused else None
    if accelerator is not None:
        final_pi, final_mu, iterations, status, touched, *increases = accelerator.run(
            problem, pi, mu, algorithm.name, params, max_iter, tol)
        outcome = _finish(problem, final_pi, final_mu, iterations, status, touched, None, *increases)
    else:
        outcome = _numpy_loop(problem, algorithm, params, pi, mu, max_iter, tol, tuple(record), record_every)
    return _settle_cycles(problem, algorithm, params, outcome, tol)


def _settle_cycles(problem: Problem, algorithm, params: dict, outcome: BatchOutcome, tol: float) -> BatchOutcome:
    """Capped trials that cycle (see the module's docstring) become ``cycling``, with the parameters
    and loss of the cycle's iterate whose smallest weight is smallest. Stateful algorithms (momentum,
    say) are left alone: a continuation from (pi, mu) alone would not be their dynamics."""
    capped = np.flatnonzero(outcome.status == CAPPED)
    if capped.size == 0 or tol <= 0 or algorithm.start(problem, outcome.pi[capped], outcome.mu[capped], params):
        return outcome
    continued = _numpy_loop(problem, algorithm, params, outcome.pi[capped], outcome.mu[capped], CYCLE_WINDOW, 0.0,
                            ("pi", "mu"), 1)
    # Iterates 0..CYCLE_WINDOW of the trials that stayed finite throughout: pi [W + 1, k, m], mu [W + 1, k, m, D].
    kept = np.flatnonzero(continued.status == CAPPED)
    if kept.size == 0:
        return outcome
    pis = np.stack([values["pi"][np.isin(ids, kept)] for _, ids, values in continued.trace])
    mus = np.stack([values["mu"][np.isin(ids, kept)] for _, ids, values in continued.trace])

    def distance(lag: int) -> np.ndarray:
        """||theta_t - theta_{t - lag}|| over the window, theta = (pi, mu) [W + 1 - lag, k]."""
        return np.sqrt(np.sum((pis[lag:] - pis[:-lag]) ** 2, axis=2) + np.sum((mus[lag:] - mus[:-lag]) ** 2, axis=(2, 3)))

    step = distance(1)
    moving = (step >= tol).all(axis=0)
    period = np.zeros(kept.size, dtype=int)
    for lag in range(CYCLE_PERIODS, 1, -1):  # the shortest period that repeats wins
        period[moving & (distance(lag).max(axis=0) <= CYCLE_RETURN * step.max(axis=0))] = lag
    cycling = np.flatnonzero(period > 0)
    if cycling.size == 0:
        return outcome
    pi, mu, status, loss = outcome.pi.copy(), outcome.mu.copy(), outcome.status.copy(), outcome.loss.copy()
    for k in cycling:
        last = np.arange(CYCLE_WINDOW + 1 - period[k], CYCLE_WINDOW + 1)  # one full cycle
        chosen = last[np.argmin(pis[last, k].min(axis=1))]
        trial = capped[kept[k]]
        pi[trial], mu[trial], status[trial] = pis[chosen, k], mus[chosen, k], CYCLING
    trials = capped[kept[cycling]]
    loss[trials] = problem.loss(pi[trials], mu[trials])
    return BatchOutcome(pi, mu, outcome.iterations, status, loss, outcome.touched_boundary, outcome.trace,
                        outcome.loss_increases, outcome.errors)


def _numpy_loop(problem: Problem, algorithm, params: dict, pi: np.ndarray, mu: np.ndarray, max_iter: int, tol: float,
                record: tuple[str, ...], record_every: int) -> BatchOutcome:
    # An update that leaves the family's domain gives NaN or infinite losses: those trials become
    # failed or diverged rows (emrun.experiments), so numpy's warnings would only be noise.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return _iterate(problem, algorithm, params, pi, mu, max_iter, tol, record, record_every)


def _iterate(problem: Problem, algorithm, params: dict, pi: np.ndarray, mu: np.ndarray, max_iter: int, tol: float,
             record: tuple[str, ...], record_every: int) -> BatchOutcome:
    def snapshot(iteration, ids, p, u):
        values = {"pi": p, "mu": u, "loss": problem.loss(p, u) if "loss" in record else None}
        trace.append((iteration, ids.copy(), {name: values[name].copy() for name in record}))

    n_trials = pi.shape[0]
    final_pi, final_mu = pi.copy(), mu.copy()
    iterations = np.full(n_trials, max_iter)
    status = np.full(n_trials, CAPPED, dtype=object)
    active = np.arange(n_trials)
    touched = np.zeros(n_trials, dtype=bool)
    increases, previous = np.zeros(n_trials, dtype=np.int64), np.full(n_trials, np.inf)
    trace: list = []
    errors: dict[int, str] = {}
    p, u = pi.copy(), mu.copy()
    state = algorithm.start(problem, p, u, params)
    if record:
        snapshot(0, active, p, u)
    for iteration in range(1, max_iter + 1):
        touched[active] |= problem.family.at_boundary(u)
        new_p, new_u, current_loss, new_state = _check_update(algorithm, problem, p, u,
                                                               algorithm.update(problem, p, u, state, params))
        finite = np.isfinite(current_loss)
        increases[active] += finite & (current_loss > previous + 1e-12 * np.abs(previous))
        previous = current_loss
        change_pi = np.sqrt(np.sum((new_p - p) ** 2, axis=1))
        change_mu = np.sqrt(np.sum((new_u - u) ** 2, axis=(1, 2)))
        converged = finite & (change_pi < tol) & (change_mu < tol)
        leaving = converged | ~finite
        on_grid = record and (iteration % record_every == 0 or iteration == max_iter)
        if leaving.any():
            # A diverged trial keeps the parameters at which its loss became infinite; a
            # converged one keeps those of the iteration at which it stopped.
            ids = active[leaving]
            final_pi[ids] = np.where(finite[leaving, None], new_p[leaving], p[leaving])
            final_mu[ids] = np.where(finite[leaving, None, None], new_u[leaving], u[leaving])
            iterations[ids] = np.where(finite[leaving], iteration, iteration - 1)
            status[ids] = np.where(finite[leaving], CONVERGED, DIVERGED)
            _check_divergence(problem, algorithm, ids, current_loss[leaving], p[leaving], u[leaving], finite[leaving],
                              status, errors)
            if record and (stopped := ids[finite[leaving]]).size:  # a converged trial's last iterate
                snapshot(iteration, stopped, final_pi[stopped], final_mu[stopped])
            stay = ~leaving
            active, p, u, previous = active[stay], new_p[stay], new_u[stay], previous[stay]
            state = {key: value[stay] for key, value in new_state.items()}
        else:
            p, u, state = new_p, new_u, new_state
        if on_grid and active.size:
            snapshot(iteration, active, p, u)
        if active.size == 0:
            break
    final_pi[active], final_mu[active] = p, u
    return _finish(problem, final_pi, final_mu, iterations, status, touched, trace, increases, errors)


def _check_divergence(problem: Problem, algorithm, ids: np.ndarray, reported: np.ndarray, p: np.ndarray, u: np.ndarray,
                      finite: np.ndarray, status: np.ndarray, errors: dict) -> None:
    """A trial leaves as diverged when its update reports a non-finite loss. The family's own loss
    at the same parameters must agree: a built-in update's loss is the family's, so when it is
    finite there, the update (a plug-in's) reported a wrong loss, and the trial is failed, naming
    the algorithm, rather than recorded as the algorithm's outcome. (Built-in updates are left
    alone: their losses are the family's, and their rows must not change.)"""
    if finite.all() or ALGORITHMS.origin(algorithm.name) == registry.BUILT_IN:
        return
    own = problem.loss(p[~finite], u[~finite])
    for trial, value, loss in zip(ids[~finite], reported[~finite], own, strict=True):
        if np.isfinite(loss):
            status[trial] = FAILED
            errors[int(trial)] = (f"algorithm '{algorithm.name}' ({ALGORITHMS.origin(algorithm.name)}) reported a loss of "
                                  f"{value} where the model's loss is {loss:.6g}: its update's loss is wrong")


def _finish(problem: Problem, pi, mu, iterations, status, touched, trace=None, increases=None,
            errors: dict | None = None) -> BatchOutcome:
    final_loss = problem.loss(pi, mu)
    # The last step of a capped trial can itself make a pattern impossible.
    status = np.where(np.isfinite(final_loss) | (status == FAILED), status, DIVERGED).astype(object)
    touched = touched | problem.family.at_boundary(mu)
    return BatchOutcome(pi, mu, iterations, status, final_loss, touched, trace or [], increases, errors or {})
