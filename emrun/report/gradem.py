"""Reports of paper B's studies (Xu, Fazel & Du 2024, gradient EM on over-parameterised GMMs),
from the stored rows of :mod:`emrun.dynamics` only. Pass criteria: docs/protocols.md, "Papers B and C",
sections 1-4 (ours where the paper gives none)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from emrun import files
from emrun.criteria import xu2024 as xu
from emrun.report import ReportResult, companions
from emrun.report.common import provenance_section, save_figure, verdict_section
from emrun.report.verdicts import (
    REPLICATE_BOOTSTRAP,
    UNTESTABLE,
    Verdict,
    band_status,
    interval_text,
    linear_fit,
    loglog_slope,
    replicate_slope_interval,
    with_multiplicity,
)


def _window(part: pd.DataFrame, low: float, high: float) -> pd.DataFrame:
    return part[(part["iteration"] >= max(low, 1)) & (part["iteration"] <= high)]


def _rate_fits(part: pd.DataFrame, T: int) -> dict:
    """Slopes of one L(t), D(t) curve: log-log over [T/100, T/10] and [T/10, T]; d ln L/dt in both.
    A curve the estimator cannot resolve somewhere in those windows (L <= 0, or a fresh Monte Carlo
    standard error sqrt(2 L / N) above 10% of L) has no slopes: it is counted as not measurable."""
    late, middle = _window(part, T / 10, T), _window(part, T / 100, T / 10)
    windows = pd.concat([middle, late])["kl"]
    fits = {"L0": part["kl"].iloc[0], "L_T": part["kl"].iloc[-1], "D_T": part["distance"].iloc[-1],
            "nonpositive": int((windows <= 0).sum()), "unresolved": 0}
    if part["estimator"].iloc[0] == "fresh_mc":
        noise = np.sqrt(2 * windows.clip(lower=0) / int(part["estimator_size"].iloc[0]))
        fits["unresolved"] = int(((windows > 0) & (noise >= 0.1 * windows)).sum())
    fits["measurable"] = fits["nonpositive"] == 0 and fits["unresolved"] == 0
    if not fits["measurable"]:
        return {**fits, "slope_L": np.nan, "r2_L": np.nan, "slope_mid": np.nan, "slope_D": np.nan,
                "rate_ratio": np.nan, "bounded": False, "sublinear": False}
    slope_L, r2_L = loglog_slope(late["iteration"], late["kl"])
    # An exponential rate is constant in t; a power law's d ln L / dt falls like 1/t: compare the two windows.
    rate_mid, _ = linear_fit(middle["iteration"], np.log(middle["kl"]))
    rate_late, _ = linear_fit(late["iteration"], np.log(late["kl"]))
    fits.update({"slope_L": slope_L, "r2_L": r2_L, "slope_mid": loglog_slope(middle["iteration"], middle["kl"])[0],
                 "slope_D": loglog_slope(late["iteration"], late["distance"])[0], "rate_ratio": rate_mid / rate_late})
    # "At least as fast as the bound": no lower limit on the slopes (a faster decay satisfies it).
    fits["bounded"] = bool(slope_L <= -0.5 and fits["slope_D"] <= -0.4 and fits["L_T"] < fits["L0"])
    # Sub-linear, not exponential: L keeps falling (no plateau or floor: its late log-log slope is
    # below -0.1) while its rate d ln L/dt falls (an exponential keeps it constant).
    fits["sublinear"] = bool(rate_mid < 0 and rate_late < 0 and slope_L < -0.1 and fits["rate_ratio"] >= 3)
    return fits


def _bound(part: pd.DataFrame, rows: pd.DataFrame, config: dict, every: bool, draws: str, T: int, n: int) -> Verdict:
    """Theorem 2 bounds the level of L for a step size below its bound; where the runs' step is far
    above that bound (with any moderate constant), the bound says nothing about them: not testable,
    naming the hypothesis. The slopes are reported, and judged under the earlier versions."""
    eta, d = float(rows["step"].iloc[0]), int(rows["D"].iloc[0])
    smallest = min(min(w) for w in rows.drop_duplicates("truth_index")["weights"])
    # exp(-8 U(0)) <= 1 and (1/mu_max + mu_max)^2 >= 4: the theorem's step bound is at most C pi_min^2 / (4 n^2 d^2).
    ceiling = smallest**2 / (4 * n * n * d * d)
    slopes = (f"at t = {T}: L {part['L_T'].min():.3g} to {part['L_T'].max():.3g}; slopes of L {part['slope_L'].min():.2f} "
              f"to {part['slope_L'].max():.2f}, of D {part['slope_D'].min():.2f} to {part['slope_D'].max():.2f}")
    earlier = xu.BOUND.judged(every and bool(part["bounded"].all()), f"holds for {int(part['bounded'].sum())} of "
                              f"{draws}; {slopes}.", version=4, n=n)
    if eta <= ceiling:
        return xu.BOUND.judged(every and bool(part["bounded"].all()), f"holds for {int(part['bounded'].sum())} of "
                               f"{draws}; {slopes}.", n=n, alternatives=(earlier,))
    return xu.BOUND.untestable(
        f"Theorem 2 assumes a step size eta <= C exp(-8U(0)) pi_min^2 / (n^2 d^2 (1/mu_max(0) + mu_max(0))^2), at most "
        f"C x {ceiling:.1e} here (pi_min = {smallest:.2g}); the runs use eta = {eta:g}, {eta / ceiling:.1e} times that with "
        f"C = 1, and the paper gives neither C nor the constant of its rate's gamma, so its bound cannot be set against "
        f"these runs ({slopes}).", n=n, alternatives=(earlier,))


def _number(value: float, spec: str = ".2f") -> str:
    return "n/a" if pd.isna(value) else format(value, spec)


def _estimator_verdict(rows: pd.DataFrame, start: float) -> list[Verdict]:
    """How far the quadrature's L is from a rule with two more points per axis, at every checkpoint
    from ``start`` on (those the study's claims use); for fresh Monte Carlo, how its noise compares
    with the smallest L it reports."""
    if rows["estimator"].iloc[0] == "fresh_mc":
        size, smallest = int(rows["estimator_size"].iloc[0]), rows["kl"].abs().min()
        noise = np.sqrt(2 * smallest / size)  # std of a Monte Carlo mean of the log-ratio at small L
        return [xu.ESTIMATOR_MC.judged(bool(noise < 0.1 * smallest),
                                       f"smallest |L| {smallest:.2e}, standard error there about {noise:.1e}.",
                                       estimator=rows["estimator"].iloc[0], size=size)]
    if "kl_check" not in rows or rows["kl_check"].isna().all():
        return []
    errors = (rows["kl"] - rows["kl_check"]).abs() / rows["kl_check"].abs()
    used = errors[rows["iteration"] >= start]
    size = int(rows["estimator_size"].iloc[0])
    # Version 1 judged every checkpoint, those before the fit windows too.
    earlier = xu.ESTIMATOR_QUADRATURE.judged(bool(errors.max() < 0.01), f"largest relative difference {errors.max():.1e} "
                                             f"over all {len(errors)} checkpoints.", version=1, size=size, finer=size + 2)
    return [xu.ESTIMATOR_QUADRATURE.judged(bool(used.max() < 0.01),
                                           f"largest relative difference {used.max():.1e} over the {len(used)} checkpoints "
                                           f"from t = {start:g} ({errors.max():.1e} over all {len(errors)}).",
                                           size=size, finer=size + 2, start=start, alternatives=(earlier,))]


def rates(rows: pd.DataFrame, folder: Path, config: dict) -> tuple[list[str], list[Verdict]]:
    """Figure 1 left/middle: log-log slopes of L and D, and whether ln L is convex in t (per weight draw)."""
    T = config["options"]["iterations"]
    table, verdicts, fits = [], [], []
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for _index, ((m, draw), part) in enumerate(rows.groupby(["m", "truth_index"])):
        part = part.sort_values("iteration")
        fit = {"m": m, "draw": draw, **_rate_fits(part, T)}
        fits.append(fit)
        table.append(f"| {m} | {draw} | ({', '.join(f'{w:.3f}' for w in part['weights'].iloc[0])}) | {fit['L0']:.3g} | "
                     f"{fit['L_T']:.3g} | {fit['D_T']:.3g} | {_number(fit['slope_mid'])} | {_number(fit['slope_L'])} "
                     f"(R² {_number(fit['r2_L'], '.3f')}) | {_number(fit['slope_D'])} | {_number(fit['rate_ratio'], '.1f')} |")
        positive = part[part["iteration"] >= 1]  # t = 0 has no place on a log axis
        style = {"color": colours[sorted(rows["m"].unique()).index(m) % len(colours)], "lw": 1 if draw else 1.5,
                 "alpha": 1 if draw == 0 else 0.35, "label": f"n = {m}" if draw == 0 else None}
        axes[0].loglog(positive["iteration"], positive["kl"], **style)
        axes[1].loglog(positive["iteration"], positive["distance"], **style)
        axes[2].semilogy(part["iteration"], part["kl"], **style)
    fits = pd.DataFrame(fits)
    for m, part in fits.groupby("m"):
        draws = f"{len(part)} weight draw{'s' if len(part) > 1 else ''}"
        unmeasured = part[~part["measurable"]]
        if len(unmeasured):
            draws += (f" ({len(unmeasured)} not measurable: the estimator gave L <= 0 at "
                      f"{int(unmeasured['nonpositive'].sum())} checkpoints and a standard error above 10% of L at "
                      f"{int(unmeasured['unresolved'].sum())}: its noise is too large for a slope)")
        if unmeasured.shape[0] == len(part):
            why = f"no slope can be fitted for {draws}; L at t = {T}: {part['L_T'].iloc[0]:.3g}."
            verdicts += [xu.BOUND.untestable(why, n=int(m)), xu.SUBLINEAR_CLAIM.untestable(why, n=int(m))]
            continue
        every = unmeasured.empty  # a verdict holds only if every draw could be measured
        part = part[part["measurable"]]
        verdicts += [
            _bound(part, rows[rows["m"] == m], config, every, draws, T, int(m)),
            xu.SUBLINEAR_CLAIM.judged(every and bool(part["sublinear"].all()),
                    f"holds for {int(part['sublinear'].sum())} of {draws}; log-log slopes {part['slope_mid'].median():.2f} then "
                    f"{part['slope_L'].median():.2f} (medians); d ln L/dt falls by {part['rate_ratio'].min():.1f}x to "
                    f"{part['rate_ratio'].max():.1f}x (an exponential rate would give 1).", n=int(m)),
        ]
    verdicts += _estimator_verdict(rows, T / 100)
    anchor = rows[rows["iteration"] == rows["iteration"].max()]["kl"].max()
    ts = np.array([T / 100, T])
    axes[0].loglog(ts, anchor * 3 * np.sqrt(T / ts), "k--", lw=0.8, label="slope -1/2 (Theorem 2's bound)")
    for ax, (label, ylabel) in zip(axes, (("L = KL (log-log)", "L = KL(N(0, I) || p_mu)"),
                                          ("D = sum pi_i ||mu_i||^2 (log-log)", "D = sum pi_i ||mu_i||^2"),
                                          ("L against linear t (a line would be exponential)", "L (log scale)")),
                                   strict=False):
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("iteration t")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    lines = ["| n | draw | weights (Dirichlet) | L(0) | L(T) | D(T) | slope L [T/100, T/10] | slope L [T/10, T] | "
             "slope D [T/10, T] | d ln L/dt early / late |", "|---|---|---|---|---|---|---|---|---|---|", *table, ""]
    return lines + save_figure(fig, folder, "rates", "Paper B, Figure 1: gradient EM's loss L and distance D against the "
                               "iteration, one colour per n (faint: other weight draws)"), verdicts


def weights(rows: pd.DataFrame, folder: Path, config: dict) -> tuple[list[str], list[Verdict]]:
    """Figure 1 right: median L over runs per weight vector; the evenness ordering at every t >= 300."""
    T = config["options"]["iterations"]
    spread = rows.groupby("series")["weights"].first().apply(lambda w: float(np.std(w)))
    order = list(spread.sort_values().index)  # most even first
    median = rows.groupby(["iteration", "series"])["kl"].median().unstack()[order]
    late = median[median.index >= xu.EVEN_FROM]
    ordered = bool((late.diff(axis=1).iloc[:, 1:] > 0).all().all())
    verdicts_estimator = _estimator_verdict(rows, xu.EVEN_FROM)
    ratio = float(median[order[-1]].iloc[-1] / median[order[0]].iloc[-1])
    verdicts = [xu.EVENNESS.judged(ordered and ratio >= 3,
                               f"ordered at {int((late.diff(axis=1).iloc[:, 1:] > 0).all(axis=1).sum())} of {len(late)} "
                               f"checkpoints; at t = {T}: " + ", ".join(f"{s} {median[s].iloc[-1]:.3g}" for s in order)
                               + f" (ratio {ratio:.1f})."),
                *verdicts_estimator]
    fig, ax = plt.subplots(figsize=(6, 4))
    for series in order:
        part = rows[(rows["series"] == series) & (rows["iteration"] >= 1)].groupby("iteration")["kl"]
        t = part.median().index
        ax.loglog(t, part.median(), label=f"pi = {series}")
        ax.fill_between(t, part.min(), part.max(), alpha=0.2)
    ax.set_xlabel("iteration t")
    ax.set_ylabel("L (median of runs; band: min-max)")
    ax.legend(fontsize=7)
    lines = ["| t | " + " | ".join(order) + " |", "|---|" + "---|" * len(order)]
    for t in [t for t in (10, 100, 300, 1000, T) if t in median.index]:
        lines.append(f"| {t} | " + " | ".join(f"{median.loc[t, s]:.3g}" for s in order) + " |")
    return lines + [""] + save_figure(fig, folder, "weights", "Paper B, Figure 1 (right): median L against the iteration "
                                      "per weight vector (more even weights should be lower)"), verdicts


def gradnorm(rows: pd.DataFrame, folder: Path, config: dict) -> tuple[list[str], list[Verdict]]:
    """Figure 2 left: ln ||grad L|| linear in d with slope -c^2/8, and the trap time's growth."""
    c = config["options"]["scale"]
    predicted = -c * c / 8
    verdicts, table = [], []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for m, part in rows.groupby("m"):
        part = part.sort_values("D")
        fit = part[part["D"] >= 8]
        slope, r2 = linear_fit(fit["D"], np.log(fit["grad_norm"]))
        inner = (part["grad_inner_relative"] * part["grad_outer"]).max()
        verdicts.append(xu.GRADIENT.judged(
            bool(-0.05 <= slope - predicted <= 0.05 and r2 > 0.99 and part["grad_norm"].is_monotonic_decreasing
                 and inner < 1e-14),
            f"slope {slope:.3f} per unit d (R² {r2:.4f}); {part['grad_norm'].iloc[0]:.3g} at d = {part['D'].iloc[0]} to "
            f"{part['grad_norm'].iloc[-1]:.3g} at d = {part['D'].iloc[-1]}; largest inner gradient {inner:.1e}.",
            n=int(m), predicted=predicted, low=predicted - 0.05, high=predicted + 0.05))
        axes[0].semilogy(part["D"], part["grad_norm"], "o-", ms=3, label=f"n = {m}")
        trapped = part[part["trap_status"] == "escaped"]
        if (trapped["D"] >= 8).sum() < 3:  # the slope is only asymptotic in d: fit d >= 8 or not at all
            verdicts.append(xu.TRAPPED.untestable(f"{int((trapped['D'] >= 8).sum())} trapped runs with d >= 8 escaped "
                                                  "within the cap (a slope needs 3 or more).", n=int(m)))
        else:
            trap_slope, trap_r2 = linear_fit(trapped[trapped["D"] >= 8]["D"], np.log(trapped[trapped["D"] >= 8]["trap_steps"]))
            verdicts.append(xu.TRAPPED.judged(bool(0.35 <= trap_slope <= 0.6),
                                    f"slope {trap_slope:.3f} (R² {trap_r2:.3f}); {int(trapped['trap_steps'].iloc[0])} steps at "
                                    f"d = {trapped['D'].iloc[0]}, {int(trapped['trap_steps'].iloc[-1])} at "
                                    f"d = {trapped['D'].iloc[-1]}; capped: {int((part['trap_status'] == 'capped').sum())}.",
                                              n=int(m)))
            axes[1].semilogy(trapped["D"], trapped["trap_steps"], "o-", ms=3, label=f"n = {m}")
        for r in part.itertuples():
            table.append(f"| {m} | {r.D} | {r.grad_norm:.4g} | {r.grad_inner_relative * r.grad_outer:.1e} | "
                         f"{'' if pd.isna(r.trap_steps) else int(r.trap_steps)} |")
    d = np.array([8, rows["D"].max()])
    first = rows[(rows["m"] == rows["m"].min()) & (rows["D"] == 8)]["grad_norm"].iloc[0]
    axes[0].semilogy(d, first * np.exp(predicted * (d - 8)), "k--", lw=0.8, label=f"slope -c²/8 = {predicted:.2f}")
    axes[0].set(xlabel="dimension d", ylabel="||grad L(mu(0))||", title=f"Theorem 7 initialisation, c = {c:g}")
    axes[1].set(xlabel="dimension d", ylabel="steps until ||mu_1|| halves", title="trap time (eta = 0.7)")
    for ax in axes:
        ax.legend(fontsize=7)
    lines = ["| n | d | ‖∇L(μ(0))‖ | largest ‖∇_{μ_i} L‖, i ≥ 3 | trap steps |", "|---|---|---|---|---|", *table, ""]
    return save_figure(fig, folder, "gradnorm", "Paper B, Figure 2 (left): the gradient at Theorem 7's initialisation "
                       "and the trap time against the dimension d") + lines, verdicts


def statrate(rows: pd.DataFrame, folder: Path, config: dict) -> tuple[list[str], list[Verdict]]:
    """Figure 2 right: error of the stationary point of sample EM against N (converged runs only)."""
    rows = rows.assign(root_distance=np.sqrt(rows["distance"]))
    converged = rows[rows["status"] == "converged"]
    mean = converged.groupby("n_samples")[["root_distance", "mu_max", "distance"]].mean()
    slope_root, r2 = loglog_slope(mean.index, mean["root_distance"])
    slope_max, _ = loglog_slope(mean.index, mean["mu_max"])
    slope_D, _ = loglog_slope(mean.index, mean["distance"])
    decades = np.log10(mean.index.max() / mean.index.min())
    params = {"method": xu.statrate_method(sorted(rows["algorithm"].unique()))}
    verdicts = [_statistical_rate(converged, slope_root, slope_D, decades, params,
                                  f"{len(converged)} of {len(rows)} runs converged (the others are not in the fit); "
                                  f"max_i ||mu_i||: slope {slope_max:.3f}; R² of sqrt(D) {r2:.3f}.")]
    fig, ax = plt.subplots(figsize=(6, 4))
    for column, label in (("root_distance", "sqrt(D)"), ("mu_max", "max_i ||mu_i||")):
        ax.loglog(converged["n_samples"], converged[column], ".", alpha=0.3)
        ax.loglog(mean.index, mean[column], "o", label=f"{label}, mean over runs")
    power, log_scale = np.polyfit(np.log(mean.index), np.log(mean["root_distance"]), 1)
    n = np.array([mean.index.min(), mean.index.max()], float)
    ax.loglog(n, np.exp(log_scale) * n**power, "g-", label=f"fit to sqrt(D): slope {slope_root:.2f}")
    ax.loglog(n, mean["root_distance"].iloc[0] * (n / n[0]) ** -0.25, "r--", label="N^(-1/4)")
    ax.set(xlabel="sample size N", ylabel="parametric error after convergence")
    ax.legend(fontsize=7)
    lines = ["| N | runs converged | mean sqrt(D) | mean max ‖μ_i‖ | mean D | median iterations |", "|---|---|---|---|---|---|"]
    for N, part in rows.groupby("n_samples"):
        done = part[part["status"] == "converged"]
        lines.append(f"| {N} | {len(done)} of {len(part)} | {done['root_distance'].mean():.4f} | {done['mu_max'].mean():.4f} | "
                     f"{done['distance'].mean():.4g} | {part['iteration'].median():.0f} |")
    return lines + [""] + save_figure(fig, folder, "statrate", "Paper B, Figure 2 (right): sample EM's error after "
                                      "convergence against the sample size N (dots: runs)"), verdicts


def _statistical_rate(converged: pd.DataFrame, slope_root: float, slope_D: float, decades: float, params: dict,
                      notes: str) -> Verdict:
    """Paper B's N^(-1/4) on the two readings of its undefined "parametric error": its parametric
    distance D, and sqrt(D) (a norm, as in the rate it cites). Each reading is judged by the band
    rule; the verdict holds or fails only where both agree, and is not testable where they differ."""
    band = (-0.40, -0.18)
    if decades < 1.5:
        return xu.STATRATE.untestable(f"only {decades:.1f} decades of N.", **params)
    readings = {}
    for name, column, slope in (("sqrt(D)", "root_distance", slope_root), ("D", "distance", slope_D)):
        low, high = replicate_slope_interval(converged, "n_samples", column)
        strict = replicate_slope_interval(converged, "n_samples", column, level=0.99)
        readings[name] = (slope, low, high, band_status(low, high, band), band_status(*strict, band))
    text = "; ".join(f"on {name}: slope {s:.3f} {interval_text(lo, hi, '.3f')} ({st})" for name, (s, lo, hi, st, _) in
                     readings.items())
    agree = {r[3] for r in readings.values()}
    status = agree.pop() if len(agree) == 1 else UNTESTABLE
    why = "" if status != UNTESTABLE else (
        " The paper does not say which it plotted (its y-axis is 'parametric error'; its only defined parametric "
        "quantity is D, Figure 1), and the two readings differ.")
    strict = {r[4] for r in readings.values()}
    # Version 1 judged the point slope of sqrt(D), version 2 its interval (sqrt(D) alone).
    earlier = (xu.STATRATE.judged(bool(band[0] <= slope_root <= band[1]), f"slope of sqrt(D) {slope_root:.3f}.",
                                  version=1, **params),
               xu.STATRATE.verdict(readings["sqrt(D)"][3], f"{text.split(';')[0]}.", params, interval=REPLICATE_BOOTSTRAP,
                                   version=2))
    verdict = xu.STATRATE.verdict(status, f"{text}.{why} {notes}", params, interval=REPLICATE_BOOTSTRAP,
                                  alternatives=earlier)
    return with_multiplicity(verdict, "interval", strict.pop() if len(strict) == 1 else UNTESTABLE)


END_POINT_COLUMNS = ["truth_index", "n_samples", "status", "distance", "iteration"]


def same_stationary_points(rows: pd.DataFrame, companion: tuple[str, pd.DataFrame]) -> tuple[list[str], list[Verdict]]:
    """Gradient EM and EM's M-step from the same initial point on the same sample: the same end point?"""
    name, other = companion
    keys = ["truth_index", "n_samples"]
    pairs = rows.merge(other, on=keys, suffixes=("", "_other"))
    pairs = pairs[(pairs["status"] == "converged") & (pairs["status_other"] == "converged")]
    if pairs.empty:
        return [], [xu.SAME_POINTS.untestable(f"no converged run of `{name}` pairs with one of these.")]
    gap = ((pairs["distance"] - pairs["distance_other"]).abs() / pairs["distance_other"]).max()
    ratio = (pairs["iteration"] / pairs["iteration_other"]).median()
    return ([f"Paired with `{name}` ({len(pairs)} runs on the same samples and initial points): largest relative "
             f"difference in D {gap:.1e}; median iteration ratio {ratio:.2f}.", ""],
            [xu.SAME_POINTS.judged(bool(gap < 1e-3), f"Paired with `{name}`: {len(pairs)} converged pairs; largest "
                                   f"relative difference {gap:.1e}; this run took {ratio:.2f}x the iterations of the "
                                   "other (median).")])


def write(ctx, section, pair_updates: bool = False) -> ReportResult:
    """The report of one dynamics study (paper B or C): verdicts, numbers, figure, provenance.
    ``section`` (rows, folder, config) -> (lines, verdicts) is the study's; a study on samples is
    also paired with the same study run with the other update, when one is stored."""
    config, rows, folder = ctx.config, ctx.rows, ctx.folder
    lines, verdicts = section(rows, folder, config)
    if pair_updates:
        other = companions.other_dynamics_update(folder, ctx.root)
        end_points = None if other is None else ctx.summary_of(other, "end_points", lambda found: found[END_POINT_COLUMNS])
        if end_points is not None:
            more_lines, more_verdicts = same_stationary_points(rows, (other.name, end_points))
            lines, verdicts = lines + more_lines, verdicts + more_verdicts
        else:
            verdicts.append(xu.SAME_POINTS.untestable("no companion the config declares (companions:) holds the same "
                                                      "study run with the other update (or its end points)."))
    estimator = config["estimator"]
    out = [f"# {config['name']}: {config['description']}", "",
           f"Study `{config['study']}` of `emrun/dynamics.py`: components m = {config['grid']['m']}, dimension "
           f"d = {config['grid']['D']}, {config['grid']['algorithm']} (step {config['grid']['step']} where gradient EM), "
           f"{config['truths']} replicate(s) x {config['runs']['gd']} run(s), seed {config['seed']}; options "
           f"{config['options']}. Expectations: {estimator['kind']} of size {estimator['size']} (recorded in every row).",
           "", *verdict_section(verdicts), "## Numbers", "", *lines]
    out += provenance_section(ctx.manifest, [], ctx.command)
    numeric = rows.select_dtypes("number").columns.difference(["config_hash"])
    keys = [c for c in ("series", "m", "D", "n_samples") if c in rows]
    files.write_csv(rows.groupby(keys)[list(numeric.difference(keys))].median(), folder / "summary.csv", float_format="%.6g")
    path = folder / "report.md"
    ctx.write_report(path, out)
    return ReportResult(path, verdicts)
