"""The Bernoulli EM and projected-GD loops fused into one compiled kernel (numba).

Same mathematics as :mod:`emrun.models.bernoulli` (tests hold the two to 1e-10): a batch of
trials runs to its stopping rule in compiled loops with no per-iteration allocation. Trials are
the innermost (contiguous) axis, so each loop over patterns, components and features updates all
active trials at once and the compiler vectorises it. Component densities are products of
Bernoulli factors, exact as long as they stay far from underflow; a pattern whose mixture
probability falls below ``_TINY`` for a trial is recomputed in log space for that trial. A zero
factor (mean exactly 0 or 1) is recorded in a bit mask, not multiplied, so the one-sided limit
of eq. 2.13 is available as in the numpy engine.

Why a kernel: the batched numpy engine costs about 5 us per trial-iteration at m = 3, D = 5 on
this project's machine (every array pass re-reads [T, m, P] arrays and numpy's exp is not
vectorised without AVX-512), far above the arithmetic's cost; this kernel takes about 1 us.

Where the work goes (issue 33, measured at m = 6, D = 10 on the population): a pattern's product
of D factors is built on the product of the patterns before it (the patterns come sorted, so
consecutive ones share a prefix of features: about 2 multiplies per pattern and component instead
of D); what remains is the sums E[gamma_c x_j], one add per pattern with x_j = 1. With few trials
left (``FEW_LANES``), each trial's sums run feature by feature over the patterns that have
x_j = 1, eight components at a time in local accumulators. GD's boundary terms visit only the
lanes with a mean at 0 or 1.
Every change keeps each trial's arithmetic, operation for operation and in the same order, so the
rows are the same bits as before (tests compare a trial alone with the same trial among sixty).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_TINY = 1e-280  # below this mixture probability a pattern is recomputed in log space
CAPPED, CONVERGED, DIVERGED = 0, 1, 2


def cached() -> bool:
    """Whether numba's cache (NUMBA_CACHE_DIR, set by emrun.env.kernel_cache) holds a compiled
    kernel that numba will load for THIS source file. Numba keeps one index per source path and
    stamps it with the source's contents, so another checkout's kernel, or one compiled from an
    older version of this file, does not count: numba would compile again. Asked of numba's own
    index reader, which applies exactly that test (a private API: if it moves, say not cached)."""
    try:
        return bool(fused_run._cache._cache_file._load_index())
    except Exception:  # noqa: BLE001 (a changed numba or an unreadable index: the kernel compiles, as said)
        return False


@njit(cache=True)
def _project_to_simplex(v, out, u):
    """Duchi et al. (2008), as in bernoulli.project_to_simplex, without allocating: ``u`` is scratch."""
    m = v.shape[0]
    largest, size = v[0], 0.0
    for i in range(m):
        largest, size = max(largest, v[i]), max(size, abs(v[i]))
    if size > 1e8:  # shift-invariant: keep precision near the largest entry (see bernoulli.py)
        for i in range(m):
            v[i] -= largest
    for i in range(m):  # insertion sort, descending (m is small)
        value = v[i]
        k = i
        while k > 0 and u[k - 1] < value:
            u[k] = u[k - 1]
            k -= 1
        u[k] = value
    cumulative = 0.0
    rho = 0
    theta = 0.0
    for i in range(m):
        cumulative += u[i]
        if u[i] - (cumulative - 1.0) / (i + 1) > 0:
            rho = i + 1
            theta = (cumulative - 1.0) / rho
    for i in range(m):
        out[i] = max(v[i] - theta, 0.0)


FEW_LANES = 8  # at most this many active trials, none on the boundary: one trial at a time, patterns inner


@njit(cache=True)
def _pattern_structure(patterns):
    """What the passes reuse about the patterns [P, D] (sorted, distinct): how many leading
    features each pattern shares with the one before (``shared`` [P]), the patterns with x_j = 1
    for each feature (``feature_ones`` [D, P], the first ``feature_count[j]`` of row j, in pattern
    order), and whether they are all 2^D patterns in :func:`emrun.models.bernoulli.all_patterns`'
    order (``complete``: a component's table can then be built by doubling)."""
    n_patterns, D = patterns.shape
    shared = np.zeros(n_patterns, np.int64)
    for p in range(1, n_patterns):
        k = 0
        while k < D - 1 and patterns[p, k] == patterns[p - 1, k]:
            k += 1
        shared[p] = k
    feature_ones, feature_count = np.zeros((D, n_patterns), np.int64), np.zeros(D, np.int64)
    complete = n_patterns == 2**D
    for p in range(n_patterns):
        for j in range(D):
            if patterns[p, j]:
                feature_ones[j, feature_count[j]] = p
                feature_count[j] += 1
            complete = complete and patterns[p, j] == (p >> (D - 1 - j)) & 1
    return shared, feature_ones, feature_count, complete


@njit(cache=True)
def _lane_sums_patterns_inner(t, values_t, weights, pi, mu, factor_product, scale, z, s1,
                              feature_ones, feature_count, complete):
    """Z_c and E[gamma_c x] of lane ``t`` with the patterns as the inner loop, for when few trials
    are active (the lane loops would then be at most FEW_LANES long). Same operations in the same
    order as the lane-inner pass, so the same results: a factor is mu or 1 - mu, selected exactly,
    each product runs over the features in order from 1.0, and each sum over the patterns in order.
    Only for means inside (0, 1); returns False if some p(x) < _TINY (the caller then takes the
    general pass, with its log-space fallback)."""
    m, D = mu.shape[0], mu.shape[1]
    n_patterns = values_t.shape[1]
    for c in range(m):
        if complete:  # the table over features 0..j is the one over 0..j-1 times 1 - mu_j or mu_j
            product = factor_product[c]
            product[0] = 1.0
            size = 1
            for j in range(D):
                high = mu[c, j, t]
                low = 1.0 - high
                for k in range(size - 1, -1, -1):  # from the top: entry k is read before 2k is written
                    value = product[k]
                    product[2 * k + 1] = value * high
                    product[2 * k] = value * low
                size *= 2
            continue
        for p in range(n_patterns):
            factor_product[c, p] = 1.0
        for j in range(D):
            high = mu[c, j, t]
            low = 1.0 - high
            row = values_t[j]
            for p in range(n_patterns):
                factor_product[c, p] *= high if row[p] != 0.0 else low
    for p in range(n_patterns):
        scale[p] = 0.0
    for c in range(m):
        weight = pi[c, t]
        for p in range(n_patterns):
            scale[p] += weight * factor_product[c, p]
    smallest = np.inf
    for p in range(n_patterns):
        smallest = min(smallest, scale[p])
        scale[p] = weights[p] / max(scale[p], _TINY)
    if smallest < _TINY:
        return False
    for c in range(m):
        for p in range(n_patterns):
            factor_product[c, p] *= scale[p]  # rows m.. (to a multiple of 8) stay 0
    # Each sum over the patterns that have x_j = 1 (Z_c: over every pattern), in pattern order: the
    # adds of the lane-inner pass, which skips x_j = 0. Eight components at a time, in locals: eight
    # independent chains the compiler keeps in registers (one array slot each would be a load and a
    # store per add, which bounded this loop at about 1.5 cycles per add). factor_product has its
    # rows padded with zeros to a multiple of 8, so a group never reads past them.
    for j in range(-1, D):
        count = n_patterns if j < 0 else feature_count[j]
        for group in range(0, factor_product.shape[0], 8):
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
            for k in range(count):
                p = k if j < 0 else feature_ones[j, k]
                a0 += factor_product[group, p]
                a1 += factor_product[group + 1, p]
                a2 += factor_product[group + 2, p]
                a3 += factor_product[group + 3, p]
                a4 += factor_product[group + 4, p]
                a5 += factor_product[group + 5, p]
                a6 += factor_product[group + 6, p]
                a7 += factor_product[group + 7, p]
            sums = (a0, a1, a2, a3, a4, a5, a6, a7)
            for i in range(min(8, m - group)):
                if j < 0:
                    z[group + i, t] = sums[i]
                else:
                    s1[group + i, j, t] = sums[i]
    return True


@njit(cache=True)
def _pattern_pass(n, patterns, codes, values, weights, pi, mu, gd, as_published, lane_trial,
                  table, zero_if_one, zero_if_zero, prefix, bits, boundary_lanes, boundary_count, mixture, scale,
                  usable, impossible, touched, lane_log_p, z, s1, extra, log_f, ones, structure, values_t,
                  factor_product, pattern_scale, track_loss, loss):
    """One pass over the patterns for the first ``n`` lanes at parameters pi [m, T], mu [m, D, T]:
    fills Z_c (``z``), E[gamma_c x] (``s1``), GD's boundary terms (``extra``), and flags lanes with
    an impossible pattern (``impossible``) or a mean at exactly 0 or 1 (``touched``, by trial).
    With ``track_loss``, also -sum_x w log p(x) per lane (``loss``) at these parameters.
    ``prefix`` [D + 1, m, T] holds the products of each pattern's leading factors (row 0 is 1.0);
    ``structure`` is :func:`_pattern_structure` of the patterns."""
    shared, feature_ones, feature_count, complete = structure
    m, D = mu.shape[0], mu.shape[1]
    n_patterns = patterns.shape[0]
    all_bits = -1 if D >= 64 else (1 << D) - 1  # every feature's bit (as int64)
    # Factor tables; a zero factor is stored as 1 and recorded in a bit mask instead: feature
    # j of component c is a zero factor of x when x_j = 1 and mu_cj = 0, or x_j = 0 and mu_cj = 1.
    for c in range(m):
        for t in range(n):
            zero_if_one[c, t] = 0
            zero_if_zero[c, t] = 0
        for j in range(D):
            for t in range(n):
                low, high = 1.0 - mu[c, j, t], mu[c, j, t]
                table[j, 0, c, t] = 1.0 if low == 0.0 else low
                table[j, 1, c, t] = 1.0 if high == 0.0 else high
                zero_if_one[c, t] |= (high == 0.0) << j
                zero_if_zero[c, t] |= (low == 0.0) << j
    # Without a mean on the boundary (always so for EM from inside) the bit masks are skipped:
    # every pattern is possible for every component, and the loops below vectorise cleanly. With
    # one, only the components that have a lane on the boundary take the masked loops, and GD's
    # boundary terms visit only those lanes (``boundary_lanes[c]``, ``boundary_count[c]`` of them).
    boundary = False
    for c in range(m):
        boundary_count[c] = 0
        for t in range(n):
            bits[c, t] = 0
            if zero_if_one[c, t] | zero_if_zero[c, t]:
                touched[lane_trial[t]] = True
                boundary = True
                boundary_lanes[c, boundary_count[c]] = t
                boundary_count[c] += 1
    z[:, :n] = 0.0
    s1[:, :, :n] = 0.0
    extra[:, :, :n] = 0.0
    impossible[:n] = False
    if track_loss:
        loss[:n] = 0.0
    if not boundary and n <= FEW_LANES and not track_loss:
        done = True
        for t in range(n):
            done = done and _lane_sums_patterns_inner(t, values_t, weights, pi, mu, factor_product, pattern_scale,
                                                      z, s1, feature_ones, feature_count, complete)
        if done:
            return
        z[:, :n] = 0.0
        s1[:, :, :n] = 0.0
    for p in range(n_patterns):
        x, code, row = patterns[p], codes[p], values[p]
        n_ones = 0
        for j in range(D):
            if x[j]:
                ones[n_ones] = j
                n_ones += 1
        # Products of factors 0..j-1 in prefix[j]; the leading features this pattern shares with
        # the one before keep theirs, so on sorted patterns about two rows per pattern are new.
        # The product is built in the same order as a plain loop over j from 1.0: the same bits.
        for j in range(shared[p], D):
            xj = x[j]
            for c in range(m):
                for t in range(n):
                    prefix[j + 1, c, t] = prefix[j, c, t] * table[j, xj, c, t]
        product = prefix[D]  # the log-space fallback below may overwrite it: no later pattern reads row D
        for t in range(n):
            mixture[t] = 0.0
        if boundary:
            for c in range(m):
                if boundary_count[c] == 0:  # bits stay 0: the plain sum, the same bits
                    for t in range(n):
                        mixture[t] += pi[c, t] * product[c, t]
                    continue
                for t in range(n):
                    bits[c, t] = (code & zero_if_one[c, t]) | (~code & all_bits & zero_if_zero[c, t])
                    mixture[t] += pi[c, t] * product[c, t] * (bits[c, t] == 0)
        else:
            for c in range(m):
                for t in range(n):
                    mixture[t] += pi[c, t] * product[c, t]
        tiny = False
        for t in range(n):
            scale[t] = weights[p] / max(mixture[t], _TINY)  # lanes below _TINY are redone just below
            tiny |= mixture[t] < _TINY
        for t in range(n if tiny else 0):
            if mixture[t] >= _TINY:
                continue
            # Log space for this pattern and trial: f_c / p as exp(log f_c - log p).
            top = 0.0
            possible = False
            for c in range(m):
                total = 0.0
                for j in range(D):
                    total += np.log(table[j, x[j], c, t])  # zero factors are stored as 1
                log_f[c] = total
                if bits[c, t] == 0 and pi[c, t] > 0.0:
                    top = np.log(pi[c, t]) + total if not possible else max(top, np.log(pi[c, t]) + total)
                    possible = True
            if not possible:
                impossible[t] = True
                scale[t] = 0.0
                continue
            scaled = 0.0
            for c in range(m):
                if bits[c, t] == 0 and pi[c, t] > 0.0:
                    scaled += np.exp(np.log(pi[c, t]) + log_f[c] - top)
            log_p = top + np.log(scaled)
            lane_log_p[t] = log_p
            for c in range(m):
                product[c, t] = np.exp(min(log_f[c] - log_p, 700.0))
            scale[t] = weights[p]
        if track_loss:
            for t in range(n):
                if not impossible[t]:
                    loss[t] -= weights[p] * (np.log(mixture[t]) if mixture[t] >= _TINY else lane_log_p[t])
        # Sums of h_c(x) = w f_c / p; within a component, terms that do not apply are multiplied by 0,
        # not branched on (lanes are not); a component with no lane on the boundary skips the mask.
        for c in range(m):
            if boundary and boundary_count[c] > 0:
                for t in range(n):
                    usable[t] = product[c, t] * scale[t] * (bits[c, t] == 0)
                    z[c, t] += usable[t]
            else:
                for t in range(n):
                    usable[t] = product[c, t] * scale[t]
                    z[c, t] += usable[t]
            for k in range(n_ones):
                j = ones[k]
                for t in range(n):
                    s1[c, j, t] += usable[t]
            if gd and boundary:
                for k in range(boundary_count[c]):
                    t = boundary_lanes[c, k]
                    b = bits[c, t]
                    if b != 0 and b & (b - 1) == 0:  # exactly one zero factor, at feature j
                        j = 0  # the position of b's single set bit
                        while ((b >> j) & 1) == 0:
                            j += 1
                        if not as_published:
                            extra[c, j, t] += (product[c, t] * scale[t]) * (2.0 * row[j] - 1.0)
                            continue
                        # The authors' term: factors before j only, sign and slot of the last feature.
                        if mixture[t] >= _TINY:
                            partial = scale[t]
                            for i in range(j):
                                partial *= table[i, x[i], c, t]
                        else:
                            total = 0.0
                            for i in range(j):
                                total += np.log(table[i, x[i], c, t])
                            partial = weights[p] * np.exp(min(total - lane_log_p[t], 700.0))
                        extra[c, D - 1, t] += partial * (2.0 * row[D - 1] - 1.0)


SIMULTANEOUS, ECM, AUTHORS = 0, 1, 2  # the EM rules (emrun.models.bernoulli.em_step)


@njit(cache=True)
def fused_run(patterns, codes, values, weights, pi0, mu0, gd, step, max_iter, tol, as_published, em_rule,
              previous_loss0):
    """Run EM (gd=False) or projected GD (gd=True) on every trial of pi0 [T, m], mu0 [T, m, D].

    ``as_published`` selects the authors' boundary term for GD instead of the exact limit (see
    :func:`emrun.models.bernoulli.gradient`); ``em_rule`` is SIMULTANEOUS (eq. 2.7), ECM (the means
    cluster by cluster, then pi at the new means: m + 1 pattern passes per iteration) or AUTHORS
    (the authors' code: pi_c from the partial point of component c, not renormalised; m passes),
    see :func:`emrun.models.bernoulli.em_step`. AUTHORS also counts, per trial, the iterations at
    whose start the loss (pi renormalised) was above that at the start of the one before.
    Returns final pi, mu, iterations [T], status [T] (CAPPED, CONVERGED or DIVERGED), whether each
    trial ever had a mean at exactly 0 or 1, the loss increases counted (zero but for AUTHORS), and
    the last loss AUTHORS compared with (``previous_loss0`` [T] is the one before the first
    iteration: inf at the start). With these a run can go on where a capped one stopped, bit for
    bit: a trial's next iteration depends only on its pi, mu and previous loss.

    Trials are lanes of arrays whose last axis is the trial, so the loops over patterns,
    components and features run over all active trials at once (which the compiler vectorises).
    A trial that stops hands its lane to the last active trial; each trial's arithmetic is the
    same whatever its lane, so results do not depend on which trials share the batch.
    """
    n_trials, m = pi0.shape
    D = mu0.shape[2]
    passes = 1 if gd or em_rule == SIMULTANEOUS else (m + 1 if em_rule == ECM else m)
    authors = em_rule == AUTHORS and not gd
    pi_out, mu_out = pi0.copy(), mu0.copy()
    iterations = np.full(n_trials, max_iter, dtype=np.int64)
    status = np.zeros(n_trials, dtype=np.int8)

    # Lane state: trial of each lane, its parameters, and per-iteration sums.
    lane_trial = np.arange(n_trials)
    # Copies, always: with one trial the transposes are already contiguous, and ascontiguousarray
    # would return views through which the loop below overwrote the caller's arrays.
    pi = np.ascontiguousarray(pi0.T).copy()  # [m, T]
    mu = np.ascontiguousarray(mu0.transpose(1, 2, 0)).copy()  # [m, D, T]
    table = np.empty((D, 2, m, n_trials))
    zero_if_one, zero_if_zero = np.empty((m, n_trials), np.int64), np.empty((m, n_trials), np.int64)
    prefix, bits = np.empty((D + 1, m, n_trials)), np.empty((m, n_trials), np.int64)
    prefix[0] = 1.0
    boundary_lanes, boundary_count = np.zeros((m, n_trials), np.int64), np.zeros(m, np.int64)
    mixture, scale, usable = np.empty(n_trials), np.empty(n_trials), np.empty(n_trials)
    impossible = np.zeros(n_trials, dtype=np.bool_)
    touched = np.zeros(n_trials, dtype=np.bool_)
    lane_log_p = np.zeros(n_trials)
    z, s1, extra = np.empty((m, n_trials)), np.empty((m, D, n_trials)), np.empty((m, D, n_trials))
    # The means updated cluster by cluster (ECM, and AUTHORS: one pass per component, so a single
    # one at m = 1, which still updates the means in place) are kept apart from the iteration's start.
    in_place = passes > 1 or authors
    start_mu = np.empty((m, D, n_trials) if in_place else (0, 0, 0))
    partial_pi = np.empty((m, n_trials))  # AUTHORS: pi_c from the partial point of component c
    loss, previous_loss = np.zeros(n_trials), previous_loss0.copy()
    previous_out = previous_loss0.copy()
    lane_increases, increases = np.zeros(n_trials, np.int64), np.zeros(n_trials, np.int64)
    log_f = np.empty(m)
    new_pi, new_mu, moved, scratch = np.empty(m), np.empty((m, D)), np.empty(m), np.empty(m)
    ones = np.empty(D, np.int64)
    values_t = np.ascontiguousarray(values.T)  # [D, P], for the patterns-inner pass
    factor_product = np.zeros((8 * ((m + 7) // 8), patterns.shape[0]))  # rows to a multiple of 8: see the sums
    pattern_scale = np.empty(patterns.shape[0])
    structure = _pattern_structure(patterns)
    n = n_trials
    for iteration in range(1, max_iter + 1):
        if n == 0:
            break
        for sub_step in range(passes):
            track_loss = authors and sub_step == 0  # the loss at the iteration's start
            _pattern_pass(n, patterns, codes, values, weights, pi, mu, gd, as_published, lane_trial,
                          table, zero_if_one, zero_if_zero, prefix, bits, boundary_lanes, boundary_count, mixture,
                          scale, usable, impossible, touched, lane_log_p, z, s1, extra, log_f, ones, structure,
                          values_t, factor_product, pattern_scale, track_loss, loss)
            if sub_step == passes - 1 and not authors:
                break
            # Cluster by cluster: the means of component ``sub_step`` from responsibilities that
            # already see the new means of the components before it; under ECM pi follows after the
            # last pass, under AUTHORS pi_c is taken here, at this partial point.
            c = sub_step
            for t in range(n):
                if c == 0:
                    for k in range(m):
                        for j in range(D):
                            start_mu[k, j, t] = mu[k, j, t]
                if authors:
                    partial_pi[c, t] = pi[c, t] * z[c, t]
                if z[c, t] > 0.0:
                    for j in range(D):
                        mu[c, j, t] = min(max(s1[c, j, t] / z[c, t], 0.0), 1.0)
        if in_place:  # in-place EM: the update below compares the new means with the iteration's start
            for t in range(n):
                for c in range(m):
                    for j in range(D):
                        mu[c, j, t], start_mu[c, j, t] = start_mu[c, j, t], mu[c, j, t]

        # Updates, stopping rules and lane hand-over, trial by trial.
        t = 0
        while t < n:
            leaving = False
            if impossible[t]:
                status[lane_trial[t]] = DIVERGED
                iterations[lane_trial[t]] = iteration - 1
                leaving = True
            else:
                if authors:  # the loss at the iteration's start, pi renormalised: did it rise?
                    total = 0.0
                    for c in range(m):
                        total += pi[c, t]
                    normalised = loss[t] + np.log(total)
                    if normalised > previous_loss[t] + 1e-12 * abs(previous_loss[t]):
                        lane_increases[t] += 1
                    previous_loss[t] = normalised
                if gd:
                    for c in range(m):
                        moved[c] = pi[c, t] - step * (-z[c, t])
                    _project_to_simplex(moved, new_pi, scratch)
                    for c in range(m):
                        for j in range(D):
                            u = mu[c, j, t]
                            inner = ((s1[c, j, t] / u if u > 0.0 else 0.0)
                                     - ((z[c, t] - s1[c, j, t]) / (1.0 - u) if u < 1.0 else 0.0))
                            inner += extra[c, j, t]
                            gradient = -pi[c, t] * inner if pi[c, t] > 0.0 else 0.0  # no 0 x inf
                            new_mu[c, j] = min(max(u - step * gradient, 0.0), 1.0)
                else:
                    for c in range(m):
                        new_pi[c] = partial_pi[c, t] if authors else pi[c, t] * z[c, t]
                        for j in range(D):
                            if in_place:
                                new_mu[c, j] = start_mu[c, j, t]  # the means the passes above computed
                                continue
                            value = s1[c, j, t] / z[c, t] if z[c, t] > 0.0 else mu[c, j, t]
                            new_mu[c, j] = min(max(value, 0.0), 1.0)
                change_pi = 0.0
                change_mu = 0.0
                for c in range(m):
                    change_pi += (new_pi[c] - pi[c, t]) ** 2
                    pi[c, t] = new_pi[c]
                    for j in range(D):
                        change_mu += (new_mu[c, j] - mu[c, j, t]) ** 2
                        mu[c, j, t] = new_mu[c, j]
                if np.sqrt(change_pi) < tol and np.sqrt(change_mu) < tol:
                    status[lane_trial[t]] = CONVERGED
                    iterations[lane_trial[t]] = iteration
                    leaving = True
            if not leaving:
                t += 1
                continue
            # Store the trial and give its lane to the last active one.
            trial = lane_trial[t]
            increases[trial] = lane_increases[t]
            previous_out[trial] = previous_loss[t]
            for c in range(m):
                pi_out[trial, c] = pi[c, t]
                for j in range(D):
                    mu_out[trial, c, j] = mu[c, j, t]
            last = n - 1
            lane_trial[t] = lane_trial[last]
            impossible[t] = impossible[last]
            loss[t], previous_loss[t], lane_increases[t] = loss[last], previous_loss[last], lane_increases[last]
            for c in range(m):
                pi[c, t] = pi[c, last]
                z[c, t] = z[c, last]
                partial_pi[c, t] = partial_pi[c, last]
                for j in range(D):
                    mu[c, j, t] = mu[c, j, last]
                    s1[c, j, t] = s1[c, j, last]
                    extra[c, j, t] = extra[c, j, last]
                    if in_place:
                        start_mu[c, j, t] = start_mu[c, j, last]
            n -= 1
    for t in range(n):  # capped trials
        trial = lane_trial[t]
        increases[trial] = lane_increases[t]
        previous_out[trial] = previous_loss[t]
        for c in range(m):
            pi_out[trial, c] = pi[c, t]
            for j in range(D):
                mu_out[trial, c, j] = mu[c, j, t]
    return pi_out, mu_out, iterations, status, touched, increases, previous_out
