"""The compiled Bernoulli kernel (:mod:`bernoulli_fused`) run in bounded chunks of iterations.

Compiled code cannot be interrupted: a Ctrl-C raised while numba's kernel calls back into Python
is lost, and one call can run for hours (a trial capped at 10^8 iterations). So the loop of
iterations is cut into calls of bounded work, each under :func:`emrun.interrupts.deferred`: a
signal is recorded during a call and raised as it returns, and the sweep stops within a chunk.

Chunks change no result: a trial's next iteration depends only on its pi, mu and, for the
authors' EM rule, the loss it last compared with, which the kernel takes and returns; and a
trial's arithmetic does not depend on which trials share its call (tests hold chunked runs to
one long call, bit for bit).
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np

from emrun import faults, interrupts
from emrun.models import bernoulli_fused as kernel

# Work per call, in updates of one (trial, pattern, component, feature) per iteration: about 0.1 s
# at ~3 ns each (measured at m = 3, D = 6), how long a signal may wait, and a thousand times the
# cost of a call itself.
CHUNK_WORK = 30_000_000


def chunk_iterations(n_trials: int, n_patterns: int, m: int, D: int, passes: int) -> int:
    """Iterations per kernel call for a batch of this shape (at least one)."""
    return max(1, CHUNK_WORK // max(1, n_trials * n_patterns * m * D * passes))


def run_in_chunks(bits: np.ndarray, codes: np.ndarray, values: np.ndarray, weights: np.ndarray, pi: np.ndarray,
                  mu: np.ndarray, gd: bool, step: float, max_iter: int, tol: float, as_published: bool, rule: int,
                  chunk: int | None = None, defer: bool = True) -> tuple[np.ndarray, ...]:
    """:func:`bernoulli_fused.fused_run` over every trial of pi [T, m], mu [T, m, D], ``chunk``
    iterations per call (default :func:`chunk_iterations` of the trials still running); the trials a call leaves capped go on
    in the next. ``defer``: a signal during a call is raised when it returns (False while the
    kernel may still compile: compiling is Python, which a signal interrupts as it should).
    Returns what fused_run returns, without the last loss."""
    n_trials, m = pi.shape
    passes = 1 if gd or rule == kernel.SIMULTANEOUS else m + 1
    pi_out, mu_out = pi.astype(float, copy=True), mu.astype(float, copy=True)
    iterations = np.full(n_trials, max_iter, dtype=np.int64)
    status = np.full(n_trials, kernel.CAPPED, dtype=np.int8)
    touched = np.zeros(n_trials, dtype=np.bool_)
    increases = np.zeros(n_trials, dtype=np.int64)
    previous_loss = np.full(n_trials, np.inf)
    active = np.arange(n_trials)
    done = 0
    while active.size and done < max_iter:
        length = min(chunk or chunk_iterations(active.size, bits.shape[0], m, mu.shape[2], passes), max_iter - done)
        faults.mark("kernel_call")
        with interrupts.deferred() if defer else nullcontext():
            outcome = kernel.fused_run(bits, codes, values, weights, np.ascontiguousarray(pi_out[active]),
                                       np.ascontiguousarray(mu_out[active]), gd, step, length, tol, as_published,
                                       rule, np.ascontiguousarray(previous_loss[active]))
        pi_out[active], mu_out[active], ran, stopped, touched_now, increases_now, previous_loss[active] = outcome
        iterations[active] = done + ran
        status[active] = stopped
        touched[active] |= touched_now
        increases[active] += increases_now
        done += length
        active = active[stopped == kernel.CAPPED]  # capped by this call only: they go on
    return pi_out, mu_out, iterations, status, touched, increases
