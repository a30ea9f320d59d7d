"""The compiled parts (numba) of the means-only Gaussian mixture's expectations
(:mod:`emrun.models.gaussian_means`): the node-by-node sum's elementwise passes, fused, and the
factorised quadrature.

**Fused passes (every estimator, bit for bit numpy's).** The node-by-node sum makes a dozen numpy
passes over [T, n, P] arrays, each of which reads and writes memory beyond the cache. The passes
that are only additions, subtractions and a maximum (exact in IEEE arithmetic, so their order of
evaluation is all that matters) are fused here into three, in numpy's order; the exponentials,
logarithms, products with matrices and sums over nodes stay numpy's. So the rows are bit-identical
to the all-numpy sum (tests hold them equal on random inputs), which paper C's studies need: they
follow ln L to the float64 floor.

**Factorised quadrature (paper B's trajectories).** On a tensor Gauss-Hermite rule the logit of
component i at node x is a_i + sum_k x_k c_ik (a_i = log pi_i - ||mu_i||^2 / 2, c the means in the
rule's coordinates), so exp(logit) is a product over axes of one-dimensional factors
exp(x_k c_ik): points x rank exponentials per component and step instead of one per node, and a
node costs a few multiplies per component.

Range: each axis' factors are shifted by their largest value, so every factor lies in (0, 1] and
the largest product is exp(0) at the best component; a call refuses (returns False) when some
node's mixture density could fall below exp(-600), and the caller then uses the node-by-node sum.

Rounding: a factor's rounding is shared by every node on its axis line instead of averaging out
over nodes, so L is off by about 1e-15 (absolute, measured at 7776 nodes against an 80-bit
evaluation; L is a sum of O(1) terms), against about 1e-17 for the node-by-node sum; z and the
moments agree with that sum to about 1e-15. The tests hold all three to 1e-13. The sum giving L is
compensated (Neumaier): plain, its error grew with the node count (1e-13 at 7776 nodes).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_FLOOR = -600.0  # log of the smallest mixture density (relative to the largest term) allowed


# --- the node-by-node sum's fused passes ------------------------------------------------------

@njit(cache=True)
def shifted_logits(logits, log_pi, half_norm, shifted, top):
    """In place: logits [T, n, P] (on entry <x, mu_i>) become (log pi_i + <x, mu_i>) - ||mu_i||^2 / 2
    (log_pi, half_norm [T, n]); top [T, P] = their maximum over i; shifted = logits - top. A NaN
    logit may leave top finite where numpy's maximum is NaN: either way every output at that node
    is NaN, since the sum over components that follows includes it."""
    T, n, P = logits.shape
    for t in range(T):
        for i in range(n):
            a, h = log_pi[t, i], half_norm[t, i]
            for p in range(P):
                value = (a + logits[t, i, p]) - h
                logits[t, i, p] = value
                top[t, p] = value if i == 0 else max(top[t, p], value)
        for i in range(n):
            for p in range(P):
                shifted[t, i, p] = logits[t, i, p] - top[t, p]


@njit(cache=True)
def component_sum(terms, out):
    """out [T, P] = sum over i of terms [T, n, P], in numpy's order for this axis when P > 1 (i = 0,
    1, ...; with P = 1 numpy sums pairwise, so the caller leaves that case to numpy)."""
    T, n, P = terms.shape
    for t in range(T):
        for p in range(P):
            out[t, p] = terms[t, 0, p]
        for i in range(1, n):
            for p in range(P):
                out[t, p] += terms[t, i, p]


@njit(cache=True)
def log_posterior(logits, top, log_ratio):
    """In place: log_ratio [T, P] (on entry log sum_i exp(shifted)) becomes top + itself, the log of
    p_mu(x) / N(x; 0, I); logits [T, n, P] become logits - log_ratio, the log posterior."""
    T, n, P = logits.shape
    for t in range(T):
        for p in range(P):
            log_ratio[t, p] = top[t, p] + log_ratio[t, p]
        for i in range(n):
            for p in range(P):
                logits[t, i, p] -= log_ratio[t, p]


# --- the factorised quadrature ------------------------------------------------------------------


@njit(cache=True)
def tensor_moments(a, c, axis_x, axis_w, z, moment, loss, with_loss):
    """Fill z [T, n] = E[psi_i], moment [T, n, r] = E[psi_i x] and (with ``with_loss``, else NaN)
    loss [T] = L = -E[log sum_i exp(logit_i)] for a [T, n] (log pi_i - ||mu_i||^2 / 2), c [T, n, r]
    (the means in the rule's coordinates) on the tensor rule of the one-axis nodes axis_x [p] and
    weights axis_w [p] (summing to 1). Returns False, with nothing to be trusted, when the range
    check fails for some trial (see the module docstring)."""
    T, n, r = c.shape
    p = axis_x.shape[0]
    inner = 2 if r >= 2 else 1  # the last one or two axes form a block that the compiler vectorises
    outer = r - inner
    block = p**inner
    block_x0, block_x1, block_w = np.zeros(block), np.zeros(block), np.empty(block)
    for j in range(block):
        if inner == 2:
            block_x0[j], block_x1[j], block_w[j] = axis_x[j // p], axis_x[j % p], axis_w[j // p] * axis_w[j % p]
        else:
            block_x0[j], block_w[j] = axis_x[j], axis_w[j]
    factor = np.empty((n, r, p))
    block_factor = np.empty((n, block))
    term, density, share = np.empty((n, block)), np.empty(block), np.empty(block)
    prefix, weight_prefix = np.empty((outer + 1, n)), np.empty(outer + 1)
    index = np.zeros(max(outer, 1), np.int64)
    offset = np.empty(n)
    for t in range(T):
        for i in range(n):  # a NaN or infinite mean, or a NaN offset (a zero weight's -inf is fine)
            if np.isnan(a[t, i]) or a[t, i] == np.inf:
                return False
            for k in range(r):
                if not np.isfinite(c[t, i, k]):
                    return False
        top, best_floor = -np.inf, -np.inf
        for i in range(n):
            total_shift, spread = a[t, i], 0.0
            for k in range(r):
                high, low = -np.inf, np.inf
                for point in range(p):
                    value = axis_x[point] * c[t, i, k]
                    high, low = max(high, value), min(low, value)
                for point in range(p):
                    factor[i, k, point] = np.exp(axis_x[point] * c[t, i, k] - high)
                total_shift += high
                spread += high - low
            offset[i] = total_shift
            top = max(top, total_shift)
            best_floor = max(best_floor, total_shift - spread)
        if not best_floor - top >= _FLOOR:
            return False
        for i in range(n):
            prefix[0, i] = np.exp(offset[i] - top)
            for j in range(block):
                if inner == 2:
                    block_factor[i, j] = factor[i, outer, j // p] * factor[i, outer + 1, j % p]
                else:
                    block_factor[i, j] = factor[i, outer, j]
            z[t, i] = 0.0
            for k in range(r):
                moment[t, i, k] = 0.0
        weight_prefix[0] = 1.0
        for level in range(outer):
            index[level] = 0
            weight_prefix[level + 1] = weight_prefix[level] * axis_w[0]
            for i in range(n):
                prefix[level + 1, i] = prefix[level, i] * factor[i, level, 0]
        total, carry = 0.0, 0.0
        while True:  # over the outer axes' index tuples (an odometer); each visit is one block of nodes
            for j in range(block):
                density[j] = 0.0
            for i in range(n):
                scale = prefix[outer, i]
                for j in range(block):
                    value = scale * block_factor[i, j]
                    term[i, j] = value
                    density[j] += value
            outer_weight = weight_prefix[outer]
            if with_loss:
                for j in range(block):
                    value = outer_weight * block_w[j] * (top + np.log(density[j]))  # log p_mu(x) / N(x; 0, I)
                    summed = total + value
                    if abs(total) >= abs(value):
                        carry += (total - summed) + value
                    else:
                        carry += (value - summed) + total
                    total = summed
            for j in range(block):
                share[j] = outer_weight * block_w[j] / density[j]
            for i in range(n):
                mass, first, second = 0.0, 0.0, 0.0
                for j in range(block):
                    value = term[i, j] * share[j]
                    mass += value
                    first += value * block_x0[j]
                    second += value * block_x1[j]
                z[t, i] += mass
                moment[t, i, outer] += first
                if inner == 2:
                    moment[t, i, outer + 1] += second
                for k in range(outer):
                    moment[t, i, k] += axis_x[index[k]] * mass
            level = outer - 1
            while level >= 0:
                index[level] += 1
                if index[level] < p:
                    break
                index[level] = 0
                level -= 1
            if level < 0:
                break
            for changed in range(level, outer):
                weight_prefix[changed + 1] = weight_prefix[changed] * axis_w[index[changed]]
                for i in range(n):
                    prefix[changed + 1, i] = prefix[changed, i] * factor[i, changed, index[changed]]
        loss[t] = -(total + carry) if with_loss else np.nan
    return True


def cached() -> bool:
    """Whether numba's cache holds this file's compiled kernels (as emrun.models.bernoulli_fused.cached)."""
    try:
        return all(kernel._cache._cache_file._load_index()
                   for kernel in (tensor_moments, shifted_logits, component_sum, log_posterior))
    except Exception:  # noqa: BLE001 (a changed numba or an unreadable index: the kernel compiles, as said)
        return False


def prepare(say=None) -> None:
    """Compile the kernels, or load them from the cache, in this process. ``say`` (the sweep process,
    before its workers start): tell the user when they compile, and leave loading to the workers."""
    if say is not None:
        if cached():
            return
        say("compiling the Gaussian expectation kernels (first run only; a few seconds)")
    x, w = np.array([-1.0, 1.0]), np.array([0.5, 0.5])
    tensor_moments(np.zeros((1, 2)), np.zeros((1, 2, 1)), x, w, np.empty((1, 2)), np.empty((1, 2, 1)), np.empty(1), True)
    logits, pair, nodes = np.zeros((1, 2, 2)), np.zeros((1, 2)), np.zeros((1, 2))
    shifted_logits(logits, pair, pair, np.empty((1, 2, 2)), nodes)
    component_sum(logits, nodes)
    log_posterior(logits, nodes, nodes)
