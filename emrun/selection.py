"""Which truths a first_k_cluster experiment keeps (UAI 2019 Tables 3 and 4).

The protocol: for each (m, D), draw truths one after another; for each, run GD from up to 10
inits and keep the first run that ends at a k-cluster point; a truth where none does is skipped;
stop when ``target`` truths have such a run. Here every init of a truth is run (so the batch
composition is fixed by the config) and the selection is made from the stored rows, in truth
and run order, which gives the same choice as running them one by one. The sweep's planner and
the reporter both use these functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where rows are tabled: a worker importing the trials kind never needs it
    import pandas as pd

KEYS = ["m", "D", "truth_index"]


def first_k_cluster_run(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (m, D, truth) with GD rows: the lowest GD run index that ended (not diverged) at
    k < m, or -1 where none did. Columns m, D, truth_index, first_run."""
    gd = rows[rows["algorithm"] == "gd"]
    hits = gd[gd["k_cluster"] & (gd["status"] != "diverged")]
    first = hits.groupby(KEYS)["run_index"].min()
    truths = gd.groupby(KEYS).size().index
    return first.reindex(truths, fill_value=-1).rename("first_run").reset_index()


def select_truths(rows: pd.DataFrame, target: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first ``target`` truths of each (m, D) whose GD runs reach a k-cluster point.

    Returns (selected: m, D, truth_index, first_run; counts: m, D, tried, skipped, found), where
    ``tried`` counts the truths examined up to the last one kept (all stored truths when fewer
    than ``target`` were found) and ``skipped`` those among them without a k-cluster point.
    """
    import pandas as pd

    firsts = first_k_cluster_run(rows).sort_values(KEYS)
    selected, counts = [], []
    for (m, D), group in firsts.groupby(["m", "D"]):
        hits = group[group["first_run"] >= 0].head(target)
        found = len(hits)
        tried = int((group["truth_index"] <= hits["truth_index"].max()).sum()) if found == target else len(group)
        selected.append(hits)
        counts.append({"m": m, "D": D, "tried": tried, "skipped": tried - found, "found": found})
    columns = ["m", "D", "tried", "skipped", "found"]
    chosen = pd.concat(selected, ignore_index=True) if selected else firsts.iloc[:0]
    return chosen, pd.DataFrame(counts, columns=columns)


def truths_needed(firsts: pd.DataFrame, target: int, block: int, most: int) -> int:
    """How many truths (from index 0) one (m, D) needs, given what is stored so far: whole blocks,
    until ``target`` truths have a k-cluster point or ``most`` truths are drawn. ``firsts`` is
    this (m, D)'s part of :func:`first_k_cluster_run`."""
    hits = set(firsts.loc[firsts["first_run"] >= 0, "truth_index"])
    stored = set(firsts["truth_index"])
    limit = min(block, most)
    while True:
        if not set(range(limit)) <= stored:
            return limit  # this block is not stored whole yet
        if sum(1 for t in hits if t < limit) >= target or limit >= most:
            return limit
        limit = min(limit + block, most)


def truth_ratios(rows: pd.DataFrame, target: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per kept truth: the likelihood ratio of GD's first k-cluster run and of EM's run 0.

    Returns (per-truth table: m, D, truth_index, first_run, gd_ratio, gd_k, em_ratio; counts per
    (m, D): tried, skipped, found).
    """
    import pandas as pd

    chosen, counts = select_truths(rows, target)
    gd = rows[rows["algorithm"] == "gd"].set_index(["m", "D", "truth_index", "run_index"])
    em = rows[(rows["algorithm"] == "em") & (rows["run_index"] == 0)].set_index(KEYS)
    keys = list(zip(chosen["m"], chosen["D"], chosen["truth_index"], chosen["first_run"], strict=True))
    chosen = chosen.assign(
        gd_ratio=gd.loc[keys, "likelihood_ratio"].to_numpy() if keys else [],
        gd_k=gd.loc[keys, "k"].to_numpy() if keys else [],
        em_ratio=em["likelihood_ratio"].reindex(pd.MultiIndex.from_frame(chosen[KEYS])).to_numpy(),
    )
    return chosen, counts
