"""Reports of studies around Table 1: EM under another update rule (the authors' in-place EM, or
ECM), and GD's step size and iteration cap.

Both read only stored rows. The EM-update report pairs every run with the same run (same truth
seed and init seed) under each other update rule, in the companions its config declares.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from emrun import files
from emrun.criteria import uai2019 as uai
from emrun.report import ReportResult, companions
from emrun.report.claims import judge_declared
from emrun.report.common import grid_table, provenance_section, verdict_section
from emrun.report.row_claims import NEAR_OPTIMAL, rate_with_interval
from emrun.report.verdicts import (
    BOOTSTRAP_RESAMPLES,
    CLUSTER_BOOTSTRAP,
    FAILS,
    HOLDS,
    MIN_CLUSTERS,
    UNTESTABLE,
    Verdict,
    band_status,
    cluster_bootstrap,
    ended_at_k_cluster,
    same_as_before,
    spearman_rho,
    with_multiplicity,
)
from emrun.settings import settings_of

PAIR = ["m", "D", "truth_seed", "init_seed"]
RULES = {"simultaneous": "eq. 2.7, every parameter from the current point",
         "authors": ("the authors' code: the means in place, component by component, pi_c from its own partial point, "
                     "not renormalised (its loss and likelihood ratio are taken at pi / sum(pi))"),
         "ecm": "the means in place, component by component, then pi from the responsibilities at the new means"}


def pair_em_updates(this: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """One row per EM run present in both: outcome and final loss under each update (suffixes
    _this and _other)."""
    columns = [*PAIR, "status", "k", "loss", "likelihood_ratio", "iterations"]
    a = this[this["algorithm"] == "em"].assign(hit=lambda r: ended_at_k_cluster(r))[[*columns, "hit"]]
    b = other[other["algorithm"] == "em"].assign(hit=lambda r: ended_at_k_cluster(r))[[*columns, "hit"]]
    paired = a.merge(b, on=PAIR, suffixes=("_this", "_other"))
    paired["loss_difference"] = paired["loss_this"] - paired["loss_other"]
    return paired


def em_update_summary(paired: pd.DataFrame) -> pd.DataFrame:
    """Per (m, D): paired runs, k-cluster runs under each update, outcomes changed, loss differences."""
    paired = paired.assign(changed=paired["hit_this"] != paired["hit_other"],
                           status_changed=paired["status_this"] != paired["status_other"],
                           absolute=paired["loss_difference"].abs())
    return paired.groupby(["m", "D"]).agg(
        runs=("changed", "size"), k_cluster_this=("hit_this", "sum"), k_cluster_other=("hit_other", "sum"),
        changed=("changed", "sum"), status_changed=("status_changed", "sum"), max_loss_difference=("absolute", "max"),
        iterations_this=("iterations_this", "median"), iterations_other=("iterations_other", "median"),
    ).reset_index()


def _own_lines(rule: str, em: pd.DataFrame) -> list[str]:
    hits = ended_at_k_cluster(em)
    below = em["likelihood_ratio"] < NEAR_OPTIMAL
    lines = [f"## EM under `{rule}` on its own", "",
             f"{int(hits.sum())} of {len(em)} runs end at a k-cluster point; {int(below.sum())} end below the likelihood "
             f"ratio {NEAR_OPTIMAL} (minimum {em['likelihood_ratio'].min():.4f}); statuses: "
             + ", ".join(f"{name} {count}" for name, count in em["status"].value_counts().items()) + ".", ""]
    if "loss_increases" in em:
        rising = em["loss_increases"].fillna(0)
        excess = em["pi_sum_excess"].abs()
        lines += [f"Its likelihood is not guaranteed to be monotone: {int((rising > 0).sum())} of {len(em)} runs had "
                  f"an iteration whose loss (pi renormalised) was above the one before, {int(rising.sum())} such "
                  f"iterations in all (most in one run: {int(rising.max())}). pi ends off the simplex by |sum(pi) - 1| "
                  f"of at most {excess.max():.1e} (median {excess.median():.1e}).", ""]
    return lines


def _paired_section(rule: str, name: str, rows: pd.DataFrame, other_rows: pd.DataFrame, other_rule: str,
                    folder: Path) -> tuple[list[str], Verdict]:
    paired = pair_em_updates(rows, other_rows)
    summary = em_update_summary(paired)
    changed = int(summary["changed"].sum())
    difference = paired["loss_difference"].abs()
    verdict = uai.EM_RULE_UNCHANGED.judged(
        changed == 0, f"Paired with `{name}`: {changed} of {len(paired)} paired runs change outcome (k-cluster runs: "
        f"`{rule}` {int(paired['hit_this'].sum())}, `{other_rule}` {int(paired['hit_other'].sum())}); final losses "
        f"differ by at most {difference.max():.2g} (median "
        f"{difference.median():.2g}; {int((difference > 1e-3).sum())} runs above 1e-3); "
        f"{int(summary['status_changed'].sum())} runs change status.", rule=rule, other=other_rule)
    figure = _loss_difference_plot(paired, folder / f"em_update_vs_{other_rule}.png", f"{rule} against {other_rule}")
    lines = [f"## Paired with `{other_rule}` ({RULES.get(other_rule, other_rule)})", "",
             f"Every run paired with the same truth and init in `{name}`.", "", verdict, "",
             f"Per cell: k-cluster runs `{rule}` / `{other_rule}`; outcomes changed; largest |loss difference|; median "
             f"iterations `{rule}` / `{other_rule}`.", "",
             grid_table(summary, lambda r: f"{r.k_cluster_this} / {r.k_cluster_other}; {r.changed}; "
                                           f"{r.max_loss_difference:.1g}; {r.iterations_this:.0f} / {r.iterations_other:.0f}"),
             "", figure, ""]
    files.write_csv(summary, folder / f"em_update_vs_{other_rule}.csv", index=False, float_format="%.6g")
    return lines, verdict


def write_em_update(ctx) -> ReportResult:
    """report.md of an EM config under another update rule, paired with each other rule stored."""
    config, rows, folder = ctx.config, ctx.rows, ctx.folder
    rule = ctx.settings.em_update
    verdicts = judge_declared(ctx) if "claims" in config else []
    em = rows[rows["algorithm"] == "em"]
    out = [f"# {config['name']}: {config['description']}", "",
           f"EM under the update rule `{rule}`: {RULES.get(rule, rule)}. Grid m = {config['grid']['m']}, D = "
           f"{config['grid']['D']}, {em['truth_index'].nunique()} truths per cell, {config['runs']['em']} runs per truth, "
           f"stopping {config['stopping']['em']}.", ""]
    out += (verdict_section(verdicts) if verdicts else []) + _own_lines(rule, em)
    others = companions.other_em_updates(folder, ctx.root)
    if not others:
        out += ["No companion the config declares (companions:) holds rows of the same protocol under another EM "
                "update, so no run is paired. Declare and run configs/bmm_table1_many_truths.yaml (eq. 2.7) to compare.",
                ""]
    paired = set()
    for other in others:
        other_rule = settings_of(companions.config_of(other)).em_update
        lines, verdict = _paired_section(rule, other.name, rows, ctx.rows_of(other), other_rule, folder)
        out += lines
        verdicts.append(verdict)
        paired.add(other_rule)
    verdicts += [uai.EM_RULE_UNCHANGED.untestable(f"no declared companion of the same protocol under `{other_rule}` holds "
                                                  "rows to pair with.", rule=rule, other=other_rule)
                 for other_rule in uai.other_em_rules(config) if other_rule not in paired]
    out += provenance_section(ctx.manifest, [], ctx.command)
    path = folder / "report.md"
    ctx.write_report(path, out)
    return ReportResult(path, verdicts)


def _loss_difference_plot(paired: pd.DataFrame, path: Path, title: str) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    difference = paired["loss_difference"].abs()
    floor = 1e-16
    ax.hist(np.log10(difference.clip(lower=floor)), bins=60, color="tab:blue")
    ax.set_xlabel(f"log10 |final loss difference| (differences below {floor:g} shown at {floor:g})")
    ax.set_ylabel("EM runs")
    ax.set_title(f"Final losses, {title}: {len(paired)} paired runs", fontsize=9)
    fig.tight_layout()
    files.save_figure(fig, path, dpi=120)
    plt.close(fig)
    return f"![loss differences]({path.name})"


# --- GD step size and iteration cap -------------------------------------------------------------

def sensitivity_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (m, D, step, cap): runs, k-cluster runs, rate with its 95% interval over the cell's truths
    (method named), capped fraction."""
    gd = rows[rows["algorithm"] == "gd"].assign(capped=lambda r: r["status"] == "capped")
    setting = gd["step"].map("{:g}".format) + "/" + gd["max_iter"].astype(str)
    rates = rate_with_interval(gd.assign(algorithm=setting))
    rates[["step", "max_iter"]] = rates["algorithm"].str.split("/", expand=True).astype({0: float, 1: int}).to_numpy()
    capped = gd.groupby(["m", "D", "step", "max_iter"])["capped"].mean().reset_index()
    table = rates.drop(columns="algorithm").merge(capped, on=["m", "D", "step", "max_iter"])
    table["max_iter"] = table["max_iter"].astype(int)
    return table


def _pooled(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (step, cap), pooled over cells: the rate and its 95% interval over truths, each truth of
    each cell a cluster with all its runs."""
    gd = rows[rows["algorithm"] == "gd"].assign(hit=lambda r: ended_at_k_cluster(r))
    out = []
    for (step, cap), part in gd.groupby(["step", "max_iter"]):
        per_truth = part.groupby(["m", "D", "truth_index"])["hit"].agg(["sum", "size"])
        sums, sizes = per_truth["sum"].to_numpy(), per_truth["size"].to_numpy()
        low, high = cluster_bootstrap(sums, sizes)
        out.append({"step": step, "max_iter": int(cap), "k_cluster": int(per_truth["sum"].sum()),
                    "runs": int(per_truth["size"].sum()), "low": low, "high": high,
                    "low99": cluster_bootstrap(sums, sizes, level=0.99)[0]})
    pooled = pd.DataFrame(out).set_index(["step", "max_iter"])
    pooled["rate"] = pooled["k_cluster"] / pooled["runs"]
    return pooled


REPRESENTATIVE_FACTOR = 1.5  # our criterion: the paper gives no tolerance for "representative"


def _representative(rows: pd.DataFrame, pooled: pd.DataFrame, paper: tuple[float, int]) -> Verdict:
    """Is each setting's pooled rate within a factor 1.5 of the paper setting's? The settings share
    truths and inits, so the ratios are bootstrapped jointly over truths (each truth of each cell a
    cluster with all its runs at every setting)."""
    gd = rows[rows["algorithm"] == "gd"].assign(hit=lambda r: ended_at_k_cluster(r))
    per_truth = gd.groupby(["m", "D", "truth_index", "step", "max_iter"])["hit"].agg(["sum", "size"]).unstack(
        ["step", "max_iter"]).fillna(0)
    sums, counts = per_truth["sum"].to_numpy(float), per_truth["size"].to_numpy(float)  # [truths, settings]
    settings = list(per_truth["sum"].columns)
    rng = np.random.default_rng(0)
    picks = rng.multinomial(len(sums), np.full(len(sums), 1 / len(sums)), size=BOOTSTRAP_RESAMPLES)
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = (picks @ sums) / (picks @ counts)  # [resamples, settings]
        ratios = rates / rates[:, [settings.index(paper)]]
    low, high = np.nanpercentile(ratios, 2.5, axis=0), np.nanpercentile(ratios, 97.5, axis=0)
    band = (1 / REPRESENTATIVE_FACTOR, REPRESENTATIVE_FACTOR)
    statuses = [band_status(lo, hi, band) for lo, hi in zip(low, high, strict=True)]
    strict = [band_status(lo, hi, band) for lo, hi in zip(np.nanpercentile(ratios, 0.5, axis=0),
                                                          np.nanpercentile(ratios, 99.5, axis=0), strict=True)]
    params = {"step": paper[0], "cap": paper[1], "factor": REPRESENTATIVE_FACTOR}
    reference = pooled.loc[paper, "rate"]
    evidence = (f"pooled over cells, {reference:.3f} at the paper's setting; ratio to it per (step, cap): "
                + ", ".join(f"{step:g}/{cap}: {pooled.loc[(step, cap), 'rate'] / reference:.2f} [{lo:.2f}, {hi:.2f}]"
                            for (step, cap), lo, hi in zip(settings, low, high, strict=True) if (step, cap) != paper) + ".")
    interval = CLUSTER_BOOTSTRAP + ", the settings resampled together"
    if len(sums) < MIN_CLUSTERS:  # version 2 bootstrapped over any number of truths
        return uai.GD_REPRESENTATIVE.untestable(f"fewer than {MIN_CLUSTERS} truths: no interval over truths.", **params)
    note = " Some interval crosses an edge of the band." if _all_of(statuses) == UNTESTABLE else ""
    verdict = uai.GD_REPRESENTATIVE.verdict(_all_of(statuses), evidence + note, params, interval=interval)
    return same_as_before(with_multiplicity(verdict, "interval", _all_of(strict)), 2)


def _all_of(statuses: list[str]) -> str:
    """Every setting inside holds; any wholly outside does not hold; else not testable."""
    return HOLDS if all(s == HOLDS for s in statuses) else FAILS if FAILS in statuses else UNTESTABLE


def sensitivity_verdicts(rows: pd.DataFrame, paper_step: float = 0.02, paper_cap: int = 10000) -> list[Verdict]:
    """How far the pooled GD k-cluster rate moves from the paper's (step, cap)."""
    pooled = _pooled(rows)
    lower = pooled["low"].to_numpy()
    every = (uai.GD_EVERY_SETTING.untestable(f"an interval over truths needs {MIN_CLUSTERS} or more truths per setting.")
             if np.isnan(lower).any() else uai.GD_EVERY_SETTING.judged(
        bool(np.all(lower > 0)),
        f"the pooled rate's 95% lower bound (over truths) is above 0 in {int(np.sum(lower > 0))} of {len(pooled)} "
        f"(step, cap) settings (smallest pooled rate {pooled['rate'].min():.3f}).", interval=CLUSTER_BOOTSTRAP))
    if not np.isnan(lower).any():  # with 10 or more truths, version 3's rule is this one
        every = same_as_before(with_multiplicity(every, "interval", HOLDS if (pooled["low99"] > 0).all() else FAILS), 3)
    verdicts = [every]
    if (paper_step, paper_cap) in pooled.index:
        verdicts.append(_representative(rows, pooled, (paper_step, paper_cap)))
    caps = sorted(int(c) for c in rows["max_iter"].unique())
    if len(caps) > 1:
        by_step = []
        for step, part in pooled.reset_index().groupby("step"):
            rho = spearman_rho(part["max_iter"], part["rate"]) if part["rate"].nunique() > 1 else 0.0
            by_step.append(f"step {step:g}: " + " → ".join(f"{r:.3f}" for r in part.sort_values("max_iter")["rate"])
                           + f" (rho {rho:+.2f})")
        rising = all(np.all(np.diff(part.sort_values("max_iter")["rate"].to_numpy()) >= 0)
                     for _, part in pooled.reset_index().groupby("step"))
        verdicts.append(uai.GD_FINAL.judged(
            rising,
            f"pooled rate against caps {caps}: " + "; ".join(by_step) + "." + ("" if rising else
            " Where the rate falls, some runs counted as k-cluster at the smaller cap had a weight still below the "
            "threshold but growing, and left it later (GD's escape is slow near pi = 0, Theorem 4.2).")))
    return verdicts


def write_sensitivity(ctx) -> ReportResult:
    """report.md, sensitivity.csv and a figure of GD's k-cluster rate against step size and cap."""
    config, rows, folder, manifest, command = ctx.config, ctx.rows, ctx.folder, ctx.manifest, ctx.command
    summary = sensitivity_summary(rows)
    declared = judge_declared(ctx) if "claims" in config else []
    verdicts = sensitivity_verdicts(rows) + declared
    out = [f"# {config['name']}: {config['description']}", "",
           f"GD on population Bernoulli mixtures, grid m = {config['grid']['m']}, D = {config['grid']['D']}, "
           f"steps {config['grid']['step']}, iteration caps {config['grid']['gd_max_iter']}, "
           f"{int(summary['truths'].max())} random truths per cell and {config['runs']['gd']} inits per truth "
           f"(the same inits for every step and cap), tolerance {config['stopping']['gd']['tol']}. The paper's setting "
           "is step 0.02, cap 10000.", "",
           "## Verdicts", "", *verdicts, ""]
    for cap, part in summary.groupby("max_iter"):
        steps = sorted(part["step"].unique())
        wide = part.pivot_table(index=["m", "D"], columns="step", values="rate").reset_index()
        wide.columns = ["m", "D", *[f"s{i}" for i in range(len(steps))]]
        capped = part.groupby("step")["capped"].mean()
        out += [f"## Cap {cap}: GD k-cluster rate (pooled over truths) for steps {', '.join(f'{s:g}' for s in steps)}", "",
                grid_table(wide, lambda r: " / ".join(f"{v:.3f}" for k, v in r._asdict().items() if k[0] == "s")), "",
                "Runs stopped by the cap: " + ", ".join(f"step {s:g} {capped[s]:.0%}" for s in steps) + ".", ""]
    out += _later_escapes(rows) + ["![sensitivity](sensitivity.png)", ""]
    _sensitivity_plot(summary, folder / "sensitivity.png", config["name"])
    out += provenance_section(manifest, [], command)
    files.write_csv(summary, folder / "sensitivity.csv", index=False, float_format="%.6g")
    path = folder / "report.md"
    ctx.write_report(path, out)
    return ReportResult(path, verdicts)


def _later_escapes(rows: pd.DataFrame) -> list[str]:
    """How many k-cluster endings at each cap are no longer k-cluster at the largest cap (same run)."""
    gd = rows[rows["algorithm"] == "gd"].assign(hit=lambda r: ended_at_k_cluster(r))
    caps = sorted(int(c) for c in gd["max_iter"].unique())
    if len(caps) < 2:
        return []
    run = ["m", "D", "truth_index", "run_index", "step"]
    final = gd[gd["max_iter"] == caps[-1]].set_index(run)["hit"]
    lines = [f"Same runs at a smaller cap and at cap {caps[-1]}: k-cluster endings that escape later.", "",
             "| cap | k-cluster runs | still k-cluster at the largest cap | escaped later |", "|---|---|---|---|"]
    for cap in caps[:-1]:
        hits = gd[(gd["max_iter"] == cap) & gd["hit"]].set_index(run).index
        kept = int(final.reindex(hits).fillna(False).astype(bool).sum())
        lines.append(f"| {cap} | {len(hits)} | {kept} | {len(hits) - kept} ({(len(hits) - kept) / max(len(hits), 1):.1%}) |")
    return lines + [""]


def _sensitivity_plot(summary: pd.DataFrame, path: Path, title: str) -> None:
    ms, Ds = sorted(summary["m"].unique()), sorted(summary["D"].unique())
    fig, axes = plt.subplots(len(ms), len(Ds), figsize=(3 * len(Ds), 2.4 * len(ms)), sharex=True, sharey=True,
                             squeeze=False)
    for (i, m), (j, D) in ((a, b) for a in enumerate(ms) for b in enumerate(Ds)):
        ax = axes[i][j]
        cell = summary[(summary["m"] == m) & (summary["D"] == D)]
        for step, line in cell.groupby("step"):
            line = line.sort_values("max_iter")
            ax.errorbar(line["max_iter"], line["rate"], yerr=[line["rate"] - line["low"], line["high"] - line["rate"]],
                        marker="o", ms=3, capsize=2, label=f"step {step:g}")
        ax.set_xscale("log")
        caps = sorted(int(c) for c in summary["max_iter"].unique())
        ax.set_xticks(caps, [f"{c:,}" for c in caps])
        ax.minorticks_off()
        ax.set_title(f"m = {m}, D = {D}", fontsize=9)
        if i == len(ms) - 1:
            ax.set_xlabel("iteration cap")
        if j == 0:
            ax.set_ylabel("GD k-cluster rate")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{title}: GD's k-cluster rate per cell against the iteration cap (95% interval over truths)",
                 fontsize=10)
    fig.tight_layout()
    files.save_figure(fig, path, dpi=120)
    plt.close(fig)
