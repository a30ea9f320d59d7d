"""The one batched optimisation loop: EM or projected GD over a batch of trials.

Every trial stops on its own: after each iteration the trials whose parameter change is below the
tolerance (both ||delta pi||_2 and ||delta mu||_F, the paper's rule) leave the batch with the
parameters of that iteration. Trials whose loss becomes infinite (projected GD can clip a mean
onto 0 or 1 so that a pattern of the data becomes impossible) leave the batch as ``diverged``
with the last parameters they had. The rest are ``capped`` at ``max_iter``.

The loop knows a model family only through its step functions, so Bernoulli and Gaussian
families share it. A family may also offer ``run_fused``, the same loop compiled into one kernel
(same stopping rule and statuses); ``run_batch`` then uses it unless ``fused=False``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

CONVERGED, CAPPED, DIVERGED = "converged", "capped", "diverged"


RECORDABLE = ("pi", "mu", "loss")


@dataclass(frozen=True)
class BatchOutcome:
    """Final state of each trial of a batch: pi [T, m], mu [T, m, D], iterations, status, loss [T],
    and whether any iterate had a mean at exactly 0 or 1 (the boundary) [T].

    ``trace`` holds the recorded iterates, when asked for: a list of (iteration, trial ids [k],
    {quantity: values [k, ...]}), each trial from iteration 0 every ``record_every`` iterations and
    at the iteration it stopped."""

    pi: np.ndarray
    mu: np.ndarray
    iterations: np.ndarray
    status: np.ndarray
    loss: np.ndarray
    touched_boundary: np.ndarray
    trace: list = field(default_factory=list)


def run_batch(
    family: ModuleType,
    data,
    pi: np.ndarray,
    mu: np.ndarray,
    algorithm: str,
    max_iter: int,
    tol: float,
    step: float | None = None,
    fused: bool = True,
    gd_boundary: str = "exact",
    em_update: str = "simultaneous",
    record: tuple[str, ...] = (),
    record_every: int = 1,
) -> BatchOutcome:
    """Run ``algorithm`` ('em' or 'gd') from the initial parameters pi [T, m], mu [T, m, D].

    ``gd_boundary`` is GD's rule for a mean at exactly 0 or 1 ('exact' or 'as_published');
    ``em_update`` is 'simultaneous' (eq. 2.7) or 'in_place' (the authors' code). ``record`` names
    the quantities to trace (of RECORDABLE); tracing takes the numpy loop, since the compiled
    kernel keeps no history.
    """
    if algorithm not in ("em", "gd"):
        raise ValueError(f"unknown algorithm {algorithm!r}")
    if algorithm == "gd" and (step is None or step <= 0):
        raise ValueError("projected GD needs a positive step size")
    if unknown := set(record) - set(RECORDABLE):
        raise ValueError(f"cannot record {sorted(unknown)} (one of {', '.join(RECORDABLE)})")
    if fused and hasattr(family, "run_fused") and not record and mu.shape[2] <= family.FUSED_MAX_D:
        final_pi, final_mu, iterations, status, touched = family.run_fused(
            data, pi, mu, algorithm, max_iter, tol, step, gd_boundary, em_update)
        return _finish(family, data, final_pi, final_mu, iterations, status, touched)

    def update(p, u):
        return family.em_step(data, p, u, em_update) if algorithm == "em" else family.gd_step(data, p, u, step, gd_boundary)

    def snapshot(iteration, ids, p, u):
        values = {"pi": p, "mu": u, "loss": family.loss(data, p, u) if "loss" in record else None}
        trace.append((iteration, ids.copy(), {name: values[name].copy() for name in record}))

    n_trials = pi.shape[0]
    final_pi, final_mu = pi.copy(), mu.copy()
    iterations = np.full(n_trials, max_iter)
    status = np.full(n_trials, CAPPED, dtype=object)
    active = np.arange(n_trials)
    touched = np.zeros(n_trials, dtype=bool)
    trace: list = []
    p, u = pi.copy(), mu.copy()
    if record:
        snapshot(0, active, p, u)
    for iteration in range(1, max_iter + 1):
        touched[active] |= family.at_boundary(u)
        new_p, new_u, current_loss = update(p, u)
        finite = np.isfinite(current_loss)
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
            if record and (stopped := ids[finite[leaving]]).size:  # a converged trial's last iterate
                snapshot(iteration, stopped, final_pi[stopped], final_mu[stopped])
            stay = ~leaving
            active, p, u = active[stay], new_p[stay], new_u[stay]
        else:
            p, u = new_p, new_u
        if on_grid and active.size:
            snapshot(iteration, active, p, u)
        if active.size == 0:
            break
    final_pi[active], final_mu[active] = p, u
    return _finish(family, data, final_pi, final_mu, iterations, status, touched, trace)


def _finish(family, data, pi, mu, iterations, status, touched, trace=None) -> BatchOutcome:
    final_loss = family.loss(data, pi, mu)
    # The last step of a capped trial can itself make a pattern impossible.
    status = np.where(np.isfinite(final_loss), status, DIVERGED).astype(object)
    touched = touched | family.at_boundary(mu)
    return BatchOutcome(pi, mu, iterations, status, final_loss, touched, trace or [])
