"""Reports of paper B's studies (Xu, Fazel & Du 2024, gradient EM on over-parameterised GMMs),
from the stored rows of :mod:`emrun.dynamics` only. Pass criteria: docs/protocols.md, "Papers B and C",
sections 1-4 (ours where the paper gives none)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from emrun import files
from emrun.report import ReportResult, companions
from emrun.report.common import provenance_section, save_figure, verdict_section
from emrun.report.verdicts import (
    REPLICATE_BOOTSTRAP,
    Verdict,
    band_verdict,
    linear_fit,
    loglog_slope,
    replicate_slope_interval,
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


def _number(value: float, spec: str = ".2f") -> str:
    return "n/a" if pd.isna(value) else format(value, spec)


def _estimator_verdict(rows: pd.DataFrame) -> list[Verdict]:
    """How far the quadrature's L is from a rule with two more points per axis, at every checkpoint;
    for fresh Monte Carlo, how its noise compares with the smallest L it reports."""
    if rows["estimator"].iloc[0] == "fresh_mc":
        size, smallest = int(rows["estimator_size"].iloc[0]), rows["kl"].abs().min()
        noise = np.sqrt(2 * smallest / size)  # std of a Monte Carlo mean of the log-ratio at small L
        return [Verdict.judged(f"The estimator ({rows['estimator'].iloc[0]}, {size:,} points) resolves the smallest L it "
                               "reports", bool(noise < 0.1 * smallest),
                               f"smallest |L| {smallest:.2e}, standard error there about {noise:.1e}.",
                               "the Monte Carlo standard error sqrt(2 L / N) at the smallest |L| reported is below 10% of it")]
    if "kl_check" not in rows or rows["kl_check"].isna().all():
        return []
    relative = ((rows["kl"] - rows["kl_check"]).abs() / rows["kl_check"].abs()).max()
    size = int(rows["estimator_size"].iloc[0])
    return [Verdict.judged("The estimator is accurate enough for these slopes", bool(relative < 0.01),
                           f"largest relative difference {relative:.1e} over {len(rows)} checkpoints.",
                           f"L from {size}-point Gauss-Hermite is within 1% of the {size + 2}-point rule at every checkpoint")]


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
            verdicts.append(Verdict.untestable(f"n = {m}: L and D converge sub-linearly",
                                               f"no slope can be fitted for {draws}; L at t = {T}: "
                                               f"{part['L_T'].iloc[0]:.3g}.",
                                               "the criteria of the bound and sub-linear claims (docs/protocols.md, "
                                               "2.6), on the fitted slopes"))
            continue
        every = unmeasured.empty  # a verdict holds only if every draw could be measured
        part = part[part["measurable"]]
        verdicts += [
            Verdict.judged(f"n = {m}: L and D decrease to 0, L at least as fast as Theorem 2's O(1/sqrt(t)) bound",
                           every and bool(part["bounded"].all()),
                           f"holds for {int(part['bounded'].sum())} of {draws}; at t = {T}: L {part['L_T'].min():.3g} to "
                           f"{part['L_T'].max():.3g}; slopes of L {part['slope_L'].min():.2f} to {part['slope_L'].max():.2f}, "
                           f"of D {part['slope_D'].min():.2f} to {part['slope_D'].max():.2f}.",
                           "for every draw: over [T/10, T] the slope of ln L against ln t is at most -0.5, that of "
                           "ln D at most -0.4, and L(T) < L(0)"),
            Verdict.judged(f"n = {m}: the convergence is sub-linear, not exponential",
                           every and bool(part["sublinear"].all()),
                    f"holds for {int(part['sublinear'].sum())} of {draws}; log-log slopes {part['slope_mid'].median():.2f} then "
                    f"{part['slope_L'].median():.2f} (medians); d ln L/dt falls by {part['rate_ratio'].min():.1f}x to "
                    f"{part['rate_ratio'].max():.1f}x (an exponential rate would give 1).",
                           "for every draw: L falls in both windows, with a log-log slope below -0.1 over [T/10, T] "
                           "(not a plateau), and d ln L/dt is at least 3 times smaller over [T/10, T] than over "
                           "[T/100, T/10] (an exponential rate keeps it constant)"),
        ]
    verdicts += _estimator_verdict(rows)
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
    late = median[median.index >= 300]
    ordered = bool((late.diff(axis=1).iloc[:, 1:] > 0).all().all())
    verdicts_estimator = _estimator_verdict(rows)
    ratio = float(median[order[-1]].iloc[-1] / median[order[0]].iloc[-1])
    verdicts = [Verdict.judged("More evenly distributed weights converge faster", ordered and ratio >= 3,
                               f"ordered at {int((late.diff(axis=1).iloc[:, 1:] > 0).all(axis=1).sum())} of {len(late)} "
                               f"checkpoints; at t = {T}: " + ", ".join(f"{s} {median[s].iloc[-1]:.3g}" for s in order)
                               + f" (ratio {ratio:.1f}).",
                               "the median L over runs is ordered by evenness (most even lowest) at every checkpoint "
                               "t >= 300, and the least even is at least 3 times the most even at t = T"),
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
        verdicts.append(Verdict.judged(
            f"n = {m}: ||grad L(mu(0))|| decreases exponentially in d, and the gradients of mu_3..mu_n vanish",
            bool(-0.05 <= slope - predicted <= 0.05 and r2 > 0.99 and part["grad_norm"].is_monotonic_decreasing
                 and inner < 1e-14),
            f"slope {slope:.3f} per unit d (R² {r2:.4f}); {part['grad_norm'].iloc[0]:.3g} at d = {part['D'].iloc[0]} to "
            f"{part['grad_norm'].iloc[-1]:.3g} at d = {part['D'].iloc[-1]}; largest inner gradient {inner:.1e}.",
            f"||grad L|| falls at every d; for d >= 8, ln ||grad L|| is linear in d (R² > 0.99) with slope in "
            f"[{predicted - 0.05:.2f}, {predicted + 0.05:.2f}] around -c^2/8 = {predicted:.2f}; the gradients of "
            "mu_3..mu_n are below 1e-14 (rounding of O(1) terms)"))
        axes[0].semilogy(part["D"], part["grad_norm"], "o-", ms=3, label=f"n = {m}")
        trapped = part[part["trap_status"] == "escaped"]
        if (trapped["D"] >= 8).sum() >= 3:  # the slope is only asymptotic in d: fit d >= 8 or not at all
            trap_slope, trap_r2 = linear_fit(trapped[trapped["D"] >= 8]["D"], np.log(trapped[trapped["D"] >= 8]["trap_steps"]))
            verdicts.append(Verdict.judged(f"n = {m}: gradient EM stays trapped for exp(Omega(d)) steps (Theorem 7)",
                                           bool(0.35 <= trap_slope <= 0.6),
                                    f"slope {trap_slope:.3f} (R² {trap_r2:.3f}); {int(trapped['trap_steps'].iloc[0])} steps at "
                                    f"d = {trapped['D'].iloc[0]}, {int(trapped['trap_steps'].iloc[-1])} at "
                                    f"d = {trapped['D'].iloc[-1]}; capped: {int((part['trap_status'] == 'capped').sum())}.",
                                           "the least-squares slope of ln(steps until ||mu_1|| halves) against d, over "
                                           "d >= 8, is in [0.35, 0.6] (0.5 asymptotically)"))
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
    method = ("sample EM (the full M-step for the means: the stationary points of gradient EM)"
              if (rows["algorithm"] == "em").all() else "sample gradient EM")
    low, high = replicate_slope_interval(converged, "n_samples", "root_distance")
    claim = f"The error of {method} after convergence scales as N^(-1/4)"
    criterion = ("over >= 1.5 decades of N, the log-log slope of the mean sqrt(D) against N lies in [-0.40, -0.18] (clearly "
                 "shallower than -1/2), its whole 95% interval over replicates inside that band")
    evidence = (f"slope over {decades:.1f} decades (R² {r2:.3f}); max_i ||mu_i||: {slope_max:.3f}; D itself: {slope_D:.3f} "
                f"(expected [-0.75, -0.40]); {len(converged)} of {len(rows)} runs converged (the others are not in the fit).")
    verdicts = [band_verdict(claim, slope_root, low, high, (-0.40, -0.18), evidence, criterion, REPLICATE_BOOTSTRAP)
                if decades >= 1.5 else Verdict.untestable(claim, f"only {decades:.1f} decades of N.", criterion)]
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


END_POINT_COLUMNS = ["truth_index", "n_samples", "status", "distance", "iteration"]


def same_stationary_points(rows: pd.DataFrame, companion: tuple[str, pd.DataFrame]) -> tuple[list[str], list[Verdict]]:
    """Gradient EM and EM's M-step from the same initial point on the same sample: the same end point?"""
    name, other = companion
    keys = ["truth_index", "n_samples"]
    pairs = rows.merge(other, on=keys, suffixes=("", "_other"))
    pairs = pairs[(pairs["status"] == "converged") & (pairs["status_other"] == "converged")]
    if pairs.empty:
        return [], []
    gap = ((pairs["distance"] - pairs["distance_other"]).abs() / pairs["distance_other"]).max()
    ratio = (pairs["iteration"] / pairs["iteration_other"]).median()
    return ([f"Paired with `{name}` ({len(pairs)} runs on the same samples and initial points): largest relative "
             f"difference in D {gap:.1e}; median iteration ratio {ratio:.2f}.", ""],
            [Verdict.judged(f"Gradient EM and EM's M-step stop at the same stationary points (paired with {name})",
                            bool(gap < 1e-3), f"{len(pairs)} converged pairs; largest relative difference {gap:.1e}; "
                            f"this run took {ratio:.2f}x the iterations of the other (median).",
                            "on the same samples and initial points, D at the two end points agrees within 1e-3 relative "
                            "in every converged pair")])


def write(ctx, section, pair_updates: bool = False) -> ReportResult:
    """The report of one dynamics study (paper B or C): verdicts, numbers, figure, provenance.
    ``section`` (rows, folder, config) -> (lines, verdicts) is the study's; a study on samples is
    also paired with the same study run with the other update, when one is stored."""
    config, rows, folder = ctx.config, ctx.rows, ctx.folder
    lines, verdicts = section(rows, folder, config)
    if pair_updates:
        other = companions.other_dynamics_update(folder, ctx.root)
        if other is not None:
            end_points = ctx.summary_of(other, "end_points", lambda found: found[END_POINT_COLUMNS])
            if end_points is not None:
                more_lines, more_verdicts = same_stationary_points(rows, (other.name, end_points))
                lines, verdicts = lines + more_lines, verdicts + more_verdicts
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
    ctx.write_report(path, "\n".join(out))
    return ReportResult(path, verdicts)
