"""The built-in claims on trial rows, registered by name (``never_ends_at_k_cluster``,
``ends_at_k_cluster_more_often``, the trends of Tables 1-4 ...), and the published artefacts, whose
claims are the default of a config that compares with them.

Rows are tidy trial rows without failed trials (columns m, D, algorithm, truth_index, run_index,
status, k_cluster, likelihood_ratio, ...). Runs that share a truth are not independent: every
interval here resamples truths with all their runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from emrun.criteria import Change, ClaimSpec, algorithm_label
from emrun.criteria import uai2019 as uai
from emrun.report.claims import Claim
from emrun.report.verdicts import (
    CLUSTER_BOOTSTRAP,
    MIN_CLUSTERS,
    Verdict,
    cluster_bootstrap,
    ended_at_k_cluster,
    interval_text,
    same_as_before,
    sign_verdict,
    spearman_trend,
)
from emrun.settings import settings_of
from emrun.stats import truth_columns, truth_rate_interval

NEAR_OPTIMAL = 0.999  # the paper's "greater than 0.999 in terms of the likelihood ratio"


def _label(algorithm: str) -> str:
    return algorithm_label(algorithm)


def _runs_of(rows: pd.DataFrame, algorithm: str) -> pd.DataFrame:
    return rows[rows["algorithm"] == algorithm]


NEVER = ClaimSpec(
    "never_ends_at_k_cluster", "{algorithm_label} never ends at a k-cluster point (k < m)",
    "no run of {algorithm} that started outside the k-cluster region (every initial weight at or above the k-cluster "
    "threshold) ends (not diverged) with a weight below it; the claim is universal and tolerates no exception (the "
    "report gives their rate, with its interval over truths, and their likelihood ratios); runs that started inside are "
    "reported apart", uai.EM_NEVER, identity=("algorithm",), algorithms=("algorithm",), version=2,
    changes=(Change(2, uai.TODAY, "a claim about where a method converges is judged on the runs that had to get there: "
                    "runs that started with a weight already below the threshold are reported apart (most of EM's "
                    "k-cluster endings had barely moved from such a start)"),))
NEAR = ClaimSpec("always_near_optimal", "Every {algorithm_label} run is near-optimal (likelihood ratio >= {threshold})",
                 "the smallest likelihood ratio exp(l* - l) over the {algorithm} runs is at least {threshold}",
                 uai.EM_NEAR_OPTIMAL, identity=("algorithm",), algorithms=("algorithm",))
MORE_OFTEN = ClaimSpec(
    "ends_at_k_cluster_more_often", "{algorithm_label} ends at a k-cluster point more often than {than_label} from the "
    "same inits", "the 95% interval over truths (10 or more) of the mean paired difference ({algorithm} minus {than}) in "
    "k-cluster rate lies above 0 (not testable if it contains 0)", uai.GD_MORE_OFTEN, identity=("algorithm", "than"),
    algorithms=("algorithm", "than"), version=3,
    changes=(Change(2, uai.AM_5554730, "from McNemar's exact test over paired runs (runs sharing a truth treated as "
                    "independent) to the bootstrap interval over truths of the mean paired difference"),
             replace(uai.TEN_CLUSTERS, version=3)))
LESS_OFTEN = ClaimSpec(
    "ends_at_k_cluster_less_often", "{algorithm_label} ends at a k-cluster point less often than {than_label} from the "
    "same inits", "the 95% interval over truths (10 or more) of the mean paired difference ({algorithm} minus {than}) in "
    "k-cluster rate lies below 0 (not testable if it contains 0)",
    uai.GD_MORE_OFTEN.beyond("a comparison the paper does not make (the paper compares GD with EM)"),
    identity=("algorithm", "than"), algorithms=("algorithm", "than"), version=2, changes=(uai.TEN_CLUSTERS,))
GROWS = ClaimSpec("k_cluster_rate_grows_with", "{algorithm_label}'s k-cluster rate grows with {factor}",
                  "Spearman rho > 0 with p < 0.05 between {factor} and the per-truth rate centred on the mean of its "
                  "{other} (a significant trend the other way: does not hold; none: not testable)", uai.GROWS,
                  identity=("factor", "algorithm"), algorithms=("algorithm",), version=2, changes=(uai.NOT_SIGNIFICANT,))


def never_ends_at_k_cluster(rows: pd.DataFrame, config: dict, algorithm: str = "em") -> Verdict:
    runs = _runs_of(rows, algorithm)
    if runs.empty:
        return NEVER.untestable(f"no {algorithm} runs are stored.", algorithm=algorithm)
    hits = ended_at_k_cluster(runs)
    started_inside = _started_inside(runs, config)
    outside, exceptions = runs[~started_inside], runs[hits & ~started_inside]
    per_cell = hits[~started_inside].groupby([outside["m"], outside["D"]]).sum()
    evidence = (f"{len(exceptions)} of the {len(outside)} runs that started outside the k-cluster region end at k < m "
                f"(in {int((per_cell > 0).sum())} of {len(per_cell)} cells)")
    if len(exceptions):
        per_truth = hits[~started_inside].groupby([outside[c] for c in truth_columns(outside)]).agg(["sum", "size"])
        low, high = cluster_bootstrap(per_truth["sum"].to_numpy(), per_truth["size"].to_numpy())
        worst = per_cell.idxmax()
        evidence += (f"; rate {len(exceptions) / len(outside):.2g} {interval_text(low, high, '.2g')} over "
                     f"{len(per_truth)} truths, most at m={worst[0]}, D={worst[1]} ({int(per_cell.max())}); their "
                     f"likelihood ratios {exceptions['likelihood_ratio'].min():.4f} to "
                     f"{exceptions['likelihood_ratio'].max():.4f}")
    inside_hits = int((hits & started_inside).sum())
    evidence += (f". Apart: {int(started_inside.sum())} runs started with a weight below the threshold, {inside_hits} of "
                 f"them end there.")
    # Version 1 counted every run, wherever it started.
    earlier = NEVER.judged(not hits.any(), f"{int(hits.sum())} of {len(runs)} runs end at k < m.", version=1,
                           algorithm=algorithm)
    return NEVER.judged(exceptions.empty, evidence, algorithm=algorithm, alternatives=(earlier,))


def _started_inside(runs: pd.DataFrame, config: dict) -> pd.Series:
    """Runs whose initial smallest weight was already below the k-cluster threshold."""
    threshold = settings_of(config).k_cluster_threshold
    if "init_pi" not in runs:
        return pd.Series(False, index=runs.index)
    return runs["init_pi"].map(lambda pi: min(pi) < threshold)


def always_near_optimal(rows: pd.DataFrame, config: dict, algorithm: str = "em", threshold: float = NEAR_OPTIMAL) -> Verdict:
    runs = _runs_of(rows, algorithm)
    if runs.empty:
        return NEAR.untestable(f"no {algorithm} runs are stored.", algorithm=algorithm, threshold=threshold)
    ratios = runs["likelihood_ratio"]
    worst = runs.loc[ratios.idxmin()]
    evidence = (f"{int((ratios < threshold).sum())} of {len(runs)} runs have likelihood ratio below {threshold}; minimum "
                f"{worst['likelihood_ratio']:.4f} at m={int(worst['m'])}, D={int(worst['D'])}, "
                f"truth {int(worst['truth_index'])}.")
    return NEAR.judged(bool((ratios >= threshold).all()), evidence, algorithm=algorithm, threshold=threshold)


def paired_k_cluster(rows: pd.DataFrame, algorithm: str, than: str) -> dict | None:
    """Runs of ``algorithm`` paired with the run of ``than`` from the same init (same truth, run
    index and init scheme; and the same step when both take one): counts, discordant pairs, the
    mean paired difference in k-cluster rate and its interval over truths. None if nothing pairs."""
    truth = list(truth_columns(rows))
    keys = [*truth, "run_index", "init"]
    a, b = _runs_of(rows, algorithm), _runs_of(rows, than)
    if a.empty or b.empty:
        return None
    if a["step"].notna().all() and b["step"].notna().all():
        keys.append("step")
    a = a.assign(hit=ended_at_k_cluster(a))[[*keys, "hit"]]
    b = b.assign(hit=ended_at_k_cluster(b))[[*keys, "hit"]]
    pairs = a.merge(b, on=keys, suffixes=("_a", "_b"))
    if pairs.empty:
        return None
    pairs["difference"] = pairs["hit_a"].astype(float) - pairs["hit_b"].astype(float)
    per_truth = pairs.groupby(truth)["difference"].agg(["sum", "size"])
    sums, sizes = per_truth["sum"].to_numpy(), per_truth["size"].to_numpy()
    low, high = cluster_bootstrap(sums, sizes)
    return {"pairs": len(pairs), "truths": len(per_truth), "a_hits": int(pairs["hit_a"].sum()),
            "b_hits": int(pairs["hit_b"].sum()), "a_only": int((pairs["hit_a"] & ~pairs["hit_b"]).sum()),
            "b_only": int((~pairs["hit_a"] & pairs["hit_b"]).sum()), "difference": float(pairs["difference"].mean()),
            "low": low, "high": high, "strict": cluster_bootstrap(sums, sizes, level=0.99)}


def _compare(rows: pd.DataFrame, algorithm: str, than: str, sign: int) -> Verdict:
    spec, params = (MORE_OFTEN if sign > 0 else LESS_OFTEN), {"algorithm": algorithm, "than": than}
    paired = paired_k_cluster(rows, algorithm, than)
    if paired is None:
        return spec.untestable(f"no {algorithm} run pairs with a {than} run from the same init.", **params)
    evidence = (f"{algorithm} {paired['a_hits']} and {than} {paired['b_hits']} of {paired['pairs']} paired runs; only "
                f"{algorithm}: {paired['a_only']}, only {than}: {paired['b_only']}; over {paired['truths']} truths, the "
                "mean paired difference:")
    if paired["truths"] < MIN_CLUSTERS:
        # Version 2 (1 for the less-often claim) bootstrapped over as few as 2 truths.
        return spec.untestable(evidence + f" Fewer than {MIN_CLUSTERS} truths: no interval over truths.", **params)
    verdict = sign_verdict(spec, params, paired["difference"], paired["low"], paired["high"], evidence,
                           CLUSTER_BOOTSTRAP, sign, strict=paired["strict"])
    return same_as_before(verdict, spec.version - 1)  # with 10 or more truths the earlier rule is this one


def ends_at_k_cluster_more_often(rows: pd.DataFrame, config: dict, algorithm: str = "gd", than: str = "em") -> Verdict:
    return _compare(rows, algorithm, than, +1)


def ends_at_k_cluster_less_often(rows: pd.DataFrame, config: dict, algorithm: str = "gd", than: str = "em") -> Verdict:
    return _compare(rows, algorithm, than, -1)


def k_cluster_rate_grows_with(rows: pd.DataFrame, config: dict, factor: str = "m", algorithm: str = "gd") -> Verdict:
    """Spearman correlation of the factor (m or D) with the k-cluster rate of each (m, D, truth),
    each rate centred on the mean rate of its value of the other factor (a pooled correlation would
    let a strong trend in m hide a trend in D). One truth is one point: runs sharing it are not
    independent."""
    other = "D" if factor == "m" else "m"
    runs = _runs_of(rows, algorithm)
    rates = ended_at_k_cluster(runs).groupby([runs[c] for c in truth_columns(runs)]).mean().reset_index(name="rate")
    centred = rates["rate"] - rates.groupby(other)["rate"].transform("mean")
    return spearman_trend(rates[factor], centred, GROWS, {"factor": factor, "algorithm": algorithm, "other": other},
                          points=f"(cell, truth) rates, each centred on the mean rate of its {other}", absence_failed_until=1)


RATIO_TREND = ClaimSpec(
    "ratio_trend", "GD's k-cluster points get {word} as {factor} grows (at fixed {other})",
    "Spearman rho {sign} 0 with p < 0.05 between {factor} and the kept truths' ratios, each centred on the mean of its "
    "{other} (a significant trend the other way: does not hold; none: not testable)", uai.WORSE_WITH_D,
    identity=("factor",), version=2, changes=(uai.NOT_SIGNIFICANT,))
RATIO_FALLS = replace(RATIO_TREND, id="ratio_falls_with_D")
RATIO_RISES = replace(RATIO_TREND, id="ratio_rises_with_m", source=uai.BETTER_WITH_M)


def _ratio_trend(rows: pd.DataFrame, config: dict, factor: str, sign: int) -> Verdict:
    from emrun.selection import truth_ratios

    other = "D" if factor == "m" else "m"
    spec = RATIO_FALLS if factor == "D" else RATIO_RISES
    params = {"factor": factor, "other": other, "word": "worse" if sign < 0 else "better", "sign": "<" if sign < 0 else ">"}
    per_truth, _ = truth_ratios(rows, config["truths"]["until_k_cluster"])
    centred = per_truth["gd_ratio"] - per_truth.groupby(other)["gd_ratio"].transform("mean")
    return spearman_trend(per_truth[factor], centred, spec, params, sign, points="kept truths", absence_failed_until=1)


def ratio_falls_with_D(rows: pd.DataFrame, config: dict) -> Verdict:
    return _ratio_trend(rows, config, "D", -1)


def ratio_rises_with_m(rows: pd.DataFrame, config: dict) -> Verdict:
    return _ratio_trend(rows, config, "m", +1)


EM_ABOVE = ClaimSpec("em_above_on_kept_truths", "EM's likelihood ratio is above {threshold} for every truth",
                     "every EM run, on the kept truths and on every truth run, has likelihood ratio above {threshold}",
                     uai.EM_NEAR_OPTIMAL)


def em_above_on_kept_truths(rows: pd.DataFrame, config: dict, threshold: float = NEAR_OPTIMAL) -> Verdict:
    from emrun.selection import truth_ratios

    per_truth, _ = truth_ratios(rows, config["truths"]["until_k_cluster"])
    em_all = _runs_of(rows, "em")
    if em_all.empty:
        return EM_ABOVE.untestable("no EM runs are stored.", threshold=threshold)
    below = em_all[em_all["likelihood_ratio"] <= threshold]
    worst = em_all.loc[em_all["likelihood_ratio"].idxmin()]
    kept = per_truth["em_ratio"]
    return EM_ABOVE.judged(
        bool((kept > threshold).all() and below.empty),
        f"{int((kept <= threshold).sum())} of {len(kept)} kept truths and {len(below)} of {len(em_all)} truths run are at "
        f"or below it; minimum {worst['likelihood_ratio']:.4f} at m={int(worst['m'])}, D={int(worst['D'])}, "
        f"truth {int(worst['truth_index'])}.", threshold=threshold)


def _other_factor(params: dict) -> dict:
    """A trend in m or D is judged at each value of the other factor."""
    return {**params, "other": "D" if params["factor"] == "m" else "m"}


def _ratio_wording(falls: bool) -> dict:
    """Tables 3-4's trends: worse with D (the ratio falls) or better with m (it rises)."""
    return {"factor": "D" if falls else "m", "other": "m" if falls else "D", "word": "worse" if falls else "better",
            "sign": "<" if falls else ">"}


BUILT_IN = {
    "never_ends_at_k_cluster": Claim("never_ends_at_k_cluster", never_ends_at_k_cluster, {"algorithm": "em"},
                                     ("grid", "first_k_cluster"), "an algorithm never ends at k < m", NEVER),
    "always_near_optimal": Claim("always_near_optimal", always_near_optimal, {"algorithm": "em", "threshold": NEAR_OPTIMAL},
                                 ("grid", "first_k_cluster"), "every run of an algorithm reaches a likelihood ratio", NEAR),
    "ends_at_k_cluster_more_often": Claim("ends_at_k_cluster_more_often", ends_at_k_cluster_more_often,
                                          {"algorithm": "gd", "than": "em"}, description="paired, from the same inits",
                                          spec=MORE_OFTEN),
    "ends_at_k_cluster_less_often": Claim("ends_at_k_cluster_less_often", ends_at_k_cluster_less_often,
                                          {"algorithm": None, "than": None}, description="paired, from the same inits",
                                          spec=LESS_OFTEN),
    "k_cluster_rate_grows_with": Claim("k_cluster_rate_grows_with", k_cluster_rate_grows_with,
                                       {"factor": "m", "algorithm": "gd"}, description="a trend in m or D at fixed other",
                                       spec=GROWS, derive=_other_factor),
    "ratio_falls_with_D": Claim("ratio_falls_with_D", ratio_falls_with_D, {}, ("first_k_cluster",),
                                "Tables 3-4: GD's k-cluster points get worse with D", RATIO_FALLS,
                                derive=lambda params: _ratio_wording(falls=True)),
    "ratio_rises_with_m": Claim("ratio_rises_with_m", ratio_rises_with_m, {}, ("first_k_cluster",),
                                "Tables 3-4: GD's k-cluster points get better with m", RATIO_RISES,
                                derive=lambda params: _ratio_wording(falls=False)),
    "em_above_on_kept_truths": Claim("em_above_on_kept_truths", em_above_on_kept_truths, {"threshold": NEAR_OPTIMAL},
                                     ("first_k_cluster",), "Tables 3-4: EM's ratio above 0.999", EM_ABOVE),
}


@dataclass(frozen=True)
class Artefact:
    """A published table or figure: where its values are (paper_values.yaml), the claims a config
    that compares with it is judged on by default, and the baseline of its comparisons."""

    claims: tuple = ()
    baseline: str | None = None
    published: tuple[str, ...] = ()
    description: str = ""
    compared: str | None = None  # the algorithm whose rates the published table gives


_TABLES_1_2 = ({"claim": "never_ends_at_k_cluster", "algorithm": "em"},
               {"claim": "always_near_optimal", "algorithm": "em", "threshold": NEAR_OPTIMAL},
               {"claim": "ends_at_k_cluster_more_often", "algorithm": "gd", "than": "em"},
               {"claim": "k_cluster_rate_grows_with", "factor": "m", "algorithm": "gd"},
               {"claim": "k_cluster_rate_grows_with", "factor": "D", "algorithm": "gd"})
ARTEFACTS = {
    "uai2019_table1": Artefact(_TABLES_1_2, "em", ("uai2019_table1",), "UAI 2019 Table 1 (population)", "gd"),
    "uai2019_table2": Artefact(_TABLES_1_2, "em", ("uai2019_table2",), "UAI 2019 Table 2 (2000 samples)", "gd"),
    "uai2019_table3": Artefact(({"claim": "ratio_falls_with_D"}, {"claim": "ratio_rises_with_m"},
                                {"claim": "em_above_on_kept_truths", "threshold": NEAR_OPTIMAL}), None,
                               ("uai2019_table3", "uai2019_table4"), "UAI 2019 Tables 3 and 4"),
    "uai2019_figure2": Artefact((), None, ("uai2019_figure2",), "UAI 2019 Figure 2"),
}



def rate_with_interval(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (m, D, algorithm): k-cluster runs, rate, and its 95% interval with the method named, by
    the rule of :func:`emrun.stats.truth_rate_interval` (the public one plug-in claims use)."""
    hits = rows.assign(hit=ended_at_k_cluster(rows))
    options = list(truth_columns(rows)[2:-1])  # truth axes: each value's truths are truths of their own
    per_truth = hits.groupby(["m", "D", "algorithm", *options, "truth_index"])["hit"].agg(["sum", "size"]).reset_index()
    out = []
    for (m, D, algorithm), part in per_truth.groupby(["m", "D", "algorithm"]):
        events, runs = int(part["sum"].sum()), int(part["size"].sum())
        low, high, method = truth_rate_interval(part["sum"].to_numpy(), part["size"].to_numpy())
        out.append({"m": m, "D": D, "algorithm": algorithm, "truths": len(part), "runs": runs, "k_cluster": events,
                    "rate": events / runs, "low": low, "high": high, "interval": method})
    return pd.DataFrame(out, columns=["m", "D", "algorithm", "truths", "runs", "k_cluster", "rate", "low", "high",
                                      "interval"])
