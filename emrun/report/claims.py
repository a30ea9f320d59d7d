"""Claims about trial rows, registered by name so that a config can declare them
(``claims: [never_ends_at_k_cluster, {claim: ends_at_k_cluster_more_often, algorithm: gd, than: em}]``),
and the published artefacts, whose claims are the default of a config that compares with them.

A claim is one function ``(rows, config, **params) -> Verdict`` with typed parameter defaults; a
plug-in registers more with :func:`emrun.plugins.register_claim`. Rows are tidy trial rows without
failed trials (columns m, D, algorithm, truth_index, run_index, status, k_cluster,
likelihood_ratio, ...). Runs that share a truth are not independent: every interval here
resamples truths with all their runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from emrun.report.verdicts import CLUSTER_BOOTSTRAP, Verdict, cluster_bootstrap, ended_at_k_cluster, spearman_trend

NEAR_OPTIMAL = 0.999  # the paper's "greater than 0.999 in terms of the likelihood ratio"
TRUTH = ["m", "D", "truth_index"]  # runs sharing these share a truth


@dataclass(frozen=True)
class Claim:
    """A registered claim: ``judge(rows, config, **params) -> Verdict``; ``params`` maps each
    parameter to its default (None: the config must give it); ``kinds`` the experiment kinds whose
    rows it judges."""

    name: str
    judge: Callable[..., Verdict]
    params: dict = field(default_factory=dict)
    kinds: tuple[str, ...] = ("grid",)
    description: str = ""


def _label(algorithm: str) -> str:
    return algorithm.upper() if algorithm in ("em", "gd") else algorithm


def _runs_of(rows: pd.DataFrame, algorithm: str) -> pd.DataFrame:
    return rows[rows["algorithm"] == algorithm]


def never_ends_at_k_cluster(rows: pd.DataFrame, config: dict, algorithm: str = "em") -> Verdict:
    claim = f"{_label(algorithm)} never ends at a k-cluster point (k < m)"
    criterion = f"no run of {algorithm} ends (not diverged) with a weight below the k-cluster threshold"
    runs = _runs_of(rows, algorithm)
    if runs.empty:
        return Verdict.untestable(claim, f"no {algorithm} runs are stored.", criterion)
    hits = ended_at_k_cluster(runs)
    per_cell = hits.groupby([runs["m"], runs["D"]]).sum()
    evidence = (f"no {algorithm} run does in {int((per_cell == 0).sum())} of {len(per_cell)} cells; {int(hits.sum())} of "
                f"{len(runs)} runs end at k < m")
    if hits.any():
        worst = per_cell.idxmax()
        evidence += f" (most at m={worst[0]}, D={worst[1]}: {int(per_cell.max())})"
    return Verdict.judged(claim, not hits.any(), evidence + ".", criterion)


def always_near_optimal(rows: pd.DataFrame, config: dict, algorithm: str = "em", threshold: float = NEAR_OPTIMAL) -> Verdict:
    claim = f"Every {_label(algorithm)} run is near-optimal (likelihood ratio >= {threshold})"
    criterion = f"the smallest likelihood ratio exp(l* - l) over the {algorithm} runs is at least {threshold}"
    runs = _runs_of(rows, algorithm)
    if runs.empty:
        return Verdict.untestable(claim, f"no {algorithm} runs are stored.", criterion)
    ratios = runs["likelihood_ratio"]
    worst = runs.loc[ratios.idxmin()]
    evidence = (f"{int((ratios < threshold).sum())} of {len(runs)} runs have likelihood ratio below {threshold}; minimum "
                f"{worst['likelihood_ratio']:.4f} at m={int(worst['m'])}, D={int(worst['D'])}, "
                f"truth {int(worst['truth_index'])}.")
    return Verdict.judged(claim, bool((ratios >= threshold).all()), evidence, criterion)


def paired_k_cluster(rows: pd.DataFrame, algorithm: str, than: str) -> dict | None:
    """Runs of ``algorithm`` paired with the run of ``than`` from the same init (same truth, run
    index and init scheme; and the same step when both take one): counts, discordant pairs, the
    mean paired difference in k-cluster rate and its interval over truths. None if nothing pairs."""
    keys = [*TRUTH, "run_index", "init"]
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
    per_truth = pairs.groupby(TRUTH)["difference"].agg(["sum", "size"])
    low, high = cluster_bootstrap(per_truth["sum"].to_numpy(), per_truth["size"].to_numpy())
    return {"pairs": len(pairs), "truths": len(per_truth), "a_hits": int(pairs["hit_a"].sum()),
            "b_hits": int(pairs["hit_b"].sum()), "a_only": int((pairs["hit_a"] & ~pairs["hit_b"]).sum()),
            "b_only": int((~pairs["hit_a"] & pairs["hit_b"]).sum()), "difference": float(pairs["difference"].mean()),
            "low": low, "high": high}


def _compare(rows: pd.DataFrame, algorithm: str, than: str, sign: int) -> Verdict:
    word = "more" if sign > 0 else "less"
    claim = f"{_label(algorithm)} ends at a k-cluster point {word} often than {_label(than)} from the same inits"
    criterion = (f"the 95% interval over truths of the mean paired difference ({algorithm} minus {than}) in k-cluster "
                 f"rate lies {'above' if sign > 0 else 'below'} 0 (not testable if it contains 0)")
    paired = paired_k_cluster(rows, algorithm, than)
    if paired is None:
        return Verdict.untestable(claim, f"no {algorithm} run pairs with a {than} run from the same init.", criterion)
    evidence = (f"{algorithm} {paired['a_hits']} and {than} {paired['b_hits']} of {paired['pairs']} paired runs; only "
                f"{algorithm}: {paired['a_only']}, only {than}: {paired['b_only']}; mean difference "
                f"{paired['difference']:+.3f} [{paired['low']:+.3f}, {paired['high']:+.3f}] over {paired['truths']} truths.")
    if paired["truths"] < 2:
        return Verdict.untestable(claim, evidence + " One truth: no interval over truths.", criterion)
    if paired["low"] <= 0 <= paired["high"]:
        return Verdict(claim, "not testable", evidence + " The interval contains 0.", criterion, CLUSTER_BOOTSTRAP)
    holds = paired["low"] > 0 if sign > 0 else paired["high"] < 0
    return Verdict.judged(claim, bool(holds), evidence, criterion, CLUSTER_BOOTSTRAP)


def ends_at_k_cluster_more_often(rows: pd.DataFrame, config: dict, algorithm: str = "gd", than: str = "em") -> Verdict:
    return _compare(rows, algorithm, than, +1)


def ends_at_k_cluster_less_often(rows: pd.DataFrame, config: dict, algorithm: str = "gd", than: str = "em") -> Verdict:
    return _compare(rows, algorithm, than, -1)


def k_cluster_rate_grows_with(rows: pd.DataFrame, config: dict, factor: str = "m", algorithm: str = "gd") -> Verdict:
    """Spearman correlation of the factor (m or D) with the k-cluster rate of each (m, D, truth),
    each rate centred on the mean rate of its value of the other factor (a pooled correlation would
    let a strong trend in m hide a trend in D). One truth is one point: runs sharing it are not
    independent."""
    claim = f"{_label(algorithm)}'s k-cluster rate grows with {factor}"
    other = "D" if factor == "m" else "m"
    criterion = (f"Spearman rho > 0 with p < 0.05 between {factor} and the per-truth rate centred on the mean of its "
                 f"{other}")
    runs = _runs_of(rows, algorithm)
    rates = ended_at_k_cluster(runs).groupby([runs[c] for c in TRUTH]).mean().reset_index(name="rate")
    centred = rates["rate"] - rates.groupby(other)["rate"].transform("mean")
    return spearman_trend(rates[factor], centred, claim, criterion,
                          points=f"(cell, truth) rates, each centred on the mean rate of its {other}")


def _ratio_trend(rows: pd.DataFrame, config: dict, factor: str, sign: int) -> Verdict:
    from emrun.selection import truth_ratios

    word = "worse" if sign < 0 else "better"
    other = "D" if factor == "m" else "m"
    claim = f"GD's k-cluster points get {word} as {factor} grows (at fixed {other})"
    criterion = (f"Spearman rho {'<' if sign < 0 else '>'} 0 with p < 0.05 between {factor} and the kept truths' ratios, "
                 f"each centred on the mean of its {other}")
    per_truth, _ = truth_ratios(rows, config["truths"]["until_k_cluster"])
    centred = per_truth["gd_ratio"] - per_truth.groupby(other)["gd_ratio"].transform("mean")
    return spearman_trend(per_truth[factor], centred, claim, criterion, sign, points="kept truths")


def ratio_falls_with_D(rows: pd.DataFrame, config: dict) -> Verdict:
    return _ratio_trend(rows, config, "D", -1)


def ratio_rises_with_m(rows: pd.DataFrame, config: dict) -> Verdict:
    return _ratio_trend(rows, config, "m", +1)


def em_above_on_kept_truths(rows: pd.DataFrame, config: dict, threshold: float = NEAR_OPTIMAL) -> Verdict:
    from emrun.selection import truth_ratios

    claim = f"EM's likelihood ratio is above {threshold} for every truth"
    criterion = f"every EM run, on the kept truths and on every truth run, has likelihood ratio above {threshold}"
    per_truth, _ = truth_ratios(rows, config["truths"]["until_k_cluster"])
    em_all = _runs_of(rows, "em")
    if em_all.empty:
        return Verdict.untestable(claim, "no EM runs are stored.", criterion)
    below = em_all[em_all["likelihood_ratio"] <= threshold]
    worst = em_all.loc[em_all["likelihood_ratio"].idxmin()]
    kept = per_truth["em_ratio"]
    return Verdict.judged(
        claim, bool((kept > threshold).all() and below.empty),
        f"{int((kept <= threshold).sum())} of {len(kept)} kept truths and {len(below)} of {len(em_all)} truths run are at "
        f"or below it; minimum {worst['likelihood_ratio']:.4f} at m={int(worst['m'])}, D={int(worst['D'])}, "
        f"truth {int(worst['truth_index'])}.", criterion)


BUILT_IN = {
    "never_ends_at_k_cluster": Claim("never_ends_at_k_cluster", never_ends_at_k_cluster, {"algorithm": "em"},
                                     ("grid", "first_k_cluster"), "an algorithm never ends at k < m"),
    "always_near_optimal": Claim("always_near_optimal", always_near_optimal, {"algorithm": "em", "threshold": NEAR_OPTIMAL},
                                 ("grid", "first_k_cluster"), "every run of an algorithm reaches a likelihood ratio"),
    "ends_at_k_cluster_more_often": Claim("ends_at_k_cluster_more_often", ends_at_k_cluster_more_often,
                                          {"algorithm": "gd", "than": "em"}, description="paired, from the same inits"),
    "ends_at_k_cluster_less_often": Claim("ends_at_k_cluster_less_often", ends_at_k_cluster_less_often,
                                          {"algorithm": None, "than": None}, description="paired, from the same inits"),
    "k_cluster_rate_grows_with": Claim("k_cluster_rate_grows_with", k_cluster_rate_grows_with,
                                       {"factor": "m", "algorithm": "gd"}, description="a trend in m or D at fixed other"),
    "ratio_falls_with_D": Claim("ratio_falls_with_D", ratio_falls_with_D, {}, ("first_k_cluster",),
                                "Tables 3-4: GD's k-cluster points get worse with D"),
    "ratio_rises_with_m": Claim("ratio_rises_with_m", ratio_rises_with_m, {}, ("first_k_cluster",),
                                "Tables 3-4: GD's k-cluster points get better with m"),
    "em_above_on_kept_truths": Claim("em_above_on_kept_truths", em_above_on_kept_truths, {"threshold": NEAR_OPTIMAL},
                                     ("first_k_cluster",), "Tables 3-4: EM's ratio above 0.999"),
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


def declared_claims(config: dict) -> list[dict]:
    """The claims a config is judged on: its own ``claims``, else its artefact's."""
    from emrun.registry import ARTEFACTS as artefacts

    if "claims" in config:
        return list(config["claims"])
    artefact = config.get("compare_to")
    return list(artefacts.get(artefact).claims) if artefact else []


def baseline_of(config: dict) -> str | None:
    """The algorithm the others are compared with: the config's ``baseline``, else its artefact's."""
    from emrun.registry import ARTEFACTS as artefacts

    if "baseline" in config:
        return config["baseline"]
    artefact = config.get("compare_to")
    chosen = artefacts.get(artefact).baseline if artefact else None
    return chosen if chosen in config["grid"]["algorithm"] else None


def judge(rows: pd.DataFrame, config: dict, claims: list[dict]) -> list[Verdict]:
    """The verdict of each declared claim on the rows."""
    from emrun.registry import CLAIMS

    verdicts = []
    for spec in claims:
        params = {k: v for k, v in spec.items() if k != "claim"}
        claim = CLAIMS.get(spec["claim"])
        try:
            verdicts.append(claim.judge(rows, config, **params))
        except Exception as error:  # a plug-in claim that breaks is reported, not fatal to the report
            verdicts.append(Verdict.untestable(spec["claim"], f"the claim raised {type(error).__name__}: {error}."))
    return verdicts


FEW_TRUTHS = 5  # fewer truths than this with an event: a bootstrap over truths under-covers


def rate_with_interval(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (m, D, algorithm): k-cluster runs, rate, and its 95% interval with the method named.
    One truth: Wilson over its runs ("within this truth"). Several truths: bootstrap over truths.
    When fewer than FEW_TRUTHS truths have an event, resampling truths cannot see how events
    cluster (one event in 1200 runs gave [0, 0.0025], narrower than no event at all): the upper
    end is then at least the exact bound on the share of truths with an event, which bounds the
    rate too (a truth's rate is at most 1), so no event and few events use the same quantity."""
    from scipy.stats import beta

    from emrun.report.verdicts import wilson_interval

    hits = rows.assign(hit=ended_at_k_cluster(rows))
    per_truth = hits.groupby(["m", "D", "algorithm", "truth_index"])["hit"].agg(["sum", "size"]).reset_index()
    out = []
    for (m, D, algorithm), part in per_truth.groupby(["m", "D", "algorithm"]):
        events, runs, truths = int(part["sum"].sum()), int(part["size"].sum()), len(part)
        if truths == 1:
            low, high = (float(v) for v in wilson_interval(events, runs))
            method = "Wilson, within this truth"
        elif (with_event := int((part["sum"] > 0).sum())) < FEW_TRUTHS:
            share_bound = 1.0 if with_event == truths else float(beta.ppf(0.975, with_event + 1, truths - with_event))
            low, high = cluster_bootstrap(part["sum"].to_numpy(), part["size"].to_numpy()) if events else (0.0, 0.0)
            high, method = max(share_bound, high), (f"fewer than {FEW_TRUTHS} truths with an event: upper end at least "
                                                    "the exact bound on the share of truths with one, truths counted once")
        else:
            (low, high), method = cluster_bootstrap(part["sum"].to_numpy(), part["size"].to_numpy()), "bootstrap over truths"
        out.append({"m": m, "D": D, "algorithm": algorithm, "truths": truths, "runs": runs, "k_cluster": events,
                    "rate": events / runs, "low": low, "high": high, "interval": method})
    return pd.DataFrame(out, columns=["m", "D", "algorithm", "truths", "runs", "k_cluster", "rate", "low", "high",
                                      "interval"])

