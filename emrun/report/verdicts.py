"""Claims of the papers, judged from stored rows, and the statistics they use.

Every verdict is computed from the rows it is given; none is assumed. Rows are tidy trial rows
as returned by :func:`emrun.load_results` (columns m, D, algorithm, truth_index, run_index,
status, k_cluster, likelihood_ratio, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

NEAR_OPTIMAL = 0.999  # the paper's "greater than 0.999 in terms of the likelihood ratio"


@dataclass(frozen=True)
class Verdict:
    claim: str
    holds: bool
    evidence: str

    def markdown(self) -> str:
        mark = "holds" if self.holds else "does not hold"
        return f"- **{self.claim}**: {mark}. {self.evidence}"


def wilson_interval(successes, trials, z: float = 1.959964) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson score interval of a binomial proportion (vectorised)."""
    successes, trials = np.asarray(successes, float), np.asarray(trials, float)
    p = successes / trials
    centre = (p + z**2 / (2 * trials)) / (1 + z**2 / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / (1 + z**2 / trials)
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def ended_at_k_cluster(rows: pd.DataFrame) -> pd.Series:
    """A run that ended (not diverged) with fewer than m non-zero weights."""
    return rows["k_cluster"] & (rows["status"] != "diverged")


def _where(rows: pd.DataFrame) -> str:
    return f"m={int(rows['m'])}, D={int(rows['D'])}"


def em_never_k_cluster(rows: pd.DataFrame) -> Verdict:
    em = rows[rows["algorithm"] == "em"]
    hits = ended_at_k_cluster(em)
    per_cell = hits.groupby([em["m"], em["D"]]).sum()
    clean = int((per_cell == 0).sum())
    worst = per_cell.idxmax() if len(per_cell) else None
    evidence = f"no EM run does in {clean} of {len(per_cell)} cells; {int(hits.sum())} of {len(em)} EM runs end at k < m"
    if hits.any():
        evidence += f" (most at m={worst[0]}, D={worst[1]}: {int(per_cell.max())})"
    return Verdict("EM never ends at a k-cluster point (k < m)", not hits.any(), evidence + ".")


def em_always_near_optimal(rows: pd.DataFrame) -> Verdict:
    em = rows[rows["algorithm"] == "em"]
    if em.empty:
        return Verdict(f"Every EM run is near-optimal (likelihood ratio >= {NEAR_OPTIMAL})", False, "no EM runs.")
    ratios = em["likelihood_ratio"]
    below = int((ratios < NEAR_OPTIMAL).sum())
    worst = em.loc[ratios.idxmin()]
    evidence = (f"{below} of {len(em)} EM runs have likelihood ratio below {NEAR_OPTIMAL}; "
                f"minimum {worst['likelihood_ratio']:.4f} at {_where(worst)}, truth {int(worst['truth_index'])}.")
    return Verdict(f"Every EM run is near-optimal (likelihood ratio >= {NEAR_OPTIMAL})", below == 0, evidence)


def gd_more_often_than_em(rows: pd.DataFrame) -> Verdict:
    """Paired comparison: EM and GD start from the same inits, so test with McNemar's exact test."""
    keys = ["m", "D", "truth_index", "run_index"]
    flags = rows.assign(hit=ended_at_k_cluster(rows)).pivot_table(index=keys, columns="algorithm", values="hit",
                                                                    aggfunc="first")
    if not {"em", "gd"} <= set(flags.columns):
        return Verdict("GD ends at a k-cluster point more often than EM", False, "needs both EM and GD runs.")
    flags = flags.dropna().astype(bool)
    gd_only = int((flags["gd"] & ~flags["em"]).sum())
    em_only = int((~flags["gd"] & flags["em"]).sum())
    n = gd_only + em_only
    p_value = stats.binomtest(gd_only, n, 0.5, alternative="greater").pvalue if n else 1.0
    evidence = (f"GD {int(flags['gd'].sum())} of {len(flags)} runs, EM {int(flags['em'].sum())} of {len(flags)} "
                f"from the same inits; pairs where only GD does: {gd_only}, only EM: {em_only} "
                f"(McNemar exact test, one-sided p = {p_value:.2g}).")
    return Verdict("GD ends at a k-cluster point more often than EM", gd_only > em_only and p_value < 0.05, evidence)


def gd_rate_grows_with(rows: pd.DataFrame, factor: str) -> Verdict:
    """Does GD's k-cluster rate grow with ``factor`` (m or D) at a fixed value of the other?

    Spearman correlation of the factor with the GD rate of each (m, D, truth), each rate centred
    on the mean rate of its value of the other factor (a pooled correlation would let the strong
    trend in m hide a trend in D). Holds when rho > 0 and p < 0.05.
    """
    claim = f"GD's k-cluster rate grows with {factor}"
    other = "D" if factor == "m" else "m"
    gd = rows[rows["algorithm"] == "gd"]
    rates = ended_at_k_cluster(gd).groupby([gd["m"], gd["D"], gd["truth_index"]]).mean().reset_index(name="rate")
    centred = rates["rate"] - rates.groupby(other)["rate"].transform("mean")
    if rates[factor].nunique() < 2:
        return Verdict(claim, False, f"only one value of {factor} was run.")
    if centred.nunique() < 2:
        return Verdict(claim, False, f"the rate does not vary with {factor}.")
    rho, p_value = (float(x) for x in stats.spearmanr(rates[factor], centred))
    evidence = (f"Spearman rho = {rho:.2f}, p = {p_value:.2g} over {len(rates)} (cell, truth) rates, each centred "
                f"on the mean rate of its {other} (a trend at fixed {other}).")
    return Verdict(claim, rho > 0 and p_value < 0.05, evidence)


def k_cluster_claims(rows: pd.DataFrame) -> list[Verdict]:
    """The Table 1 and 2 claims: EM never at k < m and near-optimal; GD often, more with m and D."""
    return [
        em_never_k_cluster(rows),
        em_always_near_optimal(rows),
        gd_more_often_than_em(rows),
        gd_rate_grows_with(rows, "m"),
        gd_rate_grows_with(rows, "D"),
    ]


def loglog_slope(x, y) -> tuple[float, float]:
    """Least-squares slope of ln y against ln x, and its R^2 (the power of a power law)."""
    return linear_fit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)))


def linear_fit(x, y) -> tuple[float, float]:
    """Least-squares slope of y against x, and its R^2."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.ptp(x) == 0:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total = ((y - y.mean()) ** 2).sum()
    return float(slope), float(1 - (residual**2).sum() / total) if total > 0 else 1.0
