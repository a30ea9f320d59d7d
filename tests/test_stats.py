"""emrun.stats: the public statistics a claim uses are the built-in claims' own rules, never (nan, nan) silently."""

import numpy as np
import pandas as pd
import pytest

from emrun import stats
from emrun.criteria import FAILS, HOLDS, UNTESTABLE, Verdict
from emrun.report.row_claims import rate_with_interval
from emrun.report.verdicts import _exact_difference


def runs(truths: int, per_truth: int, with_event: dict, m: int = 3, D: int = 4, algorithm: str = "gd") -> pd.DataFrame:
    """Trial rows: ``per_truth`` runs of each truth; truth t has ``with_event.get(t, 0)`` k-cluster endings."""
    return pd.DataFrame([dict(m=m, D=D, algorithm=algorithm, truth_index=t, run_index=r, status="converged",
                              k_cluster=r < with_event.get(t, 0), likelihood_ratio=1.0 - 0.01 * ((t + r) % 7))
                         for t in range(truths) for r in range(per_truth)])


CASES = {"one truth": (1, {0: 3}), "few truths": (4, {1: 2}), "few truths with an event": (12, {3: 1, 7: 5}),
         "many truths with events": (15, {t: t % 4 for t in range(15)}), "no event": (11, {})}


@pytest.mark.parametrize("case", CASES)
def test_the_public_rate_is_the_rule_of_every_k_cluster_table(case):
    truths, events = CASES[case]
    rows = runs(truths, 8, events)
    estimate, table = stats.rate(rows, "k_cluster"), rate_with_interval(rows).iloc[0]
    assert (estimate.value, estimate.low, estimate.high, estimate.method) == (table["rate"], table["low"], table["high"],
                                                                              table["interval"])
    assert estimate.has_interval and "truth" in estimate.method and (estimate.truths, estimate.runs) == (truths, 8 * truths)
    assert estimate.low <= estimate.value <= estimate.high


def test_a_rate_from_one_truth_or_few_says_which_interval_it_is():
    one = stats.rate(runs(1, 20, {0: 4}), lambda r: r["k_cluster"])  # a function of the rows works as a column
    assert one.method == "Wilson, within this truth" and 0 < one.low < 0.2 < one.high < 1
    few = stats.rate(runs(5, 20, {0: 1}), "k_cluster")
    assert few.low == 0.0 and few.high == pytest.approx(stats.exact_upper(1, 5)) and "exact bound" in few.method
    none = stats.rate(runs(3, 5, {}).iloc[:0], "k_cluster")
    assert np.isnan(none.value) and none.method == "no runs: no estimate"


def test_a_difference_with_few_truths_is_the_exact_bound_over_truths():
    first, second = runs(6, 10, {0: 5, 1: 4, 2: 6}), runs(6, 10, {0: 1}, algorithm="em")
    estimate = stats.rate_difference(first, second, "k_cluster")
    assert (estimate.low, estimate.high) == _exact_difference(0.25, 6, 1 / 60, 6)
    assert estimate.value == pytest.approx(0.25 - 1 / 60) and "Clopper-Pearson" in estimate.method
    assert "fewer than 10 truths" in estimate.method


def test_a_difference_pairs_the_sides_that_share_their_truths():
    events = {t: (t * 3) % 7 for t in range(14)}
    first, second = runs(14, 10, events), runs(14, 10, {t: e // 2 for t, e in events.items()}, algorithm="em")
    paired = stats.rate_difference(first, second, "k_cluster")
    apart = stats.rate_difference(first, second, "k_cluster", paired=False)
    assert "paired" in paired.method and "on their own" in apart.method and paired.value == apart.value
    assert paired.high - paired.low < apart.high - apart.low  # the truths' shared luck cancels
    assert paired.low > 0  # every truth has at least as many events on the first side
    with pytest.raises(ValueError, match="different truths"):
        stats.rate_difference(first, second[second["truth_index"] < 12], "k_cluster", paired=True)


def test_a_difference_with_few_events_on_a_side_is_widened():
    first = runs(20, 10, {t: 4 for t in range(20)})
    rare, plain = runs(20, 10, {0: 10}, algorithm="em"), runs(20, 10, {t: 1 for t in range(20)}, algorithm="em")
    widened = stats.rate_difference(first, rare, "k_cluster")
    assert "fewer than 5 truths with an event" in widened.method
    assert widened.high == pytest.approx(0.4)  # the rare side's rate may be 0: the difference up to the first's rate
    assert "widened" not in stats.rate_difference(first, plain, "k_cluster").method


def test_a_mean_has_an_interval_over_truths_or_says_why_not():
    many = stats.mean(runs(12, 5, {}), "likelihood_ratio")
    assert many.method == stats.CLUSTER_BOOTSTRAP and many.low <= many.value <= many.high
    few = stats.mean(runs(4, 5, {}), "likelihood_ratio")
    assert np.isnan(few.low) and "within=" in few.method and few.text().endswith("(no interval)")
    bounded = stats.mean(runs(4, 5, {}), "likelihood_ratio", within=(0.0, 1.0))
    assert 0.0 <= bounded.low < bounded.value <= bounded.high <= 1.0 and "Clopper-Pearson" in bounded.method


def test_the_sign_verdict_names_its_interval():
    estimate = stats.Estimate(0.2, 0.1, 0.3, "bootstrap over truths", 12, 100)
    holds = stats.sign_verdict(estimate, "A beats B")
    assert holds.status == HOLDS and holds.interval == "bootstrap over truths" and "Over 12 truths" in holds.evidence
    assert holds.multiplicity == {"kind": "interval", "status_at_99": None}
    assert stats.sign_verdict(estimate, "A is below B", sign=-1).status == FAILS
    by = stats.sign_verdict(estimate, "A beats B by 0.15", minus=0.15)
    assert by.status == UNTESTABLE and "0.2 [0.1, 0.3]" in by.evidence and "contains 0.15" in by.evidence
    assert "lies above 0.15" in by.criterion
    none = stats.sign_verdict(stats.mean(runs(3, 4, {}), "likelihood_ratio"), "ratio above 0.5", minus=0.5)
    assert none.status == UNTESTABLE and "no interval for the mean" in none.evidence and none.id is None


def test_the_trend_needs_no_claim_spec():
    x = np.repeat([2, 3, 4, 5, 6], 4)
    grows = stats.trend(x, x + np.tile([0.0, 0.1, 0.2, 0.3], 5), "the rate grows with m", points="truths")
    assert grows.status == HOLDS and grows.multiplicity["kind"] == "p-value" and "over 20 truths" in grows.evidence
    assert stats.trend(x, -x, "the rate grows with m").status == FAILS
    assert stats.trend([3, 3, 3], [1, 2, 3], "the rate grows with m").status == UNTESTABLE


def test_an_untestable_verdict_can_name_its_interval():
    verdict = Verdict.untestable("A beats B", "the interval contains 0", "above 0", interval="bootstrap over truths")
    assert verdict.status == UNTESTABLE and verdict.interval == "bootstrap over truths"
    assert Verdict.untestable("A beats B", "no runs").interval is None
