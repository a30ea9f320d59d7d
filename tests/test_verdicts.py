"""Verdicts are computed from rows: feeding rows where a claim fails flips it, and rows that cannot
decide it make it "not testable"."""

import numpy as np
import pandas as pd
import pytest

from emrun.report import claims
from emrun.report import row_claims as c
from emrun.report import verdicts as v
from emrun.report.kcluster import cell_summary
from emrun.report.published import per_truth_counts, rule_comparison, truth_spread

CONFIG = {"grid": {"algorithm": ["em", "gd"]}}


def synthetic_rows(gd_rate, em_rate=lambda m, D: 0.0, em_ratio=1.0, runs=40, truths=1, seed=0, ms=range(2, 7),
                   Ds=range(2, 7)):
    """Rows of a k-cluster experiment where run r of a cell ends at k < m when r / runs < rate."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in ms:
        for D in Ds:
            for algorithm, rate in (("em", em_rate), ("gd", gd_rate)):
                for t in range(truths):
                    for r in range(runs):
                        hit = r < round(rate(m, D) * runs)
                        rows.append(dict(m=m, D=D, algorithm=algorithm, truth_index=t, run_index=r, init="uniform",
                                         step=None if algorithm == "em" else 0.02,
                                         batch_id=f"{m}-{D}-{algorithm}-{t}", status="capped", k_cluster=hit,
                                         likelihood_ratio=em_ratio if algorithm == "em" else rng.uniform(0.8, 1),
                                         iterations=10, batch_seconds=1.0))
    return pd.DataFrame(rows)


def paper_claims(rows):
    return claims.judge(rows, CONFIG, list(c.ARTEFACTS["uai2019_table1"].claims))


def test_claims_hold_on_rows_where_they_hold():
    verdicts = paper_claims(synthetic_rows(lambda m, D: 0.05 * m + 0.03 * D))
    assert all(verdict.holds for verdict in verdicts), [verdict.markdown() for verdict in verdicts]
    assert all(verdict.criterion for verdict in verdicts)


def test_em_at_k_cluster_flips_the_em_claim():
    rows = synthetic_rows(lambda m, D: 0.05 * m, em_rate=lambda m, D: 0.1 if (m, D) == (4, 3) else 0.0)
    verdict = c.never_ends_at_k_cluster(rows, CONFIG, "em")
    assert verdict.status == v.FAILS
    assert "4 of the 1000 runs that started outside the k-cluster region end at k < m (in 1 of 25 cells)" in verdict.evidence


def test_em_claim_judges_runs_that_started_outside_the_region_and_reports_the_others_apart():
    # Every k-cluster ending of EM comes from a run that started with a weight already below the threshold.
    rows = synthetic_rows(lambda m, D: 0.05 * m, em_rate=lambda m, D: 0.1 if (m, D) == (4, 3) else 0.0)
    em = rows["algorithm"] == "em"
    rows["init_pi"] = [[0.5, 0.5]] * len(rows)
    rows.loc[em & rows["k_cluster"], "init_pi"] = pd.Series([[1e-5, 1 - 1e-5]] * int((em & rows["k_cluster"]).sum()),
                                                            index=rows.index[em & rows["k_cluster"]])
    verdict = c.never_ends_at_k_cluster(rows, CONFIG, "em")
    assert verdict.status == v.HOLDS and "Apart: 4 runs started with a weight below the threshold, 4 of them" in verdict.evidence
    assert [alt.status for alt in verdict.alternatives] == [v.FAILS]  # version 1 counted them


def test_em_below_the_threshold_flips_near_optimal():
    assert c.always_near_optimal(synthetic_rows(lambda m, D: 0.2), CONFIG).holds
    verdict = c.always_near_optimal(synthetic_rows(lambda m, D: 0.2, em_ratio=0.995), CONFIG)
    assert verdict.status == v.FAILS and "minimum 0.9950" in verdict.evidence


def test_a_claim_about_an_algorithm_that_did_not_run_is_not_testable():
    rows = synthetic_rows(lambda m, D: 0.2)
    assert c.never_ends_at_k_cluster(rows, CONFIG, "heavy_ball").status == v.UNTESTABLE
    assert c.ends_at_k_cluster_more_often(rows, CONFIG, "heavy_ball", "gd").status == v.UNTESTABLE


def test_trend_claims_flip_when_the_rate_falls_and_need_two_values_and_three_points():
    falling = synthetic_rows(lambda m, D: 0.9 - 0.1 * m - 0.05 * D)
    assert c.k_cluster_rate_grows_with(falling, CONFIG, "m").status == v.FAILS
    assert c.k_cluster_rate_grows_with(falling, CONFIG, "D").status == v.FAILS
    one_m = synthetic_rows(lambda m, D: 0.1 * D, ms=[3])
    assert c.k_cluster_rate_grows_with(one_m, CONFIG, "m").status == v.UNTESTABLE  # one value of m
    two_points = synthetic_rows(lambda m, D: 0.1 * m, ms=[2, 3], Ds=[2])
    assert c.k_cluster_rate_grows_with(two_points, CONFIG, "m").status == v.UNTESTABLE  # fewer than 3 points
    flat = synthetic_rows(lambda m, D: 0.3)
    assert c.k_cluster_rate_grows_with(flat, CONFIG, "m").status == v.UNTESTABLE  # rho undefined: no variation


def test_a_trend_claim_without_a_significant_trend_either_way_is_not_testable():
    # Absence of evidence is not evidence of absence: a rate that wobbles with no trend in D.
    wobble = synthetic_rows(lambda m, D: 0.1 * m + (0.05 if D % 2 else 0.0))
    verdict = c.k_cluster_rate_grows_with(wobble, CONFIG, "D")
    assert verdict.status == v.UNTESTABLE and "no significant trend" in verdict.evidence, verdict.markdown()
    assert c.k_cluster_rate_grows_with(wobble, CONFIG, "m").holds


def test_gd_versus_em_is_paired_flips_and_is_not_testable_when_its_interval_holds_zero():
    assert c.ends_at_k_cluster_more_often(synthetic_rows(lambda m, D: 0.3), CONFIG).holds
    reversed_rows = synthetic_rows(lambda m, D: 0.0, em_rate=lambda m, D: 0.3)
    assert c.ends_at_k_cluster_more_often(reversed_rows, CONFIG).status == v.FAILS
    assert c.ends_at_k_cluster_less_often(reversed_rows, CONFIG, "gd", "em").holds
    same = synthetic_rows(lambda m, D: 0.2, em_rate=lambda m, D: 0.2)
    verdict = c.ends_at_k_cluster_more_often(same, CONFIG)
    assert verdict.status == v.UNTESTABLE and "contains 0" in verdict.evidence  # every pair agrees
    assert verdict.interval == v.CLUSTER_BOOTSTRAP


def test_diverged_runs_count_in_the_denominator_not_as_k_cluster():
    rows = synthetic_rows(lambda m, D: 0.5, runs=10)
    rows.loc[(rows["algorithm"] == "gd") & (rows["run_index"] == 0), "status"] = "diverged"
    summary = cell_summary(rows)
    gd = summary[summary["algorithm"] == "gd"]
    assert (gd["runs"] == 10).all() and (gd["diverged"] == 1).all() and (gd["k_cluster"] == 4).all()
    assert gd["rate"].eq(0.4).all()


def test_wilson_interval_and_truth_spread():
    low, high = v.wilson_interval(np.array([0, 30, 60]), np.array([60, 60, 60]))
    assert low[0] == 0 and high[0] == pytest.approx(0.0602, abs=1e-3)
    assert low[1] == pytest.approx(0.3773, abs=1e-3) and high[1] == pytest.approx(0.6227, abs=1e-3)
    assert high[2] == 1
    spread = truth_spread(per_truth_counts(synthetic_rows(lambda m, D: 0.25, truths=3)))
    spread = spread[spread["algorithm"] == "gd"]
    assert spread["mean_rate"].eq(0.25).all() and spread["truths"].eq(3).all()


def test_interval_over_truths_is_wider_than_wilson_when_truths_differ_and_matches_it_when_they_do_not():
    rng = np.random.default_rng(1)

    def cell(rates):
        rows = []
        for t, rate in enumerate(rates):
            hits = rng.random(60) < rate
            rows += [dict(m=3, D=3, algorithm="gd", truth_index=t, run_index=r, k_cluster=bool(h), status="capped")
                     for r, h in enumerate(hits)]
        return c.rate_with_interval(pd.DataFrame(rows)).iloc[0]

    def wilson_width(row):
        low, high = v.wilson_interval(row["k_cluster"], row["runs"])
        return float(high - low)

    differing = cell(rng.uniform(0.0, 0.8, size=20))
    assert differing["interval"] == "bootstrap over truths"
    assert differing["high"] - differing["low"] > 1.5 * wilson_width(differing)
    alike = cell([0.3] * 20)
    assert abs((alike["high"] - alike["low"]) - wilson_width(alike)) < 0.35 * wilson_width(alike)
    none = cell([0.0] * 20)
    assert none["low"] == 0 and none["high"] == pytest.approx(1 - 0.025 ** (1 / 20)) and "fewer than" in none["interval"]
    # One event in one truth: its interval bounds the same quantity, so it is no narrower than none's.
    one = c.rate_with_interval(pd.DataFrame(
        [dict(m=3, D=3, algorithm="gd", truth_index=t, run_index=r, k_cluster=(t, r) == (0, 0), status="capped")
         for t in range(20) for r in range(60)])).iloc[0]
    assert one["k_cluster"] == 1 and one["high"] > none["high"] and one["low"] == 0
    # Few truths, every one with an event: the share of truths with one is 1, a bound of 1 (not NaN);
    # fewer than 10 truths give no bootstrap, so no lower bound above 0 either.
    every = cell([0.5] * 3)
    assert every["interval"].startswith("fewer than 10 truths") and every["high"] == 1.0 and every["low"] == 0


def test_rule_comparison_counts_published_cells_in_each_rules_range():
    low = per_truth_counts(synthetic_rows(lambda m, D: 0.0, truths=3, runs=20))
    published_like = per_truth_counts(synthetic_rows(lambda m, D: 0.45, truths=3, runs=20))
    table, agree = rule_comparison({"exact": ("a", low), "as_published": ("b", published_like)}, "uai2019_table2")
    assert (table["exact"] == 0).all() and (table["as_published"] == 0.45).all()
    assert agree["exact"] == 1  # Table 2's one published 0.000 (m = 2, D = 4) lies in a [0, 0] range
    assert agree["as_published"] == 0  # no published value is exactly 0.45


def test_a_paired_cluster_interval_is_narrower_when_the_clusters_move_together():
    from emrun.report.verdicts import cluster_difference_interval

    rng = np.random.default_rng(1)
    level = rng.uniform(0, 1, 40)  # each cluster's own level, shared by both sides
    first, second = (level + 0.1, np.ones(40)), (level + rng.normal(0, 0.01, 40), np.ones(40))
    paired = cluster_difference_interval(first, second, paired=True)
    unpaired = cluster_difference_interval(first, second)
    assert paired[0] > 0 and paired[1] - paired[0] < (unpaired[1] - unpaired[0]) / 5
    # Fewer than 10 clusters: no bootstrap; a proportion gets exact bounds over clusters (wide), anything else none.
    low, high = cluster_difference_interval(([1.0], [2.0]), ([1.0, 0.0], [2.0, 2.0]))
    assert low < -0.5 and high > 0.5
    assert np.isnan(cluster_difference_interval(([3.0], [2.0]), ([1.0, 0.0], [2.0, 2.0]))[0])  # 1.5 is no proportion


def test_digits_k_cluster_claim_is_not_testable_where_every_run_diverged():
    from emrun.report.digits import _at_every_m

    def paper(k_cluster, diverged):
        return pd.DataFrame({"m": [2, 5], "runs": [20, 20], "k_cluster": k_cluster, "diverged": diverged,
                             "median_k": [2, 2]})

    from emrun.criteria.lecture import DIGITS_GD_K_CLUSTER

    judge = lambda table: _at_every_m(table, "k_cluster", DIGITS_GD_K_CLUSTER, needs_finished=True).status  # noqa: E731
    assert judge(paper([0, 0], [20, 20])) == v.UNTESTABLE
    assert judge(paper([0, 3], [20, 5])) == v.UNTESTABLE  # where none ended at one, none ended at all
    assert judge(paper([0, 3], [12, 5])) == v.FAILS  # 8 runs ended at m = 2, none at a k-cluster point
    assert judge(paper([1, 3], [19, 5])) == v.HOLDS
