"""Statistics for claims: estimates with 95% intervals over truths, and the verdicts they decide.

Runs that share a truth (the same (m, D, truth_index): the same true mixture and data) are not
independent: two runs of one truth agree far more often than two runs of two truths. Every
interval here therefore treats a truth with all its runs as one unit. With 10 or more truths it is
a percentile bootstrap that resamples whole truths; with fewer truths (where such a bootstrap
covers too little) or few truths with an event, it falls back to exact (Clopper-Pearson) bounds
with the truths counted as the trials. Each :class:`Estimate` says in ``method`` which interval
it is, in words for the ``interval=`` field of a :class:`~emrun.criteria.Verdict`; an estimate
without an interval says why there, never silently.

These are the rules the built-in claims use (the rate below is the one every k-cluster table
shows), so a plug-in claim written with them is judged as the built-in ones are::

    from emrun.stats import rate, sign_verdict
    estimate = rate(runs, runs["k_cluster"])          # runs: the rows of one algorithm
    verdict = sign_verdict(estimate, "GD ends at k-cluster points", minus=0.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from emrun.criteria import Verdict
from emrun.report import verdicts as _verdicts
from emrun.report.verdicts import (  # noqa: F401 (re-exported: the per-cluster forms, for claims that group otherwise)
    CLUSTER_BOOTSTRAP,
    MIN_CLUSTERS,
    cluster_bootstrap,
    cluster_difference_interval,
    wilson_interval,
)

TRUTH = ("m", "D", "truth_index")  # the columns that name a truth in trial rows: its runs share all three
FEW_TRUTHS = 5  # fewer truths than this with an event: a bootstrap over truths cannot see how events cluster
Column = str | pd.Series | np.ndarray | Callable[[pd.DataFrame], pd.Series]


@dataclass(frozen=True)
class Estimate:
    """An estimate and its interval. ``value``: the estimate (a rate, a difference of rates, a
    mean); ``low``, ``high``: its interval (NaN only when there is none, and ``method`` says why);
    ``method``: how the interval was drawn, for ``Verdict(interval=...)``; ``truths``: the
    clusters it rests on (for a difference, the fewer of the two sides); ``runs``: the runs."""

    value: float
    low: float
    high: float
    method: str
    truths: int
    runs: int
    level: float = 0.95

    @property
    def has_interval(self) -> bool:
        return not (np.isnan(self.low) or np.isnan(self.high))

    def text(self, spec: str = ".3g") -> str:
        """The estimate with its interval: "0.12 [0.05, 0.21]" (or "0.12 (no interval)")."""
        return f"{self.value:{spec}} {_verdicts.interval_text(self.low, self.high, spec)}"


def _values(rows: pd.DataFrame, column: Column) -> pd.Series:
    """A per-run column of ``rows``: its name, a Series or array aligned with the rows, or a function of the rows."""
    if callable(column) and not isinstance(column, (pd.Series, np.ndarray)):
        column = column(rows)
    if isinstance(column, str):
        return rows[column]
    if len(column) != len(rows):
        raise ValueError(f"a per-run column of {len(column)} values for {len(rows)} rows")
    return pd.Series(np.asarray(column), index=rows.index)


def truth_columns(rows: pd.DataFrame) -> tuple[str, ...]:
    """The columns that name a truth in these rows: (m, D, truth_index), with any truth option the
    rows carry between them (a grid axis such as ``separation``: truth 0 at separation 6 and truth 0
    at separation 12 are two truths, drawn from one generator). Without truth options: TRUTH."""
    from emrun.truths import option_names

    return ("m", "D", *(c for c in option_names() if c in rows.columns), "truth_index")


def per_truth(rows: pd.DataFrame, column: Column, truth: Sequence[str] | None = None) -> pd.DataFrame:
    """Per truth (one row each, indexed by the ``truth`` columns): ``sum`` of the per-run column and
    ``size``, its runs. What every interval here is computed from. ``truth``: the columns naming a
    truth [default: :func:`truth_columns`]."""
    values = _values(rows, column).astype(float)
    return values.groupby([rows[c] for c in (truth or truth_columns(rows))]).agg(["sum", "size"])


def exact_upper(successes: int, trials: int, level: float = 0.95) -> float:
    """The exact (Clopper-Pearson) upper end of a proportion's two-sided ``level`` interval."""
    from scipy.stats import beta

    return 1.0 if successes >= trials else float(beta.ppf(1 - (1 - level) / 2, successes + 1, trials - successes))


def truth_rate_interval(events: np.ndarray, runs: np.ndarray) -> tuple[float, float, str]:
    """The 95% interval of a rate sum(events) / sum(runs) from per-truth counts (``events`` [K],
    ``runs`` [K]), with its method: the rule of every k-cluster rate in a report.

    - One truth: Wilson over its runs ("within this truth": about that truth only).
    - 2 to 9 truths: no bootstrap; [0, exact upper bound on the share of truths with an event].
      A truth's rate is at most 1, so the rate lies below that share.
    - 10 or more truths, fewer than FEW_TRUTHS of them with an event: the bootstrap over truths,
      its upper end raised to at least that exact bound (resampling truths cannot see how few
      events cluster: one event in 1200 runs gave [0, 0.0025], narrower than no event at all).
    - Otherwise: the percentile bootstrap over truths.
    """
    events, runs = np.asarray(events), np.asarray(runs)
    total, n_runs, truths = int(events.sum()), int(runs.sum()), len(events)
    with_event = int((events > 0).sum())
    share_bound = exact_upper(with_event, truths)
    if truths == 1:
        low, high = (float(v) for v in wilson_interval(total, n_runs))
        return low, high, "Wilson, within this truth"
    if truths < MIN_CLUSTERS:
        return 0.0, share_bound, (f"fewer than {MIN_CLUSTERS} truths: no bootstrap; the upper end is the exact bound on "
                                  "the share of truths with an event, truths counted once")
    if with_event < FEW_TRUTHS:
        low, high = cluster_bootstrap(events, runs) if total else (0.0, 0.0)
        return low, max(share_bound, high), (f"fewer than {FEW_TRUTHS} truths with an event: upper end at least the "
                                             "exact bound on the share of truths with one, truths counted once")
    low, high = cluster_bootstrap(events, runs)
    return low, high, "bootstrap over truths"


def rate(rows: pd.DataFrame, event: Column, truth: Sequence[str] | None = None) -> Estimate:
    """The rate of an event over runs (``event``: a boolean per run, as a column name, a Series or
    array aligned with ``rows``, or a function of the rows) with its 95% interval over truths
    (:func:`truth_rate_interval`). No runs: no interval, and the method says so."""
    if rows.empty:
        return Estimate(float("nan"), float("nan"), float("nan"), "no runs: no estimate", 0, 0)
    counts = per_truth(rows, lambda r: _values(r, event).astype(bool), truth)
    low, high, method = truth_rate_interval(counts["sum"].to_numpy(), counts["size"].to_numpy())
    return Estimate(float(counts["sum"].sum() / counts["size"].sum()), low, high, method, len(counts), int(counts["size"].sum()))


def rate_difference(first: pd.DataFrame, second: pd.DataFrame, event: Column, paired: bool | None = None,
                    truth: Sequence[str] | None = None, level: float = 0.95) -> Estimate:
    """rate(first) - rate(second) of an event (as in :func:`rate`; a function of the rows is applied
    to each side) with its ``level`` interval over truths.

    ``paired``: both sides ran on the same truths (say, two algorithms from the same inits), so one
    bootstrap resample draws each truth for both sides and the truths' shared luck cancels. None
    (the default): paired exactly when both sides hold runs of the same truths. With fewer than
    MIN_CLUSTERS truths on a side, or no spread in the resamples: exact (Clopper-Pearson) bounds on
    each side with truths counted as the trials. With fewer than FEW_TRUTHS truths with an event
    on a side, the bootstrap interval is widened to include those exact bounds."""
    sides = [per_truth(rows, lambda r: _values(r, event).astype(bool), truth) for rows in (first, second)]
    if not len(sides[0]) or not len(sides[1]):
        empty = "first" if not len(sides[0]) else "second"
        return Estimate(float("nan"), float("nan"), float("nan"), f"no runs on the {empty} side: no estimate", 0, 0, level)
    same = sides[0].index.equals(sides[1].index) or set(sides[0].index) == set(sides[1].index)
    if paired is None:
        paired = same
    elif paired and not same:
        raise ValueError("paired=True, but the two sides hold runs of different truths")
    if paired:
        sides[1] = sides[1].loc[sides[0].index]  # the same truth at the same position: one resample draws both
    (t1, c1), (t2, c2) = ((side["sum"].to_numpy(), side["size"].to_numpy()) for side in sides)
    value = float(t1.sum() / c1.sum() - t2.sum() / c2.sum())
    low, high = cluster_difference_interval((t1, c1), (t2, c2), paired=paired, level=level)
    exact = _verdicts._exact_difference(t1.sum() / c1.sum(), len(t1), t2.sum() / c2.sum(), len(t2), level)
    how = "paired, one resample draws each truth for both sides" if paired else "each side's truths resampled on their own"
    truths, runs = min(len(t1), len(t2)), int(c1.sum() + c2.sum())
    if truths < MIN_CLUSTERS or (low, high) == exact:
        method = (f"exact (Clopper-Pearson) bounds on each side, truths counted as the trials "
                  f"({'fewer than ' + str(MIN_CLUSTERS) + ' truths' if truths < MIN_CLUSTERS else 'no spread over truths'})")
        return Estimate(value, *exact, method, truths, runs, level)
    method = f"percentile bootstrap over truths ({_verdicts.BOOTSTRAP_RESAMPLES} resamples, {how}; seed 0)"
    few = [int((t > 0).sum()) < FEW_TRUTHS for t in (t1, t2)]
    if any(few):
        # Resampling truths cannot see how few events cluster (see truth_rate_interval): such a side
        # gets its exact bounds, the other its own bootstrap, each at (1 + level) / 2 so that both hold
        # together; the interval is widened to cover what they allow.
        (l1, h1), (l2, h2) = (_exact_side(t.sum() / c.sum(), len(t), level) if f else
                              cluster_bootstrap(t, c, level=(1 + level) / 2) for t, c, f in ((t1, c1, few[0]), (t2, c2, few[1])))
        low, high = min(low, l1 - h2), max(high, h1 - l2)
        method += (f"; fewer than {FEW_TRUTHS} truths with an event on a side: widened to that side's exact bounds "
                   "(truths counted as the trials) against the other side's interval, each at (1 + level) / 2")
    return Estimate(value, low, high, method, truths, runs, level)


def _exact_side(rate: float, truths: int, level: float) -> tuple[float, float]:
    """Clopper-Pearson bounds on a rate at (1 + level) / 2 with its truths as the trials (a truth
    counted rate * truths times): how :func:`cluster_difference_interval` bounds each side."""
    from scipy.stats import beta

    tail, x = (1 - level) / 4, rate * truths
    low = 0.0 if x <= 0 else float(beta.ppf(tail, x, truths - x + 1))
    high = 1.0 if x >= truths else float(beta.ppf(1 - tail, x + 1, truths - x))
    return low, high


def mean(rows: pd.DataFrame, value: Column, truth: Sequence[str] | None = None, within: tuple[float, float] | None = None,
         level: float = 0.95) -> Estimate:
    """The mean over runs of a per-run quantity (a column name, Series, array or function of the
    rows) with its ``level`` interval over truths: the percentile bootstrap of whole truths with 10
    or more. With fewer, a quantity known to lie ``within`` (low, high) (a likelihood ratio lies in
    [0, 1]) gets exact bounds on the mean of its truths' means, rescaled to [0, 1], with truths as
    the trials; any other quantity gets no interval (the method says so, and a sign verdict on it
    is not testable)."""
    if rows.empty:
        return Estimate(float("nan"), float("nan"), float("nan"), "no runs: no estimate", 0, 0, level)
    sums = per_truth(rows, value, truth)
    totals, counts = sums["sum"].to_numpy(), sums["size"].to_numpy()
    estimate, truths, runs = float(totals.sum() / counts.sum()), len(sums), int(counts.sum())
    if truths >= MIN_CLUSTERS:
        low, high = cluster_bootstrap(totals, counts, level=level)
        return Estimate(estimate, low, high, CLUSTER_BOOTSTRAP, truths, runs, level)
    if within is None:
        return Estimate(estimate, float("nan"), float("nan"), f"fewer than {MIN_CLUSTERS} truths ({truths}): no interval "
                        "for the mean of an unbounded quantity (give within=(low, high) if it is bounded)", truths, runs,
                        level)
    from scipy.stats import beta

    span = within[1] - within[0]
    x = float(np.clip(((totals / counts - within[0]) / span).sum(), 0, truths))  # the truths' means, in [0, 1], summed
    tail = (1 - level) / 2
    low = 0.0 if x <= 0 else float(beta.ppf(tail, x, truths - x + 1))
    high = 1.0 if x >= truths else float(beta.ppf(1 - tail, x + 1, truths - x))
    method = (f"fewer than {MIN_CLUSTERS} truths ({truths}): exact (Clopper-Pearson) bounds on the mean of the truths' "
              f"means in [{within[0]:g}, {within[1]:g}], truths counted as the trials")
    return Estimate(estimate, within[0] + span * low, within[0] + span * high, method, truths, runs, level)


class _Wording:
    """A claim's wording and criterion, in the form the built-in trend rule takes a declared claim:
    it makes plain :class:`Verdict` s (a registered claim's id and record key are filled in by the
    report)."""

    def __init__(self, claim: str, criterion: str):
        self.claim, self.criterion = claim, criterion

    def judged(self, holds: bool, evidence: str, **params) -> Verdict:
        return Verdict.judged(self.claim, holds, evidence, self.criterion)

    def untestable(self, why: str, **params) -> Verdict:
        return Verdict.untestable(self.claim, why, self.criterion)


def sign_verdict(estimate: Estimate, claim: str, criterion: str = "", sign: int = 1, minus: float = 0.0,
                 evidence: str = "", strict: Estimate | None = None) -> Verdict:
    """Does ``estimate.value`` lie above ``minus`` (``sign`` = 1) or below it (-1)? Holds when the
    whole interval lies on the claimed side, does not hold when it lies wholly on the other side,
    and is not testable when it contains ``minus`` or there is no interval (the built-in sign rule,
    :func:`emrun.report.verdicts.sign_status`). The verdict's ``interval`` is the estimate's method,
    and its evidence gives the estimate, its interval and the method. ``strict``: the same estimate
    at level 0.99, for the report's note on many claims judged at 95%."""
    side = "above" if sign > 0 else "below"
    criterion = criterion or f"the {estimate.level:.0%} interval over truths lies {side} {minus:g} (not testable if it " \
                             f"contains {minus:g})"
    status = _verdicts.sign_status(estimate.low - minus, estimate.high - minus, sign)
    text = (f"{evidence} Over {estimate.truths} truths and {estimate.runs} runs: {estimate.text()} "
            f"({estimate.method})").strip()
    if not estimate.has_interval:
        text += ". No interval."
    elif status == _verdicts.UNTESTABLE:
        text += f". The interval contains {minus:g}."
    verdict = Verdict(claim, status, text if text.endswith(".") else text + ".", criterion, estimate.method)
    at_99 = None if strict is None else _verdicts.sign_status(strict.low - minus, strict.high - minus, sign)
    return _verdicts.with_multiplicity(verdict, "interval", at_99)


def trend(x, y, claim: str, criterion: str = "", sign: int = 1, points: str = "points") -> Verdict:
    """Does y grow (``sign`` = 1) or fall (-1) with x (arrays of equal length)? Spearman's rank
    correlation at p < 0.05: holds with a significant trend the claimed way, does not hold with one
    the other way; no significant trend, one value of x, fewer than 3 points or no variation in y
    is not testable. Give one point per truth (say, each truth's rate), not one per run: runs of a
    truth are not independent. ``points`` names them in the evidence."""
    criterion = criterion or (f"Spearman rho {'>' if sign > 0 else '<'} 0 with p < 0.05 over {points} (a significant "
                              "trend the other way: does not hold; none: not testable)")
    return _verdicts.spearman_trend(x, y, _Wording(claim, criterion), {}, sign=sign, points=points)


__all__ = ["TRUTH", "truth_columns", "FEW_TRUTHS", "MIN_CLUSTERS", "Estimate", "per_truth", "rate", "rate_difference", "mean",
           "truth_rate_interval", "exact_upper", "sign_verdict", "trend", "cluster_bootstrap",
           "cluster_difference_interval", "wilson_interval"]
