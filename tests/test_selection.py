"""Tables 3-4 selection: first k-cluster run of a truth, skipped truths, blocks of truths."""

import numpy as np
import pandas as pd

from emrun.report.table34 import bootstrap_mean_interval
from emrun.selection import first_k_cluster_run, select_truths, truth_ratios, truths_needed


def rows_for(hits: dict[int, list[int]], runs: int = 4, m: int = 3, D: int = 4, diverged=()):
    """GD rows where run r of truth t ends at a k-cluster point when r is in hits[t], plus one EM
    run per truth. The ratio of GD run r of truth t is 0.9 - 0.01 t - 0.001 r; EM's is 0.9995."""
    rows = []
    for t, hit_runs in hits.items():
        for r in range(runs):
            rows.append(dict(m=m, D=D, algorithm="gd", truth_index=t, run_index=r, k=2 if r in hit_runs else 3,
                             k_cluster=r in hit_runs, status="diverged" if (t, r) in diverged else "capped",
                             likelihood_ratio=0.9 - 0.01 * t - 0.001 * r))
        rows.append(dict(m=m, D=D, algorithm="em", truth_index=t, run_index=0, k=3, k_cluster=False,
                         status="converged", likelihood_ratio=0.9995))
    return pd.DataFrame(rows)


def test_first_run_is_the_lowest_run_index_that_ends_at_k_cluster():
    firsts = first_k_cluster_run(rows_for({0: [2, 1], 1: [], 2: [3]}, diverged={(2, 3)}))
    assert list(firsts["first_run"]) == [1, -1, -1]  # truth 2's only hit diverged: not a k-cluster point


def test_truths_without_a_k_cluster_point_are_skipped_and_counted():
    rows = rows_for({0: [], 1: [3], 2: [], 3: [0, 2], 4: [1], 5: [2]})
    chosen, counts = select_truths(rows, target=3)
    assert list(chosen["truth_index"]) == [1, 3, 4] and list(chosen["first_run"]) == [3, 0, 1]
    assert counts.iloc[0][["tried", "skipped", "found"]].tolist() == [5, 2, 3]
    per_truth, _ = truth_ratios(rows, target=3)
    assert per_truth["gd_ratio"].round(6).tolist() == [0.887, 0.87, 0.859]
    assert (per_truth["em_ratio"] == 0.9995).all()


def test_too_few_truths_are_reported_as_a_shortfall():
    chosen, counts = select_truths(rows_for({0: [], 1: [1], 2: []}), target=3)
    assert len(chosen) == 1
    assert counts.iloc[0][["tried", "skipped", "found"]].tolist() == [3, 2, 1]


def test_truths_needed_grows_by_whole_blocks_until_enough_are_found():
    firsts = first_k_cluster_run(rows_for({t: ([0] if t % 2 else []) for t in range(4)}))
    # Block of 4 stored with 2 hits: the next block is needed.
    assert truths_needed(firsts, target=3, block=4, most=20) == 8
    firsts = first_k_cluster_run(rows_for({t: ([0] if t % 2 else []) for t in range(8)}))
    assert truths_needed(firsts, target=3, block=4, most=20) == 8  # enough in the first 8
    assert truths_needed(firsts.iloc[:5], target=3, block=4, most=20) == 8  # block 2 not stored whole yet
    assert truths_needed(firsts, target=30, block=4, most=8) == 8  # capped at the most truths allowed


def test_bootstrap_interval_brackets_the_mean():
    low, high = bootstrap_mean_interval(pd.Series([0.9, 0.8, 0.95, 0.7, 0.85]).to_numpy())
    assert low < 0.84 < high and 0.7 <= low and high <= 0.95


def test_the_range_of_a_ten_truth_mean_does_not_narrow_as_truths_are_added():
    # The published mean rests on 10 truths: where 10 truths like ours put their mean does not shrink
    # with our own number of truths, while the interval of our own mean does.
    rng = np.random.default_rng(1)
    few, many = rng.uniform(0.7, 1.0, 10), rng.uniform(0.7, 1.0, 200)
    ten_few, ten_many = bootstrap_mean_interval(few, size=10), bootstrap_mean_interval(many, size=10)
    own_many = bootstrap_mean_interval(many)
    assert ten_many[1] - ten_many[0] > 2 * (own_many[1] - own_many[0])
    assert 0.5 < (ten_many[1] - ten_many[0]) / (ten_few[1] - ten_few[0]) < 2
