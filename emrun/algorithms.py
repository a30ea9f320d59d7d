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

from dataclasses import dataclass
from types import ModuleType

import numpy as np

CONVERGED, CAPPED, DIVERGED = "converged", "capped", "diverged"


@dataclass(frozen=True)
class BatchOutcome:
    """Final state of each trial of a batch: pi [T, m], mu [T, m, D], iterations, status, loss [T],
    and whether any iterate had a mean at exactly 0 or 1 (the boundary) [T]."""

    pi: np.ndarray
    mu: np.ndarray
    iterations: np.ndarray
    status: np.ndarray
    loss: np.ndarray
    touched_boundary: np.ndarray


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
) -> BatchOutcome:
    """Run ``algorithm`` ('em' or 'gd') from the initial parameters pi [T, m], mu [T, m, D].

    ``gd_boundary`` is GD's rule for a mean at exactly 0 or 1 ('exact' or 'as_published').
    """
    if algorithm not in ("em", "gd"):
        raise ValueError(f"unknown algorithm {algorithm!r}")
    if algorithm == "gd" and (step is None or step <= 0):
        raise ValueError("projected GD needs a positive step size")
    if fused and hasattr(family, "run_fused"):
        final_pi, final_mu, iterations, status, touched = family.run_fused(
            data, pi, mu, algorithm, max_iter, tol, step, gd_boundary)
        return _finish(family, data, final_pi, final_mu, iterations, status, touched)

    def update(p, u):
        return family.em_step(data, p, u) if algorithm == "em" else family.gd_step(data, p, u, step, gd_boundary)

    n_trials = pi.shape[0]
    final_pi, final_mu = pi.copy(), mu.copy()
    iterations = np.full(n_trials, max_iter)
    status = np.full(n_trials, CAPPED, dtype=object)
    active = np.arange(n_trials)
    touched = np.zeros(n_trials, dtype=bool)
    p, u = pi.copy(), mu.copy()
    for iteration in range(1, max_iter + 1):
        touched[active] |= ((u == 0.0) | (u == 1.0)).any(axis=(1, 2))
        new_p, new_u, current_loss = update(p, u)
        finite = np.isfinite(current_loss)
        change_pi = np.sqrt(np.sum((new_p - p) ** 2, axis=1))
        change_mu = np.sqrt(np.sum((new_u - u) ** 2, axis=(1, 2)))
        converged = finite & (change_pi < tol) & (change_mu < tol)
        leaving = converged | ~finite
        if leaving.any():
            # A diverged trial keeps the parameters at which its loss became infinite; a
            # converged one keeps those of the iteration at which it stopped.
            ids = active[leaving]
            final_pi[ids] = np.where(finite[leaving, None], new_p[leaving], p[leaving])
            final_mu[ids] = np.where(finite[leaving, None, None], new_u[leaving], u[leaving])
            iterations[ids] = np.where(finite[leaving], iteration, iteration - 1)
            status[ids] = np.where(finite[leaving], CONVERGED, DIVERGED)
            stay = ~leaving
            active, p, u = active[stay], new_p[stay], new_u[stay]
            if active.size == 0:
                break
        else:
            p, u = new_p, new_u
    final_pi[active], final_mu[active] = p, u
    return _finish(family, data, final_pi, final_mu, iterations, status, touched)


def _finish(family, data, pi, mu, iterations, status, touched) -> BatchOutcome:
    final_loss = family.loss(data, pi, mu)
    # The last step of a capped trial can itself make a pattern impossible.
    status = np.where(np.isfinite(final_loss), status, DIVERGED).astype(object)
    touched = touched | ((mu == 0.0) | (mu == 1.0)).any(axis=(1, 2))
    return BatchOutcome(pi, mu, iterations, status, final_loss, touched)
