"""Report of a real-data Bernoulli experiment (configs/digits_bmm.yaml): does GD collapse to
k-cluster points on binarised digits, does EM, and what k-means initialisation changes.

Reads only the stored rows. There is no truth: the likelihood ratio is against the best run of
the config, and each run's clustering is scored against the digit labels (adjusted Rand index).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from emrun import files
from emrun.criteria import lecture
from emrun.report import ReportResult
from emrun.report.claims import judge_declared
from emrun.report.common import provenance_section
from emrun.report.verdicts import (
    BOOTSTRAP_RESAMPLES,
    MIN_CLUSTERS,
    Verdict,
    cluster_difference_interval,
    ended_at_k_cluster,
    same_as_before,
    sign_verdict,
    wilson_interval,
)

SETTING = ["algorithm", "step", "init", "m"]


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (algorithm, step, init, m): runs, k-cluster runs (not diverged), diverged, rate with
    Wilson interval (within this data set: every run sees the same data), mean and best average
    log-likelihood of the runs that ended finite, mean ARI."""
    rows = rows.assign(step=rows["step"].fillna(0.0), hit=ended_at_k_cluster(rows),
                       diverged=rows["status"] == "diverged",
                       collapsed=(rows["k"] < rows["m"]) | (rows["status"] == "diverged"),
                       loglik=np.where(np.isfinite(rows["loss"]), -rows["loss"], np.nan))
    table = rows.groupby(SETTING).agg(
        runs=("hit", "size"), k_cluster=("hit", "sum"), diverged=("diverged", "sum"),
        collapsed=("collapsed", "sum"),
        mean_loglik=("loglik", "mean"), best_loglik=("loglik", "max"), mean_ari=("ari", "mean"),
        median_k=("k", "median")).reset_index()
    table["rate"] = table["k_cluster"] / table["runs"]
    table["wilson_low"], table["wilson_high"] = wilson_interval(table["k_cluster"], table["runs"])
    return table


# The runs of one init (m, init scheme, run_index) share it across step sizes, and EM and GD share
# it too: intervals resample inits with all their runs.
INIT = ["m", "init", "run_index"]


def _at_every_m(paper: pd.DataFrame, column: str, spec, needs_finished: bool = False) -> Verdict:
    evidence = "per m: " + ", ".join(f"m={r.m}: {getattr(r, column)} of {r.runs} (median k {r.median_k:.0f}; "
                                     f"diverged {r.diverged})" for r in paper.itertuples()) + "."
    if not len(paper):
        return spec.untestable("no GD runs at this setting are stored.")
    missing = paper[paper[column] == 0]
    if needs_finished and len(missing) and (missing["diverged"] == missing["runs"]).all():
        # Where it did not happen, no run ended at all: a k-cluster ending could not be seen there.
        # Version 1 of the criterion said "does not hold" here (kept for its record).
        return spec.untestable(evidence + " Every run diverged wherever none ended at a k-cluster point.",
                               alternatives=(spec.judged(False, evidence, version=1),))
    if needs_finished:
        return spec.judged(missing.empty, evidence, alternatives=(spec.judged(missing.empty, evidence, version=1),))
    return spec.judged(missing.empty, evidence)


def _kmeans_lowers(gd_rows: pd.DataFrame, column: str, what: str) -> list[Verdict]:
    """One verdict per step size: at each step, each init is one run, so inits are the units."""
    return [_kmeans_lowers_at(part, column, what, step) for step, part in gd_rows.groupby(gd_rows["step"].fillna(0.0))]


def _kmeans_lowers_at(gd_rows: pd.DataFrame, column: str, what: str, step: float) -> Verdict:
    params = {"what": what, "step": float(step)}
    per_init = gd_rows.groupby(INIT).agg(events=(column, "sum"), runs=(column, "size")).reset_index()
    kmeans, uniform = per_init[per_init["init"] == "kmeans"], per_init[per_init["init"] == "uniform"]
    if kmeans.empty or uniform.empty:
        return lecture.DIGITS_KMEANS_LOWERS.untestable("both init schemes must be run.", **params)
    k1, n1, k2, n2 = (int(kmeans["events"].sum()), int(kmeans["runs"].sum()), int(uniform["events"].sum()),
                      int(uniform["runs"].sum()))
    sides = (kmeans["events"], kmeans["runs"]), (uniform["events"], uniform["runs"])
    low, high = cluster_difference_interval(*sides)
    diverged = int(gd_rows[gd_rows["init"] == "uniform"]["diverged"].sum())
    note = f"; {diverged} of the uniform inits' runs diverged" if column != "diverged" and diverged else ""
    verdict = sign_verdict(lecture.DIGITS_KMEANS_LOWERS, params, k1 / n1 - k2 / n2, low, high,
                           f"GD runs with {what}: k-means inits {k1} of {n1}, uniform inits {k2} of {n2} (pooled over m; "
                           f"{len(kmeans)} and {len(uniform)} inits{note}).",
                           f"percentile bootstrap over inits ({BOOTSTRAP_RESAMPLES} resamples, seed 0), within this data "
                           "set; where every init of each side has the same outcome, or fewer than 10 inits, "
                           "Clopper-Pearson bounds over inits", sign=-1,
                           strict=cluster_difference_interval(*sides, level=0.99))
    return same_as_before(verdict, 1) if min(len(kmeans), len(uniform)) >= MIN_CLUSTERS else verdict


def _ari(rows: pd.DataFrame) -> Verdict:
    scored = rows.dropna(subset=["ari"])
    em, gd = scored[scored["algorithm"] == "em"], scored[scored["algorithm"] == "gd"]
    if em.empty or gd.empty:
        return lecture.DIGITS_ARI.untestable("both EM and GD runs with an ARI are needed.")
    # EM and GD start from the same inits: resample inits, each with its EM and GD runs.
    per_init = pd.concat({name: part.groupby(INIT)["ari"].agg(["sum", "size"]) for name, part in
                          (("em", em), ("gd", gd))}, axis=1).fillna(0.0)
    sides = (per_init[("em", "sum")], per_init[("em", "size")]), (per_init[("gd", "sum")], per_init[("gd", "size")])
    low, high = cluster_difference_interval(*sides, paired=True)
    verdict = sign_verdict(lecture.DIGITS_ARI, {}, em["ari"].mean() - gd["ari"].mean(), low, high,
                           f"mean ARI: EM {em['ari'].mean():.3f} over {len(em)} runs, GD {gd['ari'].mean():.3f} over "
                           f"{len(gd)} runs, from {len(per_init)} shared inits.",
                           f"percentile bootstrap over inits, each with its EM and GD runs ({BOOTSTRAP_RESAMPLES} "
                           "resamples, seed 0), within this data set",
                           strict=cluster_difference_interval(*sides, paired=True, level=0.99))
    return same_as_before(verdict, 3) if len(per_init) >= MIN_CLUSTERS else verdict


def verdicts(table: pd.DataFrame, rows: pd.DataFrame) -> list[Verdict]:
    gd, em = table[table["algorithm"] == "gd"], table[table["algorithm"] == "em"]
    paper = gd[(gd["step"] == 0.02) & (gd["init"] == "uniform")]
    gd_rows = rows[rows["algorithm"] == "gd"].assign(hit=ended_at_k_cluster, diverged=lambda r: r["status"] == "diverged")
    return [
        _at_every_m(paper, "k_cluster", lecture.DIGITS_GD_K_CLUSTER, needs_finished=True),
        _at_every_m(paper, "diverged", lecture.DIGITS_GD_DIVERGES),
        lecture.DIGITS_EM_NEVER.judged(bool(em["k_cluster"].sum() == 0),
                                       f"{int(em['k_cluster'].sum())} of {int(em['runs'].sum())} EM runs do; diverged "
                                       f"{int(em['diverged'].sum())}."),
        *_kmeans_lowers(gd_rows, "hit", "k-cluster endings"),
        *_kmeans_lowers(gd_rows, "diverged", "divergence"),
        _ari(rows),
    ]


def prototypes(rows: pd.DataFrame, path: Path, title: str) -> None:
    """The means of the best (highest likelihood) EM run and GD run at the largest m, as 8x8 images."""
    m = rows["m"].max()
    chosen = []
    for algorithm in ("em", "gd"):
        part = rows[(rows["m"] == m) & (rows["algorithm"] == algorithm) & np.isfinite(rows["loss"])]
        if len(part):
            chosen.append((algorithm, part.loc[part["loss"].idxmin()]))
    fig, axes = plt.subplots(len(chosen), m, figsize=(1.1 * m, 1.4 * len(chosen) + 0.4), squeeze=False)
    for row_axes, (algorithm, run) in zip(axes, chosen, strict=True):
        mu, pi = np.asarray(run["mu"]).reshape(m, 64), np.asarray(run["pi"])
        for c, ax in enumerate(row_axes):
            ax.imshow(mu[c].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"pi={pi[c]:.2f}", fontsize=6)
        row_axes[0].set_ylabel(f"{algorithm.upper()} (step {run['step']:g}, {run['init']})" if algorithm == "gd"
                               else f"EM ({run['init']})", fontsize=6)
    fig.suptitle(f"{title}: means of the best run at m = {m}", fontsize=8)
    fig.tight_layout()
    files.save_figure(fig, path, dpi=130)
    plt.close(fig)


def _loglik(r) -> str:
    if np.isnan(r.best_loglik):
        return "none (every run diverged)"
    return f"{r.mean_loglik:.2f} / {r.best_loglik:.2f}"


def write(ctx) -> ReportResult:
    config, rows, folder, manifest, command = ctx.config, ctx.rows, ctx.folder, ctx.manifest, ctx.command
    table = summary(rows)
    found = verdicts(table, rows) + (judge_declared(ctx) if "claims" in config else [])
    prototypes(rows, folder / "prototypes.png", config["name"])
    out = [f"# {config['name']}: {config['description']}", "",
           f"Data: scikit-learn's digits, {rows['n_patterns'].iloc[0]} distinct binary images (of 1797) at threshold "
           f"{config['data']['threshold']}; m = {config['grid']['m']}, {config['runs']['gd']} runs per setting; GD steps "
           f"{config['grid']['step']}, at most {config['stopping']['gd']['max_iter']} iterations; EM at most "
           f"{config['stopping']['em']['max_iter']}. A run is k-cluster when its smallest weight is below "
           f"{config['k_cluster_threshold']}; a diverged run clipped a mean onto 0 or 1 so that an image became impossible.",
           "", "## Verdicts", "", *found, "",
           "## Per setting", "",
           "| algorithm | step | init | m | k-cluster rate [95% Wilson] | diverged | median k "
           "| mean / best avg log-likelihood | mean ARI |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        step = f"{r.step:g}" if r.algorithm == "gd" else ""
        out.append(f"| {r.algorithm} | {step} | {r.init} | {r.m} | {r.rate:.2f} [{r.wilson_low:.2f}, {r.wilson_high:.2f}] | "
                   f"{r.diverged} | {r.median_k:.0f} | {_loglik(r)} | {r.mean_ari:.3f} |")
    out += ["", "Log-likelihoods are per image (nats); runs that diverged have none and are left out of the means.", "",
            "![prototypes](prototypes.png)", ""]
    out += provenance_section(manifest, [], command)
    files.write_csv(table, folder / "settings.csv", index=False, float_format="%.6g")
    path = folder / "report.md"
    ctx.write_report(path, out)
    return ReportResult(path, found)
