"""Verdicts are computed from rows: feeding rows where a claim fails flips it."""

import numpy as np
import pandas as pd
import pytest

from emrun.report import verdicts as v
from emrun.report.kcluster import cell_summary, truth_spread


def synthetic_rows(gd_rate, em_rate=lambda m, D: 0.0, em_ratio=1.0, runs=40, truths=1, seed=0):
    """Rows of a k-cluster experiment where run r of a cell ends at k < m when r / runs < rate."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in range(2, 7):
        for D in range(2, 7):
            for algorithm, rate in (("em", em_rate), ("gd", gd_rate)):
                for t in range(truths):
                    for r in range(runs):
                        hit = r < round(rate(m, D) * runs)
                        rows.append(dict(m=m, D=D, algorithm=algorithm, truth_index=t, run_index=r,
                                         batch_id=f"{m}-{D}-{algorithm}-{t}", status="capped", k_cluster=hit,
                                         likelihood_ratio=em_ratio if algorithm == "em" else rng.uniform(0.8, 1),
                                         iterations=10, batch_seconds=1.0))
    return pd.DataFrame(rows)


def test_claims_hold_on_rows_where_they_hold():
    rows = synthetic_rows(lambda m, D: 0.05 * m + 0.03 * D)
    verdicts = v.k_cluster_claims(rows)
    assert all(verdict.holds for verdict in verdicts), [verdict.markdown() for verdict in verdicts]


def test_em_at_k_cluster_flips_the_em_claim():
    rows = synthetic_rows(lambda m, D: 0.05 * m, em_rate=lambda m, D: 0.1 if (m, D) == (4, 3) else 0.0)
    verdict = v.em_never_k_cluster(rows)
    assert not verdict.holds
    assert "no EM run does in 24 of 25 cells" in verdict.evidence and "4 of 1000" in verdict.evidence


def test_em_below_the_threshold_flips_near_optimal():
    assert v.em_always_near_optimal(synthetic_rows(lambda m, D: 0.2)).holds
    verdict = v.em_always_near_optimal(synthetic_rows(lambda m, D: 0.2, em_ratio=0.995))
    assert not verdict.holds and "minimum 0.9950" in verdict.evidence


def test_trend_claims_flip_when_the_rate_falls():
    falling = synthetic_rows(lambda m, D: 0.9 - 0.1 * m - 0.05 * D)
    assert not v.gd_rate_grows_with(falling, "m").holds
    assert not v.gd_rate_grows_with(falling, "D").holds
    flat = synthetic_rows(lambda m, D: 0.3)
    assert not v.gd_rate_grows_with(flat, "m").holds


def test_gd_versus_em_is_paired_and_flips():
    assert not v.gd_more_often_than_em(synthetic_rows(lambda m, D: 0.0)).holds
    same = synthetic_rows(lambda m, D: 0.2, em_rate=lambda m, D: 0.2)
    assert not v.gd_more_often_than_em(same).holds  # every pair agrees: no evidence either way


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
    spread = truth_spread(synthetic_rows(lambda m, D: 0.25, truths=3))
    spread = spread[spread["algorithm"] == "gd"]
    assert spread["mean_rate"].eq(0.25).all() and spread["truths"].eq(3).all()


def test_rule_comparison_counts_published_cells_in_each_rules_range():
    from emrun.report.kcluster import rule_comparison

    low = synthetic_rows(lambda m, D: 0.0, truths=3, runs=20)
    published_like = synthetic_rows(lambda m, D: 0.45, truths=3, runs=20)
    table, agree = rule_comparison({"exact": ("a", low), "as_published": ("b", published_like)}, "uai2019_table2")
    assert (table["exact"] == 0).all() and (table["as_published"] == 0.45).all()
    assert agree["exact"] == 1  # Table 2's one published 0.000 (m = 2, D = 4) lies in a [0, 0] range
    assert agree["as_published"] == 0  # no published value is exactly 0.45
