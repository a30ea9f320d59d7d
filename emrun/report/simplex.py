"""Reports of paper C's studies (Assylbekov, Legg & Pak 2025: EM with means on a simplex), from the
stored rows of :mod:`emrun.dynamics` only. The paper's own settings are unknown; the predictions
and pass criteria are docs/protocols.md's reconstruction ("Papers B and C", section 6)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from emrun.criteria import simplex as paper
from emrun.report.common import save_figure
from emrun.report.verdicts import (
    REPLICATE_BOOTSTRAP,
    Verdict,
    band_status,
    band_verdict,
    linear_fit,
    loglog_slope,
    replicate_slope_interval,
)

KL_FLOOR = 1e-12  # below this, quadrature rounding (~1e-16) is a visible fraction of KL: no fits there
UNIFORM = paper.UNIFORM  # min |DFT(pi)|^2 below this: the DFT condition fails


def _weights_label(weights) -> str:
    return paper.weights_label(weights)


def exponential_fit(part: pd.DataFrame) -> tuple[float, float, float]:
    """(slope of ln KL against t, R^2, decades of KL covered) over t >= 10 while KL > KL_FLOOR."""
    fit = part[(part["kl"] > KL_FLOOR) & (part["iteration"] >= 10)]
    if len(fit) < 3:
        return float("nan"), float("nan"), 0.0
    slope, r2 = linear_fit(fit["iteration"], np.log(fit["kl"]))
    return slope, r2, float(np.log10(fit["kl"].max() / fit["kl"].min()))


def simplex_rates(rows: pd.DataFrame, folder: Path, config: dict) -> tuple[list[str], list[Verdict]]:
    """ln KL against t for simplex EM (linear, at the predicted rate, under the DFT condition;
    sub-linear for uniform weights) and for free-means gradient EM from the same simplex."""
    rows = rows.assign(label=rows["weights"].apply(_weights_label))
    verdicts, table = [], []
    simplex = rows[rows["series"] == "simplex EM"]
    at_100 = simplex[simplex["iteration"] == 100].groupby("label")["kl"].max()
    uniform_labels = simplex[simplex["dft_min"] < UNIFORM]["label"].unique()
    for (label, radius), part in simplex.groupby(["label", "radius"]):
        part = part.sort_values("iteration")
        dft = part["dft_min"].iloc[0]
        monotone = bool((part["kl"].diff().dropna() <= 1e-15).all())
        if dft >= UNIFORM:
            predicted = 2 * np.log(1 - dft)
            slope, r2, decades = exponential_fit(part)
            holds = r2 > 0.99 and decades >= 6 and abs(slope / predicted - 1) <= 0.05 and monotone
            verdicts.append(paper.EXPONENTIAL_RATE.judged(
                bool(holds), f"slope {slope:.4f} ({slope / predicted - 1:+.2%}), R² {r2:.5f} over {decades:.1f} decades; "
                f"monotone: {monotone}.", weights=label, radius=float(radius), predicted=paper.predicted_slope(dft)))
            table.append(f"| {label} | {radius:g} | {dft:.3f} | {predicted:.4f} | {slope:.4f} | {r2:.5f} | {decades:.1f} | "
                         f"{part[part['iteration'] == 100]['kl'].iloc[0]:.3g} |")
        else:
            window = part[(part["iteration"] >= 100) & (part["iteration"] <= 1000)]
            loglog, _ = loglog_slope(window["iteration"], window["kl"])
            _, r2_linear = linear_fit(window["iteration"], np.log(window["kl"]))
            others = at_100.drop(list(uniform_labels), errors="ignore")
            ratio = float(part[part["iteration"] == 100]["kl"].iloc[0] / others.max()) if len(others) else float("nan")
            verdicts.append(paper.SUBLINEAR_UNIFORM.judged(
                bool(-2.3 <= loglog <= -1.5 and r2_linear < 0.99 and ratio >= 1e3),
                f"log-log slope {loglog:.3f}; R² of ln KL vs t {r2_linear:.4f}; KL(100) ratio {ratio:.2e}.",
                weights=label, radius=float(radius)))
            table.append(f"| {label} | {radius:g} | {dft:.1e} | - | log-log {loglog:.3f} | - | - | "
                         f"{part[part['iteration'] == 100]['kl'].iloc[0]:.3g} |")
    free = rows[rows["series"] != "simplex EM"]
    if len(free):
        slopes = []
        for _, part in free.groupby(["label", "radius"]):
            window = part[(part["iteration"] >= 100) & (part["iteration"] <= 1000)]
            slopes.append(loglog_slope(window["iteration"], window["kl"])[0])
        nondegenerate = free[(free["dft_min"] >= UNIFORM) & (free["iteration"] == 100)]["kl"]
        tied = simplex[(simplex["dft_min"] >= UNIFORM) & (simplex["iteration"] == 100)]["kl"]
        verdicts.append(paper.FREE_MEANS.judged(
            bool(all(-2.5 <= s <= -1 for s in slopes) and nondegenerate.min() >= 1e3 * tied.max()),
            f"free log-log slopes {min(slopes):.2f} to {max(slopes):.2f} over t in [100, 1000]; KL(100): free >= "
            f"{nondegenerate.min():.2e}, simplex EM <= {tied.max():.2e}."))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = dict(zip(sorted(rows["label"].unique()), plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    styles = dict(zip(sorted(rows["radius"].unique()), ("-", "--", ":", "-."), strict=False))
    for (series, label, radius), part in rows.groupby(["series", "label", "radius"]):
        part = part.sort_values("iteration")
        kl = part["kl"].where(part["kl"] > 1e-17)
        ax = axes[0] if series == "simplex EM" else axes[1]
        ax.semilogy(part["iteration"], kl, styles.get(radius, "-"), color=colours[label], lw=1,
                    label=f"pi = {label}, r = {radius:g}")
    axes[0].axhline(KL_FLOOR, color="grey", lw=0.6, ls=":")
    axes[0].text(rows["iteration"].max(), KL_FLOOR, "fits stop at 1e-12 (float64 floor ~1e-16)", ha="right", va="bottom",
                 fontsize=7, color="grey")
    axes[0].set(title="simplex EM (means R^j theta)", xlabel="iteration t", ylabel="KL", ylim=(1e-17, None))
    axes[1].set(title=f"free-means gradient EM, same start ({free['series'].iloc[0] if len(free) else 'not run'})",
                xlabel="iteration t", ylabel="KL")
    axes[1].set_xscale("log")
    for ax in axes:
        ax.legend(fontsize=6)
    lines = ["| weights | ‖θ_0‖ | min DFT² | predicted slope | fitted slope | R² | decades | KL(100) |",
             "|---|---|---|---|---|---|---|---|", *table, ""]
    return lines + save_figure(fig, folder, "simplex_rates", "Paper C: KL of simplex EM against the iteration (ln KL "
                                 "linear under the DFT condition), beside free-means gradient EM"), verdicts


def simplex_radius(rows: pd.DataFrame, folder: Path, config: dict) -> tuple[list[str], list[Verdict]]:
    """Iterations to KL < 1e-8 against ||theta_0||; the asymptotic slope for every start."""
    table, slopes, reach = [], [], []
    for radius, part in rows[rows["series"] == "simplex EM"].groupby("radius"):
        part = part.sort_values("iteration")
        hit = part[part["kl"] < 1e-8]["iteration"]
        slope, r2, _ = exponential_fit(part[part["kl"] < 1e-4])
        slopes.append(slope)
        reach.append((radius, int(hit.iloc[0]) if len(hit) else None))
        table.append(f"| {radius:g} | {part['kl'].iloc[0]:.3g} | {reach[-1][1] if len(hit) else 'not reached'} | "
                     f"{slope:.4f} (R² {r2:.4f}) |")
    predicted = 2 * np.log(1 - rows["dft_min"].iloc[0])
    converged = all(r[1] is not None for r in reach) and max(abs(s / predicted - 1) for s in slopes) <= 0.05
    verdicts = [paper.SAME_RATE.judged(bool(converged),
                               "iterations to KL < 1e-8: " + ", ".join(f"{r:g} -> {n}" for r, n in reach) + "; slopes "
                               + ", ".join(f"{s:.4f}" for s in slopes) + " (the paper gives no radius gamma to test, so the "
                               "iteration counts are reported only).",
                               predicted=paper.predicted_slope(rows["dft_min"].iloc[0]))]
    fig, ax = plt.subplots(figsize=(5, 4))
    reached = [(r, n) for r, n in reach if n is not None]
    ax.semilogx([r for r, _ in reached], [n for _, n in reached], "o-")
    ax.set(xlabel="||theta_0||", ylabel="iterations until KL < 1e-8",
           title="simplex EM, pi = " + _weights_label(rows["weights"].iloc[0]))
    lines = ["| ‖θ_0‖ | KL(0) | iterations to KL < 1e-8 | slope of ln KL (KL < 1e-4) |", "|---|---|---|---|", *table, ""]
    return lines + save_figure(fig, folder, "simplex_radius", "Paper C: KL against the iteration from each initial "
                                 "radius (same asymptotic slope)"), verdicts


def simplex_samples(rows: pd.DataFrame, folder: Path, config: dict) -> tuple[list[str], list[Verdict]]:
    """||theta_hat|| of sample EM against N: slope -1/2 under the DFT condition, -1/4 for uniform weights."""
    rows = rows.assign(label=rows["weights"].apply(_weights_label))
    verdicts, lines = [], ["| weights | N | runs converged | mean ‖θ̂‖ | runs with ‖θ̂‖ < 1e-4 | median iterations |",
                           "|---|---|---|---|---|---|"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, part in rows.groupby("label"):
        converged = part[part["status"] == "converged"]
        mean = converged.groupby("n_samples")["theta_norm"].mean()
        slope, r2 = loglog_slope(mean.index, mean)
        band = paper.sample_band(part["weights"].iloc[0])
        low, high = band["low"], band["high"]
        # A sample EM run may stop at theta = 0, the truth itself: with uniform weights the mixture mean is 0
        # for every theta, and 0 is a local maximum of the sample likelihood when the sample is under-dispersed.
        at_truth = converged["theta_norm"] < 1e-4
        away = converged[~at_truth].groupby("n_samples")["theta_norm"].mean()
        away_slope = loglog_slope(away.index, away)[0] if len(away) >= 2 else float("nan")
        interval = replicate_slope_interval(converged, "n_samples", "theta_norm")
        strict = replicate_slope_interval(converged, "n_samples", "theta_norm", level=0.99)
        verdicts.append(band_verdict(
            paper.SAMPLE_RATE, band, slope, *interval, (low, high),
            f"R² {r2:.3f} over N = {mean.index.min()}..{mean.index.max()}; {len(converged)} of {len(part)} runs converged "
            f"(the others are not in the fit); {int(at_truth.sum())} converged runs stopped at theta = 0 (the truth)"
            + (f"; the mean over the others has slope {away_slope:.3f}." if at_truth.any() and len(away) >= 2 else "."),
            REPLICATE_BOOTSTRAP, strict=strict,
            earlier=(paper.SAMPLE_RATE.judged(bool(low <= slope <= high), f"point slope {slope:.3f}.", version=1, **band),
                     paper.SAMPLE_RATE.verdict(band_status(*interval, (low, high)), "the interval rule over 2 or more "
                                               "replicates.", band, version=2))))
        for N, at_n in part.groupby("n_samples"):
            done = at_n[at_n["status"] == "converged"]
            lines.append(f"| {label} | {N} | {len(done)} of {len(at_n)} | {done['theta_norm'].mean():.4g} | "
                         f"{int((done['theta_norm'] < 1e-4).sum())} | {at_n['iteration'].median():.0f} |")
        ax.loglog(converged["n_samples"], converged["theta_norm"].clip(lower=1e-8), ".", alpha=0.3)
        ax.loglog(mean.index, mean, "o-", label=f"pi = {label}: mean, slope {slope:.2f}")
    n = np.array([rows["n_samples"].min(), rows["n_samples"].max()], float)
    power = -0.25 if (rows["dft_min"] < UNIFORM).all() else -0.5
    start = rows[rows["n_samples"] == n[0]]["theta_norm"].max()
    ax.loglog(n, start * (n / n[0]) ** power, "k--", lw=0.8, label=f"N^({power:g}), the prediction")
    ax.set(xlabel="sample size N", ylabel="||theta_hat|| (stationary point of sample EM)")
    ax.legend(fontsize=7)
    return lines + [""] + save_figure(fig, folder, "simplex_samples", "Paper C: sample EM's error ||theta_hat|| against the "
                                      "sample size N (dots: replicates)"), verdicts


def lloyd(rows: pd.DataFrame, folder: Path, config: dict) -> tuple[list[str], list[Verdict]]:
    """Lloyd's centroids on N(0, I): norms against the closed-form radius, equal pairwise distances."""
    lines = ["| k | d | runs | mean centroid norm | closed form R_0 | relative difference | max pairwise-distance CV | "
             "max ‖mean of centroids‖ |", "|---|---|---|---|---|---|---|---|"]
    worst_norm, worst_cv, worst_mean = 0.0, float(rows["pair_distance_cv"].max()), float(rows["centroid_mean_norm"].max())
    for (k, d), part in rows.groupby(["m", "D"]):
        radius = part["closed_form_radius"].iloc[0]
        gap = (part["norm_mean"].mean() / radius - 1) if pd.notna(radius) else float("nan")
        if pd.notna(radius):
            worst_norm = max(worst_norm, float(((part[["norm_min", "norm_max"]] / radius) - 1).abs().max().max()))
        lines.append(f"| {k} | {d} | {len(part)} | {part['norm_mean'].mean():.4f} | "
                     f"{'-' if pd.isna(radius) else f'{radius:.4f}'} | {'-' if pd.isna(gap) else f'{gap:+.2%}'} | "
                     f"{part['pair_distance_cv'].max():.2%} | {part['centroid_mean_norm'].max():.4f} |")
    verdicts = [paper.LLOYD_SIMPLEX.judged(worst_norm <= 0.02 and worst_cv < 0.02 and worst_mean < 0.02,
                               f"largest norm deviation {worst_norm:.2%}, largest CV {worst_cv:.2%}, largest ||mean|| "
                               f"{worst_mean:.4f} over {len(rows)} runs.")]
    fig, ax = plt.subplots(figsize=(5, 4))
    for k, part in rows.groupby("m"):
        ax.plot(part["D"] + 0.05 * (k - 3), part["norm_mean"], "o", label=f"k = {k}")
        if pd.notna(part["closed_form_radius"].iloc[0]):
            ax.axhline(part["closed_form_radius"].iloc[0], ls="--", lw=0.8, color="grey")
    ax.set(xlabel="dimension d", ylabel="mean centroid norm", title="Lloyd on N(0, I); dashed: closed-form R_0")
    ax.legend(fontsize=7)
    return lines + [""] + save_figure(fig, folder, "lloyd", "Paper C, Proposition 1: Lloyd's centroid norms on N(0, I) data "
                                      "against the closed-form radius"), verdicts


SECTIONS = {"simplex_rates": simplex_rates, "simplex_radius": simplex_radius, "simplex_samples": simplex_samples,
            "lloyd": lloyd}
