"""The k-cluster report of a grid of trials, for any set of algorithms: how often each ends at a
k-cluster point, each against the baseline on the same inits, whether those points are bad,
convergence and cost, and the declared claims. With ``compare_to`` a published table, the paper's
sections follow (:mod:`emrun.report.published`).

Reads only stored rows. A cell's rate counts every run in its denominator, diverged runs included
(they have their own column); the k-cluster count is of runs that ended, not diverged, with fewer
than m non-zero weights.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from emrun import files
from emrun.report import ReportResult, published
from emrun.report.claims import baseline_of, judge_declared
from emrun.report.common import grid_table, header, provenance_section, save_figure, verdict_section
from emrun.report.row_claims import NEAR_OPTIMAL, paired_k_cluster, rate_with_interval
from emrun.report.verdicts import ended_at_k_cluster
from emrun.stats import truth_columns

CELL = ["m", "D", "algorithm"]


def settings(rows: pd.DataFrame) -> pd.Series:
    """Each row's algorithm, with the hyperparameters that vary between its cells when any do
    ("gd (step 0.01)"): the unit a rate table is drawn for."""
    options = list(truth_columns(rows)[2:-1])  # a truth axis (separation, ...) splits the table like a step does
    columns = list(dict.fromkeys(c for c in ("step", "max_iter", *options, *_hyperparameter_columns(rows)) if c in rows))
    label = rows["algorithm"].astype(str)
    for algorithm, part in rows.groupby("algorithm"):
        varying = [c for c in columns if part[c].nunique(dropna=True) > 1]
        if varying:
            text = part[varying].apply(lambda r: ", ".join(f"{c} {_shown(v)}" for c, v in r.items()), axis=1)
            label.loc[part.index] = f"{algorithm} (" + text + ")"
    return label


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _hyperparameter_columns(rows: pd.DataFrame) -> list[str]:
    known = {"config", "config_hash", "batch_id", "model", "m", "D", "algorithm", "step", "init", "data", "n_samples",
             "truth_index", "truth_seed", "entropy", "truth_loss", "n_patterns", "gd_boundary", "em_update", "max_iter",
             "truth_pi", "truth_mu", "batch_seconds", "worker", "run_index", "init_seed", "init_pi", "init_mu", "status",
             "error", "converged", "iterations", "loss", "k", "k_cluster", "touched_boundary", "pi", "mu", "ari",
             "ref_loss", "likelihood_ratio"}
    return [c for c in rows.columns if c not in known and pd.api.types.is_numeric_dtype(rows[c])]


def cell_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (m, D, algorithm setting): counts, rate with its 95% interval (method named),
    convergence and cost."""
    touched = rows["touched_boundary"].fillna(False).astype(bool) if "touched_boundary" in rows else False
    rows = rows.assign(hit=ended_at_k_cluster(rows), diverged=rows["status"] == "diverged", touched=touched,
                       # A cycling run is capped too: it reached the cap repeating a cycle (emrun.algorithms).
                       capped=rows["status"].isin(["capped", "cycling"]), cycling=rows["status"] == "cycling",
                       setting=settings(rows),
                       hit_near_optimal=ended_at_k_cluster(rows) & (rows["likelihood_ratio"] >= NEAR_OPTIMAL),
                       finished_ratio=rows["likelihood_ratio"].where(rows["status"] != "diverged"),
                       run_seconds=rows["batch_seconds"] / rows.groupby("batch_id")["run_index"].transform("size"))
    table = rows.groupby(["m", "D", "setting"]).agg(
        algorithm=("algorithm", "first"), truths=("truth_index", "nunique"), runs=("run_index", "size"),
        k_cluster=("hit", "sum"), k_cluster_near_optimal=("hit_near_optimal", "sum"), diverged=("diverged", "sum"),
        capped=("capped", "sum"), cycling=("cycling", "sum"), min_ratio=("finished_ratio", "min"),
        median_iterations=("iterations", "median"),
        touched=("touched", "sum"), seconds=("run_seconds", "sum"),
    ).reset_index()
    intervals = rows.assign(algorithm=rows["setting"]).pipe(rate_with_interval).rename(columns={"algorithm": "setting"})
    table = table.merge(intervals[["m", "D", "setting", "rate", "low", "high", "interval"]], on=["m", "D", "setting"])
    table["capped_fraction"] = table["capped"] / table["runs"]
    return table


def heatmaps(panels: list[tuple[str, pd.DataFrame, str]], folder, title: str) -> list[str]:
    """One heatmap per (name, table, column) on the same colour scale, numbers printed in the cells."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels) + 0.9, 3.6), constrained_layout=True,
                             squeeze=False)
    for ax, (name, table, column) in zip(axes[0], panels, strict=True):
        grid = table.pivot(index="m", columns="D", values=column)
        image = ax.imshow(grid.values, cmap="viridis", vmin=0, vmax=1, origin="upper")
        ax.set_xticks(range(len(grid.columns)), grid.columns)
        ax.set_yticks(range(len(grid.index)), grid.index)
        ax.set(xlabel="D", ylabel="m")
        ax.set_title(name, fontsize=10)
        for (i, j), value in np.ndenumerate(grid.values):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8, color="white" if value < 0.5 else "black")
    # Beside the last panel, not the whole row: with square panels the row's box is wider than they are.
    fig.colorbar(image, ax=axes[0][-1], shrink=0.8, pad=0.03, label="fraction of runs ending at k < m")
    fig.suptitle(title)
    return save_figure(fig, folder, "heatmap", "fraction of runs ending at a k-cluster point, per algorithm and cell",
                       pdf=True)


def _rate(row) -> str:
    return f"{row.rate:.3f} [{row.low:.2f}, {row.high:.2f}]"


def setup_text(config: dict, own_truths: int) -> str:
    from emrun.registry import ALGORITHMS

    data = config["data"]
    data_text = {"population": "population", "samples": f"{data.get('n')} samples"}.get(data["kind"], data["kind"])
    algorithms = config["grid"]["algorithm"]
    runs = ", ".join(f"{config['runs'][a]} {a}" for a in algorithms)
    stopping = "; ".join(f"{a} {config['stopping'][a]}" for a in algorithms)
    stepped = [a for a in algorithms if a in ALGORITHMS and "step" in ALGORITHMS.get(a).hyperparameters]
    step = f" (step {config['grid']['step']} for {', '.join(stepped)})" if stepped else ""
    return (f"Model `{config['model']}`, {data_text}; grid m = {config['grid']['m']}, D = {config['grid']['D']}, "
            f"algorithms {algorithms}{step}; {own_truths} "
            f"{'given' if isinstance(config['truths'], list) else 'random'} truth(s) per cell; runs per truth: {runs} "
            f"(every algorithm from the same inits); stopping: {stopping}; a run ends at a k-cluster point when its "
            f"smallest weight is below {config['k_cluster_threshold']}.")


def rate_sections(summary: pd.DataFrame) -> list[str]:
    out = ["## k-cluster rate per algorithm", ""]
    for setting, part in summary.groupby("setting", sort=False):
        methods = sorted(part["interval"].unique())
        out += [f"### {setting}", "", f"Fraction of runs ending at k < m [95% interval: {'; '.join(methods)}]; smallest "
                "likelihood ratio of the cell's runs that did not diverge.", "",
                grid_table(part, lambda r: f"{_rate(r)}; " + (f"min {r.min_ratio:.4f}" if r.min_ratio == r.min_ratio
                                                               else "every run diverged")), ""]
    return out


def comparison_section(rows: pd.DataFrame, baseline: str | None, algorithms: list[str]) -> list[str]:
    if baseline is None:
        return (["## Against a baseline", "", "Name a `baseline:` algorithm in the config to compare the others with it "
                 "on the same inits.", ""] if len(algorithms) > 1 else [])
    out = [f"## Each algorithm against `{baseline}` from the same inits", "",
           "Runs paired by truth, init and (when both take one) step. The interval of the mean paired difference in "
           "k-cluster rate resamples truths with all their runs (runs that share a truth are not independent).", "",
           "| algorithm | paired runs | k-cluster runs (it / baseline) | only it | only baseline | mean difference "
           "[95% interval over truths] |", "|---|---|---|---|---|---|"]
    for algorithm in algorithms:
        if algorithm == baseline:
            continue
        paired = paired_k_cluster(rows, algorithm, baseline)
        if paired is None:
            out.append(f"| {algorithm} | 0 | | | | no run pairs with a {baseline} run |")
            continue
        interval = "" if np.isnan(paired["low"]) else f" [{paired['low']:+.3f}, {paired['high']:+.3f}]"
        out.append(f"| {algorithm} | {paired['pairs']} | {paired['a_hits']} / {paired['b_hits']} | {paired['a_only']} | "
                   f"{paired['b_only']} | {paired['difference']:+.3f}{interval} over {paired['truths']} truths |")
    return out + [""]


def quality_and_convergence(rows: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    out = ["## Are the k-cluster points bad?", "",
           "A k-cluster point is not bad by itself (with small D fewer components can fit the truth exactly). Runs "
           f"ending at k < m, split by likelihood ratio against {NEAR_OPTIMAL}:", "",
           "| algorithm | k-cluster runs | near-optimal (ratio >= 0.999) | worse |", "|---|---|---|---|"]
    for setting, part in summary.groupby("setting", sort=False):
        hits, good = int(part["k_cluster"].sum()), int(part["k_cluster_near_optimal"].sum())
        out.append(f"| {setting} | {hits} | {good} | {hits - good} |")
    capped = summary.pivot_table(index=["m", "D"], columns="setting", values="capped_fraction", sort=False)
    names = list(capped.columns)
    cells = capped.reset_index().assign(text=[" / ".join(f"{v:.2f}" for v in row) for row in capped.to_numpy()])
    out += ["", "## Convergence", "",
            f"Fraction of runs stopped by the iteration cap rather than the tolerance ({' / '.join(names)}); diverged "
            "runs (a pattern made impossible by a mean clipped to 0 or 1, infinite loss) are counted in every rate's "
            "denominator and never averaged.", "",
            grid_table(cells, lambda r: r.text), "",
            "Diverged runs: " + ", ".join(f"{s} {int(p['diverged'].sum())}" for s, p in summary.groupby("setting", sort=False))
            + ". Capped runs that cycle (period 2 to 8 at the cap; their ending is taken at the cycle's iterate with the "
              "smallest weight, so a cap one step longer decides the same): "
            + ", ".join(f"{s} {int(p['cycling'].sum())} of {int(p['capped'].sum())}"
                        for s, p in summary.groupby("setting", sort=False)) + ".", ""]
    if "touched_boundary" in rows:
        touched = summary[summary["touched"] > 0]
        out += ["Runs whose means ever sat where the family's boundary rule matters (a Bernoulli mean at exactly 0 or 1): "
                + (", ".join(f"{s} {int(p['touched'].sum())} of {int(p['runs'].sum())}"
                             for s, p in summary.groupby("setting", sort=False)) if len(touched) else "none") + ".", ""]
    return out


def cost_table(summary: pd.DataFrame) -> list[str]:
    lines = ["## Cost", "", "| algorithm | runs | median iterations | capped (not converged) | diverged | compute seconds | "
             "ms per run |", "|---|---|---|---|---|---|---|"]
    for setting, part in summary.groupby("setting", sort=False):
        runs = part["runs"].sum()
        lines.append(f"| {setting} | {runs} | {part['median_iterations'].median():.0f} | "
                     f"{part['capped'].sum() / runs:.1%} | {part['diverged'].sum()} | {part['seconds'].sum():.1f} | "
                     f"{1000 * part['seconds'].sum() / runs:.1f} |")
    return lines + [""]


def write(ctx) -> ReportResult:
    """Write report.md, cells.csv and the heatmaps of one grid of trials into ``ctx.folder``."""
    config, rows, folder = ctx.config, ctx.rows, ctx.folder
    summary = cell_summary(rows)
    verdicts = judge_declared(ctx)
    paper = published.PaperSections(ctx, summary) if config.get("compare_to") else None
    out = header(config) + [setup_text(config, int(summary["truths"].max())), ""]
    out += verdict_section(verdicts, "Verdicts on the paper's claims" if paper else "Verdicts on the config's claims")
    if paper is not None:
        out += paper.companion_verdicts()
    out += rate_sections(summary)
    panels = [(f"{s}, ours", part, "rate") for s, part in summary.groupby("setting", sort=False)]
    out += heatmaps((paper.heatmap_panels(panels) if paper else panels), folder,
                    f"{config['name']}: fraction of runs ending at a k-cluster point (k < m), per cell")
    out += comparison_section(rows, baseline_of(config), config["grid"]["algorithm"])
    headlines = []
    if paper is not None:
        lines, headlines = paper.sections()
        out += lines
    out += quality_and_convergence(rows, summary) + cost_table(summary)
    if paper is not None:
        out += paper.deviations(verdicts)
    out += provenance_section(ctx.manifest, list(paper.artefact.published) if paper else [], ctx.command)
    files.write_csv(summary, folder / "cells.csv", index=False, float_format="%.6g")
    path = folder / "report.md"
    ctx.write_report(path, out)
    return ReportResult(path, verdicts + (paper.extra_verdicts if paper else []), headlines)
