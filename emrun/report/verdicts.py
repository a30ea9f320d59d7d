"""Verdicts and the statistics behind them.

A verdict is computed from rows, never assumed. It is one of three statuses: the claim holds,
does not hold, or is not testable on these rows (by an enumerated rule: a trend over one value
of a factor, a rank correlation over fewer than 3 points or with an undefined p-value, an
estimate whose interval includes 0 where the claim is about its sign, or no rows of the kind the
claim is about). Each verdict names its criterion; when an interval decides it, how the interval
was drawn (runs that share a truth are not independent, so intervals resample truths).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from emrun.criteria import FAILS, HOLDS, UNTESTABLE, Verdict  # noqa: F401 (re-exported: the statistics judge with them)

BOOTSTRAP_RESAMPLES = 2000
# A percentile bootstrap over K clusters (truths, seeds, replicates, inits) under-covers when K is
# small: for normally distributed cluster means its nominal 95% interval covers about 81% at K = 4,
# 90% at K = 10 and 93% at K = 20 (it ignores Student's t and shrinks the spread by sqrt((K - 1)/K)).
# Below 10 clusters no bootstrap interval is given: proportions get exact (Clopper-Pearson) bounds
# over clusters, anything else no interval (so its verdict is not testable).
MIN_CLUSTERS = 10
CLUSTER_BOOTSTRAP = (f"percentile bootstrap over truths ({BOOTSTRAP_RESAMPLES} resamples of the truths, each with all "
                     "its runs; seed 0)")


def verdict_table(verdicts: list[Verdict]) -> pd.DataFrame:
    """Verdicts as a table (one row each, every field as JSON), to be kept as a companion folder's summary."""
    import json

    return pd.DataFrame({"verdict": [json.dumps(v.as_dict(), sort_keys=True) for v in verdicts]})


def verdicts_from_table(table: pd.DataFrame) -> list[Verdict]:
    import json

    return [Verdict.from_dict(json.loads(text)) for text in table["verdict"]]


def wilson_interval(successes, trials, z: float = 1.959964) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson score interval of a binomial proportion (vectorised): for runs of ONE truth."""
    successes, trials = np.asarray(successes, float), np.asarray(trials, float)
    p = successes / trials
    centre = (p + z**2 / (2 * trials)) / (1 + z**2 / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / (1 + z**2 / trials)
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def interval_text(low: float, high: float, spec: str) -> str:
    """"[low, high]", or "(no interval)" where there is none."""
    return "(no interval)" if np.isnan(low) or np.isnan(high) else f"[{low:{spec}}, {high:{spec}}]"


def sign_status(low: float, high: float, sign: int = 1) -> str:
    """The sign rule: the interval on the claimed side of 0 holds, on the other side does not hold,
    containing 0 (or none) is not testable."""
    if np.isnan(low) or low <= 0 <= high:
        return UNTESTABLE
    return HOLDS if (low > 0 if sign > 0 else high < 0) else FAILS


def sign_verdict(spec, params: dict, estimate: float, low: float, high: float, evidence: str, interval: str,
                 sign: int = 1, strict: tuple[float, float] | None = None, earlier: tuple = ()) -> Verdict:
    """A claim (``spec`` with ``params``) about the sign of an estimate (sign = 1: above 0): holds
    when its 95% interval lies on that side of 0, does not hold when on the other, not testable
    when it contains 0 or there is none. ``strict``: the 99% interval, for the multiplicity note."""
    text = f"{evidence} Estimate {estimate:+.3g} {interval_text(low, high, '+.3g')}."
    status = sign_status(low, high, sign)
    if np.isnan(low):
        text += " No interval."
    elif status == UNTESTABLE:
        text += " The interval contains 0."
    verdict = spec.verdict(status, text, params, interval=interval, alternatives=earlier)
    return with_multiplicity(verdict, "interval", None if strict is None else sign_status(*strict, sign))


def replicate_slope_interval(rows: pd.DataFrame, x: str, y: str, seed: int = 0,
                             level: float = 0.95) -> tuple[float, float]:
    """Percentile interval (95%, or ``level``) of the log-log slope of mean(y) against x when whole
    replicates (``truth_index``: each its own sample and start, used at every x) are resampled; no
    interval (NaN) with fewer than MIN_CLUSTERS replicates."""
    replicates = rows["truth_index"].unique()
    if len(replicates) < MIN_CLUSTERS:
        return float("nan"), float("nan")
    table = rows.pivot_table(index="truth_index", columns=x, values=y, aggfunc="mean")  # replicate x N
    rng = np.random.default_rng(seed)
    slopes = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        means = table.iloc[rng.integers(0, len(table), len(table))].mean(axis=0).dropna()
        if len(means) >= 2 and (means > 0).all():
            slopes.append(loglog_slope(means.index, means.to_numpy())[0])
    return _percentiles(slopes, level) if slopes else (float("nan"),) * 2


def _percentiles(values, level: float) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def band_status(low: float, high: float, band: tuple[float, float]) -> str:
    """The band rule: the whole interval inside holds, wholly outside does not hold, else (or with
    no interval) not testable."""
    if np.isnan(low) or np.isnan(high):
        return UNTESTABLE
    if band[0] <= low and high <= band[1]:
        return HOLDS
    return FAILS if high < band[0] or low > band[1] else UNTESTABLE


def band_verdict(spec, params: dict, estimate: float, low: float, high: float, band: tuple[float, float], evidence: str,
                 interval: str, strict: tuple[float, float] | None = None, earlier: tuple = ()) -> Verdict:
    """A claim that an estimate lies in ``band``: holds when its whole 95% interval does, does not
    hold when its whole interval lies outside, not testable when the interval crosses an edge of
    the band (or there is none: too few replicates). ``strict``: the 99% interval, for the
    multiplicity note; ``earlier``: the claim under earlier versions of its criterion."""
    text = f"{evidence} Estimate {estimate:.3f} {interval_text(low, high, '.3f')}."
    status = band_status(low, high, band)
    if np.isnan(low):
        text += f" No interval: fewer than {MIN_CLUSTERS} replicates."
    elif status == UNTESTABLE:
        text += f" The interval crosses an edge of [{band[0]}, {band[1]}]."
    verdict = spec.verdict(status, text, params, interval=interval, alternatives=earlier)
    return with_multiplicity(verdict, "interval", None if strict is None else band_status(*strict, band))


def same_as_before(verdict: Verdict, version: int) -> Verdict:
    """``verdict`` with itself under criterion ``version`` as an alternative: for a rule changed only
    where these rows do not reach (e.g. the minimum number of clusters), so its record can show the
    verdict under the earlier version."""
    return replace(verdict, alternatives=(*verdict.alternatives, replace(verdict, version=version, multiplicity=None,
                                                                         alternatives=())))


def with_multiplicity(verdict: Verdict, kind: str, status_at_99: str | None) -> Verdict:
    """Mark a verdict decided by a 95% interval or a p < 0.05 test, with its status at 99%."""
    return replace(verdict, multiplicity={"kind": kind, "status_at_99": status_at_99})


REPLICATE_BOOTSTRAP = (f"percentile bootstrap over replicates ({BOOTSTRAP_RESAMPLES} resamples of the replicates, each "
                       "with its sample and start at every N; seed 0)")


def cluster_bootstrap(totals: np.ndarray, counts: np.ndarray, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval (95%, or ``level``) of sum(totals) / sum(counts) when whole clusters
    (truths) are resampled: ``totals`` [K] is each truth's sum of the quantity, ``counts`` [K] its
    runs. No interval (NaN) with fewer than MIN_CLUSTERS clusters."""
    totals, counts = np.asarray(totals, float), np.asarray(counts, float)
    if len(totals) < MIN_CLUSTERS:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    picks = rng.multinomial(len(totals), np.full(len(totals), 1 / len(totals)), size=BOOTSTRAP_RESAMPLES)
    return _percentiles((picks @ totals) / (picks @ counts), level)


def cluster_difference_interval(first: tuple, second: tuple, paired: bool = False,
                                seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval (95%, or ``level``) of sum(t1) / sum(c1) - sum(t2) / sum(c2) when whole
    clusters are resampled. ``first`` and ``second`` are (totals [K], counts [K]) per cluster (an
    init with all its runs, a truth, ...). ``paired``: the two share their K clusters (the same
    inits), so one resample draws both; otherwise each side's clusters are resampled on their own.
    With fewer than MIN_CLUSTERS clusters on a side, or no spread in the resamples, proportions get
    exact bounds with clusters as the units, anything else no interval (NaN)."""
    t1, c1 = (np.asarray(a, float) for a in first)
    t2, c2 = (np.asarray(a, float) for a in second)
    proportions = all(((t >= 0) & (t <= c)).all() for t, c in ((t1, c1), (t2, c2)))
    exact = (_exact_difference(t1.sum() / c1.sum(), len(t1), t2.sum() / c2.sum(), len(t2), level)
             if proportions and min(len(t1), len(t2)) else (float("nan"), float("nan")))
    if min(len(t1), len(t2)) < MIN_CLUSTERS:
        return exact
    rng = np.random.default_rng(seed)
    picks1 = rng.multinomial(len(t1), np.full(len(t1), 1 / len(t1)), size=BOOTSTRAP_RESAMPLES)
    picks2 = picks1 if paired else rng.multinomial(len(t2), np.full(len(t2), 1 / len(t2)), size=BOOTSTRAP_RESAMPLES)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimates = (picks1 @ t1) / (picks1 @ c1) - (picks2 @ t2) / (picks2 @ c2)
    estimates = estimates[np.isfinite(estimates)]
    if not len(estimates):
        return float("nan"), float("nan")
    if proportions and np.ptp(estimates) <= 1e-12:
        # Every cluster of each side has the same rate, so resampling clusters cannot show any
        # uncertainty (a zero-width interval): exact bounds with clusters as the units instead.
        return exact
    return _percentiles(estimates, level)


def _exact_difference(rate1: float, clusters1: int, rate2: float, clusters2: int,
                      level: float = 0.95) -> tuple[float, float]:
    """A conservative interval (95%, or ``level``) of rate1 - rate2: Clopper-Pearson bounds (at
    (1 + level) / 2 each, so that both hold together with ``level``) on each side's rate with its
    clusters counted as the trials."""
    from scipy.stats import beta

    tail = (1 - level) / 4

    def bounds(rate: float, n: int) -> tuple[float, float]:
        x = rate * n
        low = 0.0 if x <= 0 else float(beta.ppf(tail, x, n - x + 1))
        high = 1.0 if x >= n else float(beta.ppf(1 - tail, x + 1, n - x))
        return low, high

    (low1, high1), (low2, high2) = bounds(rate1, clusters1), bounds(rate2, clusters2)
    return low1 - high2, high1 - low2


def ended_at_k_cluster(rows: pd.DataFrame) -> pd.Series:
    """A run that ended (not diverged) with fewer than m non-zero weights."""
    return rows["k_cluster"] & (rows["status"] != "diverged")


def spearman_rho(x, y) -> float:
    from scipy import stats

    return float(stats.spearmanr(x, y).statistic)


def spearman_trend(x, y, spec, params: dict, sign: int = 1, points: str = "points",
                   absence_failed_until: int | None = None) -> Verdict:
    """Does y grow (``sign`` = 1) or fall (-1) with x? Spearman's rho at p < 0.05: holds with a
    significant trend the claimed way, does not hold with one the other way; no significant trend
    (absence of evidence, not evidence of absence), one value of x, fewer than 3 points or an
    undefined p is not testable. ``spec`` with ``params`` is the claim judged.
    ``absence_failed_until``: the claim's earlier criterion version under which no significant trend
    did not hold (kept, for its criterion record)."""
    verdict = _spearman_trend(x, y, spec, params, sign, points)
    if absence_failed_until is None:
        return verdict
    absent = verdict.status == UNTESTABLE and "no significant trend" in verdict.evidence
    earlier = replace(verdict, status=FAILS, version=absence_failed_until) if absent else replace(
        verdict, version=absence_failed_until)
    return replace(verdict, alternatives=(earlier,))


def _spearman_trend(x, y, spec, params: dict, sign: int, points: str) -> Verdict:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(np.unique(x)) < 2:
        return spec.untestable("only one value of the factor was run (a trend needs two or more).", **params)
    if len(x) < 3:
        return spec.untestable(f"only {len(x)} {points} (a rank correlation needs 3 or more).", **params)
    from scipy import stats  # here: it is half the import time of a report that needs no trend

    rho, p_value = (float(v) for v in stats.spearmanr(x, y)) if np.ptp(y) > 0 else (float("nan"), float("nan"))
    if np.isnan(p_value):
        return spec.untestable(f"the rank correlation is undefined (no variation in the {points}).", **params)
    evidence = f"Spearman rho = {rho:.2f}, p = {p_value:.2g} over {len(x)} {points}"

    def status(alpha: float) -> str:
        return UNTESTABLE if p_value >= alpha else HOLDS if sign * rho > 0 else FAILS

    verdict = (spec.untestable(f"{evidence}: no significant trend either way", **params) if p_value >= 0.05
               else spec.judged(sign * rho > 0, evidence, **params))
    return with_multiplicity(verdict, "p-value", status(0.01))


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
