"""The UAI 2019 paper's theory checked on numbers: closed forms against the engine, the one-cluster
gap of Theorem 5.2, and EM's rotation of b towards mu* (eq. 4.7).

A theory config (``experiment: theory``, ``check: NAME``) is a grid of (m, D) cells with
``truths`` random configurations each; one batch is one (cell, truth), and its rows are tidy:
one row per (quantity, index) with the closed form, what the engine computes, and their relative
error. Each check is a function (values, spec, rng, options) -> rows, registered with its report
section and typed options in :mod:`emrun.kinds.theory`. Nothing here knows how batches are scheduled.
"""

from __future__ import annotations

import numpy as np

from emrun.algorithms import run_batch as run_algorithm
from emrun.closed_forms import bmm_lambda, bmm_lambda_update, bmm_z1_lambda, bmm_z1_products, escape_factor
from emrun.models import bernoulli, gaussian

_EPSILON = 1e-12  # pi_1 "near 0": the closed forms are limits as pi_1 -> 0


def one_cluster_gap(data: bernoulli.PatternSet) -> tuple[float, float]:
    """(l_1 - l*, KL(p* || prod_i p*(x_i))): the best one-cluster point's loss above the optimum,
    computed with the engine (a one-component mixture at the marginal means), and the KL divergence
    summed over the patterns."""
    xbar = data.mean
    one_cluster = float(bernoulli.loss(data, np.ones((1, 1)), xbar[None, None, :])[0])
    product = np.prod(np.where(data.patterns == 1, xbar, 1 - xbar), axis=1)
    kl = float(np.sum(data.weights * (np.log(data.weights) - np.log(product))))
    return one_cluster - data.entropy, kl


def row_keys(values, spec, quantity: str, index: int) -> dict:
    """The columns every theory-check row starts with: which config, batch, cell and quantity."""
    return {"config": values["name"], "batch_id": spec.batch_id, "check": values["check"], "m": spec.cell.m,
            "D": spec.cell.D, "truth_index": spec.truth_index, "quantity": quantity, "index": index}


def check_row(values, spec, quantity, index, closed, engine, **extra) -> dict:
    denominator = max(abs(closed), 1e-300)
    return {**row_keys(values, spec, quantity, index), "closed_form": float(closed), "engine": float(engine),
            "relative_error": abs(engine - closed) / denominator, **extra}


def closed_forms(values, spec, rng, options) -> list[dict]:
    """Eqs. 4.11, 4.12 and 4.14 against one EM step of the engine at pi_1 -> 0, mu_2 = xbar (BMM,
    population); eq. 4.4 against Z_1 on a 200,000-point sample (GMM, Monte Carlo)."""
    D = spec.cell.D
    true_pi, true_mu = bernoulli.random_mixture(2, D, rng)
    data = bernoulli.population_patterns(true_pi, true_mu)
    xbar = data.mean
    mu1 = rng.uniform(size=D)
    pi = np.array([[_EPSILON, 1 - _EPSILON]])
    new_pi, new_mu, _ = bernoulli.em_step(data, pi, np.stack([mu1, xbar])[None])
    z1_engine = new_pi[0, 0] / _EPSILON
    lam = bmm_lambda(true_mu, xbar, mu1)
    rows = [check_row(values, spec, "bmm_z1_eq_4_11", -1, bmm_z1_products(true_pi, true_mu, xbar, mu1), z1_engine),
            check_row(values, spec, "bmm_z1_eq_4_12", -1, bmm_z1_lambda(true_pi, lam), z1_engine)]
    lam_engine = bmm_lambda(true_mu, xbar, new_mu[0, 0])
    rows += [check_row(values, spec, "bmm_lambda_update_eq_4_14", i, closed, engine)
             for i, (closed, engine) in enumerate(zip(bmm_lambda_update(true_pi, true_mu, xbar, mu1), lam_engine,
                                                      strict=True))]
    # GMM: truth as in Figure 2 (centred), mu_2 at the population mean, b random.
    g_pi, g_mu = gaussian.random_mixture(2, D, rng)
    sample = gaussian.sample(g_pi, g_mu, 200_000, rng)
    b = rng.uniform(-1, 1, size=D) / np.sqrt(D)
    population_mean = g_pi @ g_mu
    _, gamma = gaussian.density_ratios(sample, np.array([[_EPSILON, 1 - _EPSILON]]),
                                  np.stack([population_mean + b, population_mean])[None])
    estimate, error = gamma[0, 0].mean(), gamma[0, 0].std() / np.sqrt(len(sample.weights))
    rows.append(check_row(values, spec, "gmm_z1_eq_4_4", -1, escape_factor(b, g_pi, g_mu), estimate,
                     standard_error=float(error)))
    return rows


def gap(values, spec, rng, options) -> list[dict]:
    """Theorems 5.1 and 5.2 on a random truth: the one-cluster gap l_1 - l* (positive when the
    features are dependent, zero for a truth whose features are independent), whether one-cluster
    points with Z_1 < 1 are local minima (every small perturbation raises the loss) and those with
    Z_1 > 1 are not; and for the paper's extreme truths (pi* = 1/2, mu*_1 = 1 - delta, mu*_2 = delta)
    the gap beside (D - 1) log 2."""
    D = spec.cell.D
    true_pi, true_mu = bernoulli.random_mixture(2, D, rng)
    data = bernoulli.population_patterns(true_pi, true_mu)
    gap, kl = one_cluster_gap(data)
    rows = [check_row(values, spec, "gap_random_truth", -1, kl, gap)]
    independent = bernoulli.population_patterns(true_pi, np.stack([true_mu[0], true_mu[0]]))  # one product law
    rows.append(check_row(values, spec, "gap_independent_truth", -1, 0.0, one_cluster_gap(independent)[0]))
    rows += _local_minimum_rows(values, spec, rng, data, true_pi, true_mu, options["perturbations"])
    if spec.truth_index == 0:
        for delta in options["deltas"]:
            extreme = bernoulli.population_patterns(np.array([0.5, 0.5]), np.array([[1 - delta] * D, [delta] * D]))
            gap, kl = one_cluster_gap(extreme)
            rows.append(check_row(values, spec, "gap_extreme_truth", -1, kl, gap, delta=delta,
                             limit=(D - 1) * np.log(2)))
    return rows


def _local_minimum_rows(values, spec, rng, data, true_pi, true_mu, count: int) -> list[dict]:
    """One start on each side of Z_1 = 1 (eq. 4.12; |Z_1 - 1| > 0.05): the one-cluster point
    (pi_1 = 0, mu_2 at the mean, mu_1 the start) and the smallest loss change over ``count`` random
    perturbations, up to 1e-4 in pi_1 and 1e-3 in the means (Theorem 5.1: all positive iff Z_1 < 1).
    Half the perturbations leave mu_2 at the mean: moving mu_2 only adds a second-order rise that
    can hide the first-order fall pi_1 (1 - Z_1) when Z_1 > 1, while both halves can reveal a fall."""
    xbar, D = data.mean, len(data.mean)
    rows = []
    for side, wanted in (("trap", lambda z: z < 0.95), ("escape", lambda z: z > 1.05)):
        for _ in range(2000):  # draw starts until one lies on this side (it exists for almost every truth)
            mu1 = rng.uniform(0.05, 0.95, size=D)
            z1 = bmm_z1_lambda(true_pi, bmm_lambda(true_mu, xbar, mu1))
            if wanted(z1):
                break
        else:
            continue
        pi0, mu0 = np.array([[0.0, 1.0]]), np.stack([mu1, xbar])[None]
        base = float(bernoulli.loss(data, pi0, mu0)[0])
        step_pi = rng.uniform(1e-5, 1e-4, size=count)
        pi = np.stack([step_pi, 1 - step_pi], axis=1)
        shift = rng.uniform(-1e-3, 1e-3, size=(count, 2, D))
        shift[: count // 2, 1] = 0.0
        mu = np.clip(mu0 + shift, 1e-6, 1 - 1e-6)
        change = bernoulli.loss(data, pi, mu) - base
        rows.append(check_row(values, spec, f"local_minimum_{side}", -1, z1, float(change.min()),
                         perturbations=count, rising=int((change > 0).sum())))
    return rows


def rotation(values, spec, rng, options) -> list[dict]:
    """Eq. 4.7: under EM near the one-cluster region, b = mu_1 - mu_2 rotates towards +mu* or -mu*
    (whichever side b.mu* starts on), so |cos(b, mu*)| increases."""
    D, steps = spec.cell.D, options["steps"]
    true_pi, true_mu = gaussian.random_mixture(2, D, rng)
    data = gaussian.sample(true_pi, true_mu, options["samples"], rng)
    mu_star = 0.5 * (true_mu[0] - true_mu[1])
    pi = np.array([[1e-4, 1 - 1e-4]])
    mu = np.stack([rng.uniform(-1, 1, size=D), data.mean])[None]
    rows, pi1 = [], float(pi[0, 0])
    for t in range(steps):
        b = mu[0, 0] - mu[0, 1]
        before = abs(b @ mu_star) / (np.linalg.norm(b) * np.linalg.norm(mu_star))
        pi, mu, _ = gaussian.em_step(data, pi, mu)
        b = mu[0, 0] - mu[0, 1]
        after = abs(b @ mu_star) / (np.linalg.norm(b) * np.linalg.norm(mu_star))
        rows.append(check_row(values, spec, "abs_cosine_b_mu_star", t, before, after, pi1_before=float(pi1), pi1=float(pi[0, 0])))
        pi1 = float(pi[0, 0])
    return rows


def _near_one_cluster(data, mu1: np.ndarray, epsilon: float):
    """Starts at pi_1 = epsilon, mu_2 = xbar, mu_1 as given ([T, D]): (pi [T, 2], mu [T, 2, D])."""
    count = len(mu1)
    pi = np.tile([epsilon, 1 - epsilon], (count, 1))
    return pi, np.stack([mu1, np.tile(data.mean, (count, 1))], axis=1)


def gd_trap(values, spec, rng, options) -> list[dict]:
    """Proposition 4.1 / Theorem 4.7: from pi_1 = epsilon, mu_2 = xbar and lambda where Z_1 < 1, GD
    drives pi_1 to 0 while EM escapes. Starts: mu_1 on a grid of (0,1)^2 for D = 2, else uniform
    draws; each start's lambda, Z_1 (eq. 4.12), and pi_1 after GD's and EM's iterations."""
    D = spec.cell.D
    true_pi, true_mu = bernoulli.random_mixture(2, D, rng)
    data = bernoulli.population_patterns(true_pi, true_mu)
    if D == 2:
        axis = (np.arange(options["grid"]) + 0.5) / options["grid"]
        mu1 = np.array([[a, b] for a in axis for b in axis])
    else:
        mu1 = rng.uniform(size=(options["starts"], D))
    epsilon = options["epsilon"]
    pi, mu = _near_one_cluster(data, mu1, epsilon)
    gd = run_algorithm(bernoulli, data, pi, mu, "gd", options["gd_iterations"], 1e-300, step=0.02)
    em = run_algorithm(bernoulli, data, pi, mu, "em", options["em_iterations"], 1e-300)
    rows = []
    for k in range(len(mu1)):
        lam = bmm_lambda(true_mu, data.mean, mu1[k])
        z1 = bmm_z1_lambda(true_pi, lam)
        rows.append(check_row(values, spec, "start", k, z1, gd.pi[k, 0], em_pi1=float(em.pi[k, 0]), epsilon=epsilon,
                         lambda_1=float(lam[0]), lambda_2=float(lam[1]) if D > 1 else 0.0,
                         in_trap=bool(z1 < 1), positive=bool(np.all(lam > 0) or np.all(lam < 0))))
    # One start in the trap region, traced, for the figure of pi_1 against the iteration.
    trapped = [k for k in range(len(mu1)) if rows[k]["in_trap"]]
    if trapped:
        k = trapped[len(trapped) // 2]
        for algorithm, iterations in (("gd", options["gd_iterations"]), ("em", options["em_iterations"])):
            # tol 0: the traced run takes every iteration. Stopping where an update changes nothing in
            # the last bit would make the trace's length depend on the CPU's BLAS kernels.
            traced = run_algorithm(bernoulli, data, pi[k:k + 1], mu[k:k + 1], algorithm, iterations, 0.0, step=0.02,
                                   record=("pi",), record_every=max(1, iterations // 100))
            rows += [check_row(values, spec, f"pi1_trajectory_{algorithm}", iteration, rows[k]["closed_form"],
                          float(recorded["pi"][0, 0])) for iteration, _, recorded in traced.trace]
    return rows


def bmm_escape(values, spec, rng, options) -> list[dict]:
    """Theorem 4.5 (m = D = 2): EM from pi_1 = epsilon, mu_2 = xbar and mu_1 uniform with lambda in
    the second or fourth quadrant; b = mu_1 - mu_2 is traced until lambda_1 lambda_2 > 0 (a
    positive region). Rows: each start's first iteration in a positive region (-1 if none) and, for
    a few starts, b's trajectory; the truth's xbar and sigma for the appendix's contours f and g."""
    true_pi, true_mu = bernoulli.random_mixture(2, 2, rng)
    data = bernoulli.population_patterns(true_pi, true_mu)
    xbar = data.mean
    draws = rng.uniform(size=(20 * options["starts"], 2))  # about half fall in the two quadrants
    lam = (true_mu[0] - true_mu[1]) * (draws - xbar) / (xbar * (1 - xbar))
    mu1 = draws[lam[:, 0] * lam[:, 1] < 0][:options["starts"]]
    pi, mu = _near_one_cluster(data, mu1, options["epsilon"])
    iterations = options["em_iterations"]
    traced = run_algorithm(bernoulli, data, pi, mu, "em", iterations, 1e-300, record=("mu",), record_every=1)
    first = np.full(len(mu1), -1)
    keep = set(range(min(len(mu1), options["trajectories"])))
    sigma = float((data.weights @ (data.patterns[:, 0] * data.patterns[:, 1]) - xbar[0] * xbar[1])
                  / (xbar[0] * (1 - xbar[0]) * xbar[1] * (1 - xbar[1])))
    rows = []
    for iteration, ids, recorded in traced.trace:
        b = recorded["mu"][:, 0] - recorded["mu"][:, 1]  # [k, 2]
        lam_now = (true_mu[0] - true_mu[1]) * b / (xbar * (1 - xbar))
        inside = (lam_now[:, 0] * lam_now[:, 1] > 0) & (first[ids] < 0)
        first[ids[inside]] = iteration
        for position, trial in enumerate(ids):
            if trial in keep:
                rows.append(check_row(values, spec, "b_trajectory", iteration, b[position, 0], b[position, 1], start=int(trial)))
    rows += [check_row(values, spec, "first_positive_iteration", k, iterations, first[k]) for k in range(len(mu1))]
    for row in rows:
        row.update(xbar_1=float(xbar[0]), xbar_2=float(xbar[1]), sigma=sigma)
    return rows


def kmeans_vs_em(values, spec, rng, options) -> list[dict]:
    """The lecture's k-means vs EM centres on its two synthetic sets (emrun.lecture)."""
    from emrun import lecture

    rows = []
    for index, name in enumerate(lecture.SETS):
        points = lecture.synthetic(name, rng)
        result = lecture.compare(points, int(rng.integers(2**31 - 1)))
        for method in ("full", "unit"):
            difference = float(np.abs(result[method] - result["kmeans"]).max())
            rows.append(check_row(values, spec, f"centre_difference_{method}", index, 0.0, difference, dataset=name))
        for method in ("kmeans", "full", "unit"):
            for c in range(2):
                rows.append(check_row(values, spec, f"centre_{method}", 2 * index + c, result[method][c, 0],
                                 result[method][c, 1], dataset=name))
        increases = np.diff(result["unit_losses"]) > 1e-12 * np.abs(result["unit_losses"][:-1])
        rows.append(check_row(values, spec, "unit_em_loss_increases", index, 0.0, float(increases.sum()), dataset=name))
        rows += [check_row(values, spec, "point", k, x, y, dataset=name, kmeans_label=int(a), full_label=int(b))
                 for k, ((x, y), a, b) in enumerate(zip(points, result["kmeans_labels"], result["full_labels"], strict=True))]
    return rows


# --- The same claims on the population of a Gaussian mixture (Gauss-Hermite rules) ------------------

def _two_rules(true_pi: np.ndarray, true_mu: np.ndarray, options: dict, basis: np.ndarray | None = None) -> tuple:
    """The population as two Gauss-Hermite rules, ``points`` and ``coarse_points`` per axis: the
    difference of what they give estimates the finer rule's error."""
    return tuple(gaussian.population(true_pi, true_mu, options[key], basis) for key in ("points", "coarse_points"))


def escape_population(values, spec, rng, options) -> list[dict]:
    """Result 3.1 and eqs. 2.9, 4.4 and 4.8 on the population: from pi_1 = epsilon, mu_2 at the
    mean (the paper's condition, from the first step) and mu_1 ~ U(-1,1)^D, EM and GD (step) for
    their numbers of steps. Rows: pi_1 at every iteration under the finer rule (``engine``) and the
    coarser (``pi1_coarse``), with eq. 4.4's Z_1 at b(t) (``closed_form``)."""
    D, epsilon = spec.cell.D, options["epsilon"]
    true_pi, true_mu = gaussian.random_mixture(2, D, rng)
    mu1 = rng.uniform(-1.0, 1.0, size=D)
    rows = []
    for algorithm, steps in (("em", options["em_steps"]), ("gd", options["gd_steps"])):
        traces = []
        for data in _two_rules(true_pi, true_mu, options):
            pi, mu = np.array([[epsilon, 1.0 - epsilon]]), np.stack([mu1, data.mean])[None]
            traces.append(run_algorithm(gaussian, data, pi, mu, algorithm, steps, 0.0,
                                        step=options["step"] if algorithm == "gd" else None, record=("pi", "mu")).trace)
        for (t, _, fine), (_, _, coarse) in zip(*traces, strict=True):
            b = fine["mu"][0, 0] - fine["mu"][0, 1]
            rows.append(check_row(values, spec, f"pi1_{algorithm}", t, escape_factor(b, true_pi, true_mu),
                                  fine["pi"][0, 0], pi1_coarse=float(coarse["pi"][0, 0]), step=options["step"],
                                  separation=float(np.linalg.norm(0.5 * (true_mu[0] - true_mu[1]))),
                                  points=options["points"], coarse_points=options["coarse_points"]))
    return rows


def rotation_population(values, spec, rng, options) -> list[dict]:
    """Eq. 4.7 on the population: EM from pi_1 = 1e-4, mu_1 ~ U(-1,1)^D, mu_2 at the mean, under
    two Gauss-Hermite rules laid in the span of mu* and mu_1 (EM's means stay there). Rows: |cos(b,
    mu*)| before and after each step under the finer rule, and the change under the coarser."""
    D = spec.cell.D
    true_pi, true_mu = gaussian.random_mixture(2, D, rng)
    mu_star = 0.5 * (true_mu[0] - true_mu[1])
    mu1 = rng.uniform(-1.0, 1.0, size=D)
    basis = np.linalg.qr(np.stack([mu_star, mu1]).T)[0].T[: min(2, D)]

    def cosines(data) -> tuple[np.ndarray, np.ndarray]:
        pi, mu = np.array([[1e-4, 1 - 1e-4]]), np.stack([mu1, data.mean])[None]
        trace = run_algorithm(gaussian, data, pi, mu, "em", options["steps"], 0.0, record=("pi", "mu")).trace
        b = np.array([recorded["mu"][0, 0] - recorded["mu"][0, 1] for _, _, recorded in trace])
        pi1 = np.array([recorded["pi"][0, 0] for _, _, recorded in trace])
        return np.abs(b @ mu_star) / (np.linalg.norm(b, axis=1) * np.linalg.norm(mu_star)), pi1

    (fine, pi1), (coarse, _) = (cosines(data) for data in _two_rules(true_pi, true_mu, options, basis))
    return [check_row(values, spec, "abs_cosine_b_mu_star", t, fine[t], fine[t + 1], pi1_before=float(pi1[t]),
                      pi1=float(pi1[t + 1]), change_coarse=float(coarse[t + 1] - coarse[t]),
                      points=options["points"], coarse_points=options["coarse_points"])
            for t in range(options["steps"])]
