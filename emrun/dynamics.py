"""Studies of means-only Gaussian mixtures learning N(0, I_d) (``experiment: dynamics``): paper B's
gradient EM (Figures 1 and 2) and paper C's EM with means tied to a simplex.

A batch is one (cell, truth) of the config, as everywhere: m is the number of components (n in
paper B, k in paper C), D the dimension d, and the truth index an independent replicate (its own
weights, initial points or sample). Rows are tidy: one per (run, series, checkpoint) for
trajectories, one per run for end points. Every row records the estimator of the population
expectations. The mathematics is in :mod:`emrun.models.gaussian_means`; each study is a function
(values, spec) -> rows, registered with its report section and typed options in
:mod:`emrun.kinds.dynamics`.
"""

from __future__ import annotations

import numpy as np

from emrun import seeds
from emrun.models import gaussian_means as gm

K_MEANS_RADIUS_3 = float(np.sqrt(np.pi / 2) * np.sin(np.pi / 3) / (np.pi / 3))  # 1.0365: Lloyd's simplex, k = 3
PAPER_B_WEIGHTS = [[1 / 3, 1 / 3, 1 / 3], [1 / 6, 1 / 3, 1 / 2], [1 / 20, 1 / 5, 3 / 4]]  # Figure 1 (right)

def bytes_per_trial(values: dict, m: int, D: int) -> int:
    """Memory of one trial's arrays, in bytes: about five float64 [m, P] arrays (logits, posterior,
    weighted posterior) at P nodes. Quadrature integrates in the span of the means (rank at most
    min(m, D); one axis at Theorem 7's initialisation) and refuses rules above MAX_NODES."""
    estimator = values["estimator"]
    if estimator["kind"] == "quadrature":
        rank = 1 if values["study"] == "gradnorm" else min(m, D)
        nodes = min(estimator["size"] ** rank, gm.MAX_NODES)
    else:
        nodes = estimator["size"]
    return 8 * 5 * m * nodes


def checkpoints(iterations: int, count: int) -> np.ndarray:
    """0, 1, ..., and log-spaced iterations up to ``iterations`` (about ``count`` of them)."""
    return np.unique(np.concatenate([[0], np.round(np.logspace(0, np.log10(iterations), count)).astype(int)]))


def follow(update: str, pi: np.ndarray, params: np.ndarray, expectations: gm.Expectations, step: float,
           iterations: int, record_at: np.ndarray | None, R_powers: np.ndarray | None = None,
           tol: float | None = None, finer: gm.Expectations | None = None,
           ) -> tuple[list[dict], np.ndarray, np.ndarray, np.ndarray]:
    """Run every trial for ``iterations`` steps (or until ||grad L|| < tol). Returns the records at
    ``record_at`` (None: every iteration) as dicts of [T] arrays, the final parameters, the
    iteration each trial stopped at and whether it met the tolerance. With ``finer``, each record
    also holds L under that estimator (``kl_check``): how far the estimator's L is from a finer one's."""
    T = len(pi)
    records, stopped, converged = [], np.full(T, iterations), np.zeros(T, dtype=bool)
    wanted = set(range(iterations + 1)) if record_at is None else set(int(t) for t in record_at)
    for t in range(iterations + 1):
        mu = params if R_powers is None else gm.tied_means(params, R_powers)
        recorded = t in wanted or t == iterations
        new, loss, grad = gm.iterate(update, pi, params, expectations.nodes(mu, t), step, R_powers,
                                     with_loss=recorded or tol is not None)  # L is only read where recorded
        grad_norm = np.sqrt((grad.reshape(T, -1) ** 2).sum(axis=1))
        done_now = (grad_norm < tol) & ~converged if tol is not None else np.zeros(T, dtype=bool)
        if recorded or done_now.any():
            records.append({"iteration": t, "kl": loss, "distance": gm.parametric_distance(pi, mu),
                            "grad_norm": grad_norm, "mu_max": np.sqrt((mu**2).sum(axis=2)).max(axis=1),
                            "active": ~converged})
            if finer is not None:
                records[-1]["kl_check"] = gm.kl(pi, mu, finer.nodes(mu, t))
        stopped[done_now], converged[done_now] = t, True
        if converged.all() or t == iterations:
            break
        params = np.where((converged[:, None, None] if params.ndim == 3 else converged[:, None]), params, new)
    return records, params, stopped, converged


def _trajectory_rows(records: list[dict], labels: list[dict]) -> list[dict]:
    """One row per (trial, recorded iteration); ``labels`` holds each trial's identifying columns."""
    rows = []
    for record in records:
        for i, label in enumerate(labels):
            if record["active"][i]:
                rows.append({**label, "iteration": record["iteration"],
                             **{q: float(record[q][i]) for q in ("kl", "distance", "grad_norm", "mu_max", "kl_check")
                                if q in record}})
    return rows


def _normal_inits(values: dict, spec, runs: int) -> np.ndarray:
    """Paper B's (inferred) initialisation: mu_i(0) ~ N(0, I_d), one draw per run: [runs, n, d]."""
    m, D, t = spec.cell.m, spec.cell.D, spec.truth_index
    return np.array([seeds.generator(values["seed"], seeds.init_key(m, D, t, r)).standard_normal((m, D))
                     for r in range(runs)])


def _estimator(values: dict, spec) -> gm.Estimator:
    """The batch's estimator; a Monte Carlo one draws its samples from the seed tree's data key."""
    key = seeds.data_key(spec.cell.m, spec.cell.D, spec.truth_index, values["estimator"]["size"])
    entropy = int(seeds.generator(values["seed"], key).integers(2**62))
    return gm.Estimator(values["estimator"]["kind"], values["estimator"]["size"], seed=entropy)


def _finer(values: dict, D: int) -> gm.Expectations | None:
    """Quadrature with two more points per axis, to measure the estimator's own error in L."""
    estimator = values["estimator"]
    if estimator["kind"] != "quadrature":
        return None
    return gm.Expectations(gm.Estimator("quadrature", estimator["size"] + 2), D, factorised=True)


def _weight_table(options: dict, m: int) -> list[list[float]]:
    """options.weights, each of which must have one entry per component (the grid's m)."""
    if any(len(w) != m for w in options["weights"]):
        raise ValueError(f"options.weights must all have m = {m} entries (one per component)")
    return options["weights"]


UPDATES = {"gd": "gradient", "em": "em"}  # grid.algorithm -> the update of gm.iterate (gradient EM or the M-step)


def _update(spec) -> tuple[str, float]:
    update = UPDATES[spec.cell.algorithm]
    return (update, spec.cell.step) if update == "gradient" else (update, 1.0)


# --- paper B --------------------------------------------------------------------------------------
# The trajectory studies (rates, weights) read L where it is 1e-8 or more, so the factorised
# quadrature's last-bits difference (~1e-15 in L, tested to 1e-13: emrun.models.gaussian_kernels)
# never shows, and it makes them several times faster. gradnorm's trap count starts at a saddle and paper C's studies
# follow ln L down to the float64 floor: they keep the node-by-node sum.

def rates(values: dict, spec) -> list[dict]:
    """Figure 1 (left, middle): L and D along gradient EM, weights ~ Dirichlet(1) fixed per truth."""
    options, runs = values["options"], values["runs"][spec.cell.algorithm]  # the cell's update's runs
    m, D = spec.cell.m, spec.cell.D
    weights = seeds.generator(values["seed"], seeds.truth_key(m, D, spec.truth_index)).dirichlet(np.ones(m))
    pi = np.tile(weights, (runs, 1))
    update, step = _update(spec)
    records, *_ = follow(update, pi, _normal_inits(values, spec, runs),
                         gm.Expectations(_estimator(values, spec), D, factorised=True),
                         step, options["iterations"], checkpoints(options["iterations"], options["checkpoints"]),
                         finer=_finer(values, D))
    labels = [{"run_index": r, "series": f"n={m}", "weights": weights.tolist()} for r in range(runs)]
    return _trajectory_rows(records, labels)


def weights(values: dict, spec) -> list[dict]:
    """Figure 1 (right): the same initial means under each weight vector (paired runs)."""
    options, runs = values["options"], values["runs"][spec.cell.algorithm]  # the cell's update's runs
    m, D = spec.cell.m, spec.cell.D
    table = _weight_table(options, m)
    inits = _normal_inits(values, spec, runs)
    pi = np.repeat(np.array(table), runs, axis=0)
    mu0 = np.tile(inits, (len(table), 1, 1))
    update, step = _update(spec)
    records, *_ = follow(update, pi, mu0, gm.Expectations(_estimator(values, spec), D, factorised=True), step,
                         options["iterations"],
                         checkpoints(options["iterations"], options["checkpoints"]), finer=_finer(values, D))
    labels = [{"run_index": r, "series": "(" + ", ".join(f"{w:.3g}" for w in table[j]) + ")", "weights": table[j]}
              for j in range(len(table)) for r in range(runs)]
    return _trajectory_rows(records, labels)


def theorem7_means(m: int, D: int, scale: float) -> np.ndarray:
    """Theorem 7's bad initialisation: mu_1 = c sqrt(d) e_1, mu_2 = -mu_1, the rest 0: [1, m, D]."""
    mu = np.zeros((1, m, D))
    mu[0, 0, 0], mu[0, 1, 0] = scale * np.sqrt(D), -scale * np.sqrt(D)
    return mu


def gradnorm(values: dict, spec) -> list[dict]:
    """Figure 2 (left): ||grad L|| at Theorem 7's initialisation, and how long gradient EM stays
    trapped there (steps until the outer means' norm halves), for D up to options.trap_max_D."""
    options = values["options"]
    m, D = spec.cell.m, spec.cell.D
    pi = np.full((1, m), 1.0 / m)
    mu0 = theorem7_means(m, D, options["scale"])
    expectations = gm.Expectations(_estimator(values, spec), D)
    grad, loss = gm.gradient(pi, mu0, expectations.nodes(mu0))
    norms = np.sqrt((grad[0] ** 2).sum(axis=1))
    row = {"run_index": 0, "series": f"n={m}", "iteration": 0, "kl": float(loss[0]),
           "grad_norm": float(np.sqrt((norms**2).sum())), "grad_outer": float(norms[0]),
           "grad_inner_relative": float(norms[2:].max() / norms[0]) if m > 2 else 0.0,
           "grad_off_axis_relative": float(np.abs(grad[0, :2, 1:]).max() / norms[0]) if D > 1 else 0.0,
           "trap_steps": None, "trap_status": "not run"}
    if D <= options["trap_max_D"]:
        _, step = _update(spec)
        mu, start = mu0.copy(), options["scale"] * np.sqrt(D)
        for t in range(1, options["trap_cap"] + 1):
            mu = mu - step * gm.gradient(pi, mu, expectations.nodes(mu))[0]
            if np.linalg.norm(mu[0, 0]) < start / 2:
                row["trap_steps"], row["trap_status"] = t, "escaped"
                break
        else:
            row["trap_steps"], row["trap_status"] = options["trap_cap"], "capped"
    return [row]


def _nested_samples(values: dict, spec, largest: int) -> np.ndarray:
    """One N(0, I_d) sample of the largest size per truth; smaller sizes are its prefixes (the same
    seed across sizes, so the error's trend in N is not masked by sample-to-sample noise)."""
    rng = seeds.generator(values["seed"], seeds.data_key(spec.cell.m, spec.cell.D, spec.truth_index, largest))
    return rng.standard_normal((largest, spec.cell.D))


def statrate(values: dict, spec) -> list[dict]:
    """Figure 2 (right): sample-based gradient EM (or EM) run to a stationary point on N points,
    equal weights; the error there (D and max ||mu_i||) for each N, the same initial means."""
    options, m, D = values["options"], spec.cell.m, spec.cell.D
    points = _nested_samples(values, spec, max(options["samples"]))
    mu0 = _normal_inits(values, spec, 1)
    pi = np.full((1, m), 1.0 / m)
    update, step = _update(spec)
    rows = []
    for n_samples in options["samples"]:
        expectations = gm.Expectations(gm.Estimator("sample", n_samples), D, points[:n_samples])
        records, mu, stopped, converged = follow(update, pi, mu0, expectations, step, options["max_iter"], np.array([]),
                                                 tol=options["tol"])
        last = records[-1]
        rows.append({"run_index": 0, "series": f"N={n_samples}", "n_samples": n_samples, "iteration": int(stopped[0]),
                     "status": "converged" if converged[0] else "capped", "kl": float(last["kl"][0]),
                     "distance": float(gm.parametric_distance(pi, mu)[0]), "grad_norm": float(last["grad_norm"][0]),
                     "mu_max": float(np.sqrt((mu[0] ** 2).sum(axis=1)).max())})
    return rows


# --- paper C ------------------------------------------------------------------------------------

def simplex_population(values: dict, spec) -> list[dict]:
    """Population EM on theta (means R^j theta) from theta_0 = radius e_1, for each weight vector and
    radius; with options.free_means, gradient EM on free means from the same simplex beside it."""
    options, k, D = values["options"], spec.cell.m, spec.cell.D
    table = _weight_table(options, k)
    R_powers = gm.powers(gm.rotation(k, D), k)
    combos = [(w, r) for w in table for r in options["radii"]]
    pi = np.array([w for w, _ in combos])
    theta0 = np.zeros((len(combos), D))
    theta0[:, 0] = [r for _, r in combos]
    expectations = gm.Expectations(_estimator(values, spec), D)
    records, *_ = follow("em", pi, theta0, expectations, 1.0, options["iterations"], None, R_powers=R_powers)

    def label(w, r, model):
        return {"run_index": 0, "series": model, "weights": list(w), "radius": r, "dft_min": gm.weight_dft_min(np.array(w))}

    rows = _trajectory_rows(records, [label(w, r, "simplex EM") for w, r in combos])
    if options["free_means"]:
        free, *_ = follow("gradient", pi, gm.tied_means(theta0, R_powers), expectations, options["free_step"],
                          options["iterations"], None)
        rows += _trajectory_rows(free, [label(w, r, f"free gradient EM (step {options['free_step']:g})")
                                        for w, r in combos])
    return rows


def simplex_samples(values: dict, spec) -> list[dict]:
    """Sample EM on theta from the k-means radius, for each weight vector and sample size: the
    distance ||theta_hat|| of the stationary point from the truth's theta = 0."""
    options, k, D = values["options"], spec.cell.m, spec.cell.D
    R_powers = gm.powers(gm.rotation(k, D), k)
    pi = np.array(options["weights"])
    points = _nested_samples(values, spec, max(options["samples"]))
    theta0 = np.zeros((len(pi), D))
    theta0[:, 0] = options["radius"]
    rows = []
    for n_samples in options["samples"]:
        expectations = gm.Expectations(gm.Estimator("sample", n_samples), D, points[:n_samples])
        records, theta, stopped, converged = follow("em", pi, theta0, expectations, 1.0, options["max_iter"],
                                                    np.array([]), R_powers=R_powers, tol=options["tol"])
        for i, w in enumerate(options["weights"]):
            rows.append({"run_index": 0, "series": f"N={n_samples}", "n_samples": n_samples, "weights": list(w),
                         "dft_min": gm.weight_dft_min(np.array(w)), "iteration": int(stopped[i]),
                         "status": "converged" if converged[i] else "capped",
                         "theta_norm": float(np.linalg.norm(theta[i]))})
    return rows


def lloyd_radius(k: int) -> float | None:
    """Paper C's Proposition 1 in closed form where we have it: the centroid radius Lloyd's algorithm
    reaches on N(0, I) (k = 2: E|x_1| = sqrt(2 / pi); k = 3: a 120-degree sector's centroid)."""
    return {2: float(np.sqrt(2 / np.pi)), 3: K_MEANS_RADIUS_3}.get(k)


def lloyd(values: dict, spec) -> list[dict]:
    """Lloyd's algorithm (scikit-learn, k-means++ start) on N(0, I_d) points: the centroids' norms,
    pairwise distances and mean, beside the closed-form radius."""
    from sklearn.cluster import KMeans

    options, k, D = values["options"], spec.cell.m, spec.cell.D
    size = values["estimator"]["size"]
    rng = seeds.generator(values["seed"], seeds.data_key(k, D, spec.truth_index, size))
    points = rng.standard_normal((size, D))
    fit = KMeans(n_clusters=k, n_init=1, max_iter=options["max_iter"], tol=0.0, algorithm="lloyd",
                 random_state=int(rng.integers(2**31 - 1))).fit(points)
    centres = fit.cluster_centers_
    norms = np.linalg.norm(centres, axis=1)
    pairs = [np.linalg.norm(centres[i] - centres[j]) for i in range(k) for j in range(i + 1, k)]
    return [{"run_index": 0, "series": f"k={k}, d={D}", "iteration": int(fit.n_iter_), "n_samples": size,
             "norm_mean": float(norms.mean()), "norm_min": float(norms.min()), "norm_max": float(norms.max()),
             "pair_distance_cv": float(np.std(pairs) / np.mean(pairs)),
             "centroid_mean_norm": float(np.linalg.norm(centres.mean(0))),
             "closed_form_radius": lloyd_radius(k)}]
