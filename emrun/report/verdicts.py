"""Verdicts and the statistics behind them.

A verdict is computed from rows, never assumed. It is one of three statuses: the claim holds,
does not hold, or is not testable on these rows (by an enumerated rule: a trend over one value
of a factor, a rank correlation over fewer than 3 points or with an undefined p-value, an
estimate whose interval includes 0 where the claim is about its sign, or no rows of the kind the
claim is about). Each verdict names its criterion; when an interval decides it, how the interval
was drawn (runs that share a truth are not independent, so intervals resample truths).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

HOLDS, FAILS, UNTESTABLE = "holds", "does not hold", "not testable"
BOOTSTRAP_RESAMPLES = 2000
CLUSTER_BOOTSTRAP = (f"percentile bootstrap over truths ({BOOTSTRAP_RESAMPLES} resamples of the truths, each with all "
                     "its runs; seed 0)")


@dataclass(frozen=True)
class Verdict:
    claim: str
    status: str  # HOLDS, FAILS or UNTESTABLE
    evidence: str
    criterion: str = ""
    interval: str | None = None  # how the interval that decided it was computed, if one did
    folder: str | None = None  # the results folder whose rows decided it (filled in by the report)
    complete: bool | None = None  # whether that folder held every planned batch

    @classmethod
    def judged(cls, claim: str, holds: bool, evidence: str, criterion: str = "", interval: str | None = None) -> Verdict:
        return cls(claim, HOLDS if holds else FAILS, evidence, criterion, interval)

    @classmethod
    def untestable(cls, claim: str, why: str, criterion: str = "") -> Verdict:
        return cls(claim, UNTESTABLE, why, criterion)

    @property
    def holds(self) -> bool:
        return self.status == HOLDS

    def markdown(self) -> str:
        criterion = f" Criterion: {self.criterion}." if self.criterion else ""
        where = "" if self.complete is not False else " (from an incomplete folder: not all planned batches are stored)"
        evidence = self.evidence if self.evidence.endswith((".", "!", "?")) or not self.evidence else f"{self.evidence}."
        return f"- **{self.claim}**: {self.status}{where}. {evidence}{criterion}"

    def located(self, folder: str, complete: bool | None) -> Verdict:
        return replace(self, folder=self.folder or folder, complete=complete if self.complete is None else self.complete)

    def as_dict(self) -> dict:
        return asdict(self)


VERDICT_FIELDS = ["claim", "status", "evidence", "criterion", "interval"]


def verdict_table(verdicts: list[Verdict]) -> pd.DataFrame:
    """Verdicts as a table (one row each), to be kept as a companion folder's summary."""
    return pd.DataFrame([[getattr(v, name) for name in VERDICT_FIELDS] for v in verdicts], columns=VERDICT_FIELDS)


def verdicts_from_table(table: pd.DataFrame) -> list[Verdict]:
    return [Verdict(**{name: (None if pd.isna(value) else value) for name, value in row.items()})
            for row in table[VERDICT_FIELDS].to_dict("records")]


def wilson_interval(successes, trials, z: float = 1.959964) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson score interval of a binomial proportion (vectorised): for runs of ONE truth."""
    successes, trials = np.asarray(successes, float), np.asarray(trials, float)
    p = successes / trials
    centre = (p + z**2 / (2 * trials)) / (1 + z**2 / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / (1 + z**2 / trials)
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def sign_verdict(claim: str, estimate: float, low: float, high: float, evidence: str, criterion: str,
                 interval: str, sign: int = 1) -> Verdict:
    """A claim about the sign of an estimate (sign = 1: above 0): holds when its interval lies on
    that side of 0, does not hold when on the other, not testable when it contains 0."""
    text = f"{evidence} Estimate {estimate:+.3g} [{low:+.3g}, {high:+.3g}]."
    if low <= 0 <= high or np.isnan(low):
        return Verdict(claim, UNTESTABLE, text + " The interval contains 0.", criterion, interval)
    return Verdict.judged(claim, bool(low > 0 if sign > 0 else high < 0), text, criterion, interval)


def replicate_slope_interval(rows: pd.DataFrame, x: str, y: str, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the log-log slope of mean(y) against x when whole replicates
    (``truth_index``: each its own sample and start, used at every x) are resampled."""
    replicates = rows["truth_index"].unique()
    if len(replicates) < 2:
        return float("nan"), float("nan")
    table = rows.pivot_table(index="truth_index", columns=x, values=y, aggfunc="mean")  # replicate x N
    rng = np.random.default_rng(seed)
    slopes = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        means = table.iloc[rng.integers(0, len(table), len(table))].mean(axis=0).dropna()
        if len(means) >= 2 and (means > 0).all():
            slopes.append(loglog_slope(means.index, means.to_numpy())[0])
    return (float(np.percentile(slopes, 2.5)), float(np.percentile(slopes, 97.5))) if slopes else (float("nan"),) * 2


def band_verdict(claim: str, estimate: float, low: float, high: float, band: tuple[float, float], evidence: str,
                 criterion: str, interval: str) -> Verdict:
    """A claim that an estimate lies in ``band``: holds when its whole interval does, does not hold
    when its whole interval lies outside, not testable when the interval crosses an edge of the band
    (or there is none: the replicates cannot decide)."""
    text = f"{evidence} Estimate {estimate:.3f} [{low:.3f}, {high:.3f}]."
    if np.isnan(low):
        return Verdict(claim, UNTESTABLE, text + " No interval: fewer than 2 replicates.", criterion, interval)
    if band[0] <= low and high <= band[1]:
        return Verdict(claim, HOLDS, text, criterion, interval)
    if high < band[0] or low > band[1]:
        return Verdict(claim, FAILS, text, criterion, interval)
    return Verdict(claim, UNTESTABLE, text + f" The interval crosses an edge of [{band[0]}, {band[1]}].", criterion, interval)


REPLICATE_BOOTSTRAP = (f"percentile bootstrap over replicates ({BOOTSTRAP_RESAMPLES} resamples of the replicates, each "
                       "with its sample and start at every N; seed 0)")


def cluster_bootstrap(totals: np.ndarray, counts: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of sum(totals) / sum(counts) when whole clusters (truths) are
    resampled: ``totals`` [K] is each truth's sum of the quantity, ``counts`` [K] its runs."""
    totals, counts = np.asarray(totals, float), np.asarray(counts, float)
    if len(totals) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    picks = rng.multinomial(len(totals), np.full(len(totals), 1 / len(totals)), size=BOOTSTRAP_RESAMPLES)
    estimates = (picks @ totals) / (picks @ counts)
    return float(np.percentile(estimates, 2.5)), float(np.percentile(estimates, 97.5))


def cluster_difference_interval(first: tuple, second: tuple, paired: bool = False,
                                seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of sum(t1) / sum(c1) - sum(t2) / sum(c2) when whole clusters are
    resampled. ``first`` and ``second`` are (totals [K], counts [K]) per cluster (an init with
    all its runs, a truth, ...). ``paired``: the two share their K clusters (the same inits), so
    one resample draws both; otherwise each side's clusters are resampled on their own."""
    t1, c1 = (np.asarray(a, float) for a in first)
    t2, c2 = (np.asarray(a, float) for a in second)
    if min(len(t1), len(t2)) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    picks1 = rng.multinomial(len(t1), np.full(len(t1), 1 / len(t1)), size=BOOTSTRAP_RESAMPLES)
    picks2 = picks1 if paired else rng.multinomial(len(t2), np.full(len(t2), 1 / len(t2)), size=BOOTSTRAP_RESAMPLES)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimates = (picks1 @ t1) / (picks1 @ c1) - (picks2 @ t2) / (picks2 @ c2)
    estimates = estimates[np.isfinite(estimates)]
    if not len(estimates):
        return float("nan"), float("nan")
    proportions = all(((t >= 0) & (t <= c)).all() for t, c in ((t1, c1), (t2, c2)))
    if proportions and np.ptp(estimates) <= 1e-12:
        # Every cluster of each side has the same rate, so resampling clusters cannot show any
        # uncertainty (a zero-width interval): exact bounds with clusters as the units instead.
        return _exact_difference(t1.sum() / c1.sum(), len(t1), t2.sum() / c2.sum(), len(t2))
    return float(np.percentile(estimates, 2.5)), float(np.percentile(estimates, 97.5))


def _exact_difference(rate1: float, clusters1: int, rate2: float, clusters2: int) -> tuple[float, float]:
    """A conservative 95% interval of rate1 - rate2: Clopper-Pearson bounds (97.5% each, so that
    both hold together with 95%) on each side's rate with its clusters counted as the trials."""
    from scipy.stats import beta

    def bounds(rate: float, n: int) -> tuple[float, float]:
        x = rate * n
        low = 0.0 if x <= 0 else float(beta.ppf(0.0125, x, n - x + 1))
        high = 1.0 if x >= n else float(beta.ppf(0.9875, x + 1, n - x))
        return low, high

    (low1, high1), (low2, high2) = bounds(rate1, clusters1), bounds(rate2, clusters2)
    return low1 - high2, high1 - low2


def ended_at_k_cluster(rows: pd.DataFrame) -> pd.Series:
    """A run that ended (not diverged) with fewer than m non-zero weights."""
    return rows["k_cluster"] & (rows["status"] != "diverged")


def spearman_rho(x, y) -> float:
    from scipy import stats

    return float(stats.spearmanr(x, y).statistic)


def spearman_trend(x, y, claim: str, criterion: str, sign: int = 1, points: str = "points") -> Verdict:
    """Does y grow (``sign`` = 1) or fall (-1) with x? Spearman's rho at p < 0.05: holds with a
    significant trend the claimed way, does not hold with one the other way; no significant trend
    (absence of evidence, not evidence of absence), one value of x, fewer than 3 points or an
    undefined p is not testable."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(np.unique(x)) < 2:
        return Verdict.untestable(claim, "only one value of the factor was run (a trend needs two or more).", criterion)
    if len(x) < 3:
        return Verdict.untestable(claim, f"only {len(x)} {points} (a rank correlation needs 3 or more).", criterion)
    from scipy import stats  # here: it is half the import time of a report that needs no trend

    rho, p_value = (float(v) for v in stats.spearmanr(x, y)) if np.ptp(y) > 0 else (float("nan"), float("nan"))
    if np.isnan(p_value):
        return Verdict.untestable(claim, f"the rank correlation is undefined (no variation in the {points}).", criterion)
    criterion = f"{criterion} (a significant trend the other way: does not hold; none: not testable)"
    evidence = f"Spearman rho = {rho:.2f}, p = {p_value:.2g} over {len(x)} {points}"
    if p_value >= 0.05:
        return Verdict(claim, UNTESTABLE, f"{evidence}: no significant trend either way", criterion)
    return Verdict.judged(claim, sign * rho > 0, evidence, criterion)


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
