"""Reconstruct the criterion record of the results committed before emrun kept one (run once, on
2026-12-02; kept as the provenance of those records).

Before the criterion record existed, criteria lived in code and in docs/protocols.md only. The
git history of the repository shows, for each claim of each committed results folder, when its
rows first existed (the first sweep of the folder's current config hash), when the claim's
criterion was first committed, and every later change of its decision rule (the claim specs'
``changes``, in emrun/criteria/). This script writes that history into each folder's manifest as
the record a sweep would have written: the criterion in force when the rows first existed (or,
when the claim was first committed after its rows, then, marked as recorded after the rows), and
each later change as a dated amendment. Where the recorded criterion's code is no longer in
emrun, the status it gave on the same rows, as committed at the time, is kept with the commit.

Usage: python tools/reconstruct_criteria.py [results-root]   (folders that have a record are left alone)
"""

from __future__ import annotations

import sys
from pathlib import Path

from emrun.config import from_manifest
from emrun.criteria import Declared
from emrun.store import read_manifest, write_manifest

# Per folder: (config hash, first sweep of that hash) from each committed manifest's history.
ROWS = {
    "bmm_gd_sensitivity": "2026-11-25T17:47:32+00:00",
    "bmm_table1": "2026-11-25T16:47:30+00:00",
    "bmm_table1_as_published": "2026-11-25T17:06:49+00:00",
    "bmm_table1_em_ecm": "2026-11-29T19:38:42+00:00",
    "bmm_table1_em_in_place": "2026-11-29T19:36:20+00:00",
    "bmm_table1_many_truths": "2026-11-25T16:48:00+00:00",
    "bmm_table2": "2026-11-25T16:47:43+00:00",
    "bmm_table2_many_truths": "2026-11-25T16:52:10+00:00",
    "bmm_table3": "2026-11-25T16:44:57+00:00",
    "bmm_table3_50_truths": "2026-11-25T16:56:11+00:00",
    "digits_bmm": "2026-11-25T19:10:08+00:00",
    "digits_bmm_large": "2026-11-25T19:20:55+00:00",
    "gmm_figure2": "2026-11-25T17:55:39+00:00",
    "gradem_figure1_rates": "2026-11-25T20:14:04+00:00",
    "gradem_figure1_rates_many_truths": "2026-11-25T21:33:48+00:00",
    "gradem_figure1_rates_paper_mc": "2026-11-25T20:40:45+00:00",
    "gradem_figure1_weights": "2026-11-25T20:27:02+00:00",
    "gradem_figure2_gradnorm": "2026-11-25T20:14:39+00:00",
    "gradem_figure2_statrate": "2026-11-25T20:15:06+00:00",
    "gradem_figure2_statrate_50_runs": "2026-11-25T21:17:11+00:00",
    "gradem_figure2_statrate_gradient": "2026-11-25T21:08:42+00:00",
    "heavy_ball": "2026-11-29T18:20:04+00:00",
    "lecture_kmeans_vs_em": "2026-11-25T19:12:24+00:00",
    "lecture_segmentation": "2026-11-29T20:57:47+00:00",
    "simplex_lloyd": "2026-11-25T20:24:36+00:00",
    "simplex_radius": "2026-11-25T20:20:24+00:00",
    "simplex_rates": "2026-11-25T20:20:05+00:00",
    "simplex_samples": "2026-11-25T20:20:36+00:00",
    "simplex_samples_uniform": "2026-11-25T20:21:06+00:00",
    "simplex_samples_uniform_50_runs": "2026-11-25T20:53:06+00:00",
    "theory_bmm_escape": "2026-11-25T18:59:58+00:00",
    "theory_closed_forms": "2026-11-25T18:52:48+00:00",
    "theory_gd_trap": "2026-11-25T18:59:49+00:00",
    "theory_gmm_rotation": "2026-11-25T18:53:56+00:00",
    "theory_one_cluster_gap": "2026-11-29T19:17:42+00:00",
}
# When each claim (spec id) was first committed, with the commit; the folder's own date where it differs.
FIRST = {
    "never_ends_at_k_cluster": ("2026-11-25T15:55:08+00:00", "e49e1fb"),
    "always_near_optimal": ("2026-11-25T15:55:08+00:00", "e49e1fb"),
    "ends_at_k_cluster_more_often": ("2026-11-25T15:55:08+00:00", "e49e1fb"),
    "ends_at_k_cluster_less_often": ("2026-11-29T18:19:56+00:00", "64b57da"),
    "k_cluster_rate_grows_with": ("2026-11-25T15:55:08+00:00", "e49e1fb"),
    "ratio_falls_with_D": ("2026-11-25T16:47:29+00:00", "0525238"),
    "ratio_rises_with_m": ("2026-11-25T16:47:29+00:00", "0525238"),
    "em_above_on_kept_truths": ("2026-11-25T16:47:29+00:00", "0525238"),
    "figure2.*": ("2026-11-25T17:58:40+00:00", "16e2b18"),
    "sensitivity.*": ("2026-11-25T17:58:40+00:00", "16e2b18"),
    "em_update.same_outcomes": ("2026-11-25T17:58:40+00:00", "16e2b18"),
    "theory.closed_forms_bmm": ("2026-11-25T18:57:11+00:00", "2b91b60"),
    "theory.eq_4_4_monte_carlo": ("2026-11-25T18:57:11+00:00", "2b91b60"),
    "theory.rotation": ("2026-11-25T18:57:11+00:00", "2b91b60"),
    "theory.positive_region": ("2026-11-25T19:01:29+00:00", "c5d2c63"),
    "theory.gd_trapped": ("2026-11-29T19:36:56+00:00", "994ceff"),
    "theory.trap_em_escapes": ("2026-11-29T19:36:56+00:00", "994ceff"),
    "theory.em_escapes_d2": ("2026-11-29T19:36:56+00:00", "994ceff"),
    "theory.local_minima": ("2026-11-29T19:36:56+00:00", "994ceff"),
    "theory.gap_sign": ("2026-11-29T19:36:56+00:00", "994ceff"),
    "theory.gap_slope": ("2026-11-29T19:36:56+00:00", "994ceff"),
    "lecture.*": ("2026-11-25T19:20:47+00:00", "2ff48cf"),
    "segmentation.*": ("2026-11-29T21:07:15+00:00", "19fb92d"),
    "digits.em_never": ("2026-11-25T19:20:47+00:00", "2ff48cf"),
    "digits.gd_k_cluster": ("2026-11-29T19:36:56+00:00", "994ceff"),
    "digits.gd_diverges": ("2026-11-29T19:36:56+00:00", "994ceff"),
    "digits.ari": ("2026-11-29T19:36:56+00:00", "994ceff"),
    "digits.kmeans_lowers": ("2026-11-29T23:47:38+00:00", "c855b71"),
    "xu2024.bound": ("2026-11-25T20:30:50+00:00", "00ecf0f"),
    "xu2024.sublinear": ("2026-11-25T20:30:50+00:00", "00ecf0f"),
    "xu2024.estimator_accurate": ("2026-11-25T20:30:50+00:00", "00ecf0f"),
    "xu2024.estimator_resolves": ("2026-11-25T20:44:30+00:00", "fe8a1d6"),
    "xu2024.even_weights": ("2026-11-25T20:30:50+00:00", "00ecf0f"),
    "xu2024.gradient_decay": ("2026-11-25T20:30:50+00:00", "00ecf0f"),
    "xu2024.trap_time": ("2026-11-25T20:30:50+00:00", "00ecf0f"),
    "xu2024.statistical_rate": ("2026-11-25T20:30:50+00:00", "00ecf0f"),
    "xu2024.same_stationary_points": ("2026-11-25T21:20:42+00:00", "9e5a0e3"),
    "simplex.*": ("2026-11-25T20:30:50+00:00", "00ecf0f"),
}
FOLDER_FIRST = {("digits_bmm_large", "digits.em_never"): ("2026-11-25T19:20:47+00:00", "2ff48cf"),
                # heavy_ball's config declared its claims, committed 8 s before its sweep ran
                **{("heavy_ball", claim): ("2026-11-29T18:19:56+00:00", "64b57da") for claim in
                   ("ends_at_k_cluster_more_often", "ends_at_k_cluster_less_often", "never_ends_at_k_cluster")},
                ("simplex_samples_uniform_50_runs", "simplex.sample_rate"): ("2026-11-25T20:30:50+00:00", "00ecf0f")}
# The earlier criteria, as they were worded (the claim specs keep only the current wording).
EARLIER = {
    ("ends_at_k_cluster_more_often", 1): "McNemar's exact test over the paired runs: runs ending at k < m under "
    "{algorithm} only outnumber those under {than} only, one-sided p < 0.05",
    ("k_cluster_rate_grows_with", 1): "Spearman rho > 0 with p < 0.05 between {factor} and the per-truth rate centred on "
    "the mean of its {other}; otherwise it does not hold",
    ("ratio_falls_with_D", 1): "Spearman rho < 0 with p < 0.05 between D and the kept truths' ratios, each centred on "
    "the mean of its m; otherwise it does not hold",
    ("ratio_rises_with_m", 1): "Spearman rho > 0 with p < 0.05 between m and the kept truths' ratios, each centred on "
    "the mean of its D; otherwise it does not hold",
    ("figure2.em_multiplicative", 1): "at least 90% of the EM steps taken while pi_1 < 0.01, in the truths that escape, "
    "multiply pi_1 by a factor above 1",
    ("figure2.eq_4_4", 1): "the median relative error of eq. 4.4 against the observed factor, over every step t >= 1 "
    "with pi_1 < 1e-3 pooled across truths, is below 5%",
    ("figure2.gd_after_100", 1): "the published value lies in the range (smallest to largest) of pi_1 after 100 GD steps "
    "over our truths",
    ("sensitivity.every_setting", 1): "at every (step, cap), the Wilson 95% lower bound of the pooled rate (runs as "
    "independent draws) is above 0",
    ("sensitivity.every_setting", 2): "at every (step, cap), the lower end of the 95% interval over truths of the pooled "
    "k-cluster rate is above 0",
    ("sensitivity.representative", 1): "the smallest and largest pooled rates over the (step, cap) settings lie within a "
    "factor 1.5 of the paper setting's",
    ("segmentation.monotone", 1): "no EM iteration lowers the penalised log-likelihood F by more than 1e-10 x |F|",
    ("digits.gd_k_cluster", 1): "at every m, at least one GD run ends (not diverged) with a weight below the threshold",
    ("digits.ari", 1): "the 95% percentile bootstrap interval over runs of (mean EM ARI - mean GD ARI) lies above 0",
    ("digits.ari", 2): "the 95% percentile bootstrap interval over inits, each with its EM and GD runs, of (mean EM ARI "
    "- mean GD ARI) lies above 0; where it shows no spread, Clopper-Pearson bounds over inits",
    ("xu2024.bound", 1): "for every draw: over [T/10, T] the log-log slope of L is in [-2.5, -0.5], that of D in "
    "[-1.3, -0.4], and L(T) < L(0), slopes fitted on every curve",
    ("xu2024.bound", 2): "as version 1, but a curve whose estimated L is <= 0 in the fit windows is not measurable: the "
    "claim holds only if every draw is measurable, and does not hold if none is",
    ("xu2024.bound", 3): "as version 2, but where no draw is measurable the claim is not testable",
    ("xu2024.sublinear", 1): "for every draw: the log-log slopes of L over [T/100, T/10] and [T/10, T] are within 0.5 "
    "of each other, and d ln L/dt is at least 3 times smaller over [T/10, T] than over [T/100, T/10]",
    ("xu2024.sublinear", 2): "as version 1, but a curve whose estimated L is <= 0 in the fit windows is not measurable: "
    "the claim holds only if every draw is measurable, and does not hold if none is",
    ("xu2024.sublinear", 3): "as version 2, but where no draw is measurable the claim is not testable",
    ("xu2024.sublinear", 4): "for every draw: d ln L/dt is at least 3 times smaller over [T/10, T] than over "
    "[T/100, T/10]; a fresh Monte Carlo curve whose standard error exceeds 10% of L is not measurable",
    ("xu2024.statistical_rate", 1): "over >= 1.5 decades of N, the point estimate of the log-log slope of the mean "
    "sqrt(D) against N lies in [-0.40, -0.18]",
    ("simplex.sample_rate", 1): "the point estimate of the log-log slope of the mean ||theta_hat|| against N lies in "
    "[{low}, {high}]",
}
EARLIER_TEMPLATE = {("theory.local_minima", 1), ("theory.gap_sign", 1), ("theory.gap_slope", 1)}
# The status under the recorded criterion where emrun no longer computes it: as committed then, on
# rows of the same config hash (docs/protocols.md, Amendments).
THEN = {
    ("bmm_table1", "ends_at_k_cluster_more_often"): ("holds", "a815d60"),
    ("bmm_table2", "ends_at_k_cluster_more_often"): ("holds", "a815d60"),
    ("bmm_table1_many_truths", "ends_at_k_cluster_more_often"): ("holds", "a815d60"),
    ("bmm_table2_many_truths", "ends_at_k_cluster_more_often"): ("holds", "a815d60"),
    ("bmm_table1_as_published", "ends_at_k_cluster_more_often"): ("holds", "16e2b18"),
    ("bmm_gd_sensitivity", "sensitivity.every_setting"): ("holds", "16e2b18"),
    ("bmm_gd_sensitivity", "sensitivity.representative"): ("holds", "16e2b18"),
    ("lecture_segmentation", "segmentation.monotone"): ("holds", "19fb92d"),
    ("digits_bmm", "digits.ari"): ("holds", "994ceff"), ("digits_bmm_large", "digits.ari"): ("holds", "994ceff"),
    ("theory_one_cluster_gap", "theory.local_minima"): ("holds", "ab4b534"),
    ("theory_one_cluster_gap", "theory.gap_sign"): ("holds", "ab4b534"),
    ("theory_one_cluster_gap", "theory.gap_slope"): ("holds", "ab4b534"),
    ("gradem_figure1_rates", "xu2024.bound"): ("holds", "00ecf0f"),
    ("gradem_figure1_rates", "xu2024.sublinear"): ("holds", "00ecf0f"),
    ("gradem_figure1_rates_many_truths", "xu2024.bound[n=2]"): ("holds", "c2542d5"),
    ("gradem_figure1_rates_many_truths", "xu2024.bound[n=5]"): ("does not hold", "c2542d5"),
    ("gradem_figure1_rates_many_truths", "xu2024.bound[n=10]"): ("holds", "c2542d5"),
    ("gradem_figure1_rates_many_truths", "xu2024.sublinear"): ("does not hold", "c2542d5"),
}


def _first(folder: str, spec_id: str) -> tuple[str, str]:
    if (folder, spec_id) in FOLDER_FIRST:
        return FOLDER_FIRST[(folder, spec_id)]
    return FIRST.get(spec_id) or FIRST[spec_id.split(".")[0] + ".*"]


def _version_at(spec, when: str) -> int:
    return 1 + sum(1 for change in spec.changes if change.date <= when)


def _criterion(declared: Declared, version: int) -> str:
    spec = declared.spec
    if version == spec.version:
        return spec.criterion_text(declared.params)
    if (spec.id, version) in EARLIER_TEMPLATE:
        return (spec.criterion_text(declared.params) + " (before the rules that make it not testable when the rows "
                "cannot decide it)")
    return EARLIER[(spec.id, version)].format(**declared.params)


def _then(folder: str, declared: Declared) -> tuple[str, str] | None:
    return THEN.get((folder, declared.key)) or THEN.get((folder, declared.spec.id))


def record_for(folder: Path) -> dict:
    """The reconstructed record of one committed folder."""
    manifest = read_manifest(folder)
    config = from_manifest(manifest["config"], folder)
    rows_first = ROWS[folder.name]
    recorded, amendments = {}, []
    for declared in config.kind.declared_claims(config.values):
        spec, key = declared.spec, declared.key
        first, commit = _first(folder.name, spec.id)
        when = max(first, rows_first)
        version = _version_at(spec, when)
        after = first > rows_first
        how = (f"reconstructed from the git history: the criterion was first committed in {commit} on {first[:16]}, "
               + ("after these rows were first stored" if after else "before these rows were first stored")
               + f" ({rows_first[:16]})")
        entry = {**declared.entry(), "version": version, "criterion": _criterion(declared, version),
                 "recorded": when, "rows_before": after, "how": how}
        then = _then(folder.name, declared)
        if version != spec.version and then is not None:
            entry["status_then"] = {"status": then[0], "commit": then[1]}
        recorded[key] = entry
        for change in spec.changes:
            if change.version > version:
                amendments.append({"key": key, "date": change.date, "rows_before": True,
                                   "from": {"version": change.version - 1, "params": entry["params"],
                                            "criterion": _criterion(declared, change.version - 1)},
                                   "to": {"version": change.version, "params": entry["params"],
                                          "criterion": _criterion(declared, change.version)},
                                   "reason": change.reason})
    return {"recorded": recorded, "amendments": sorted(amendments, key=lambda a: (a["date"], a["key"]))}


def main(root: str = "results") -> None:
    for name in sorted(ROWS):
        folder = Path(root) / name
        manifest = read_manifest(folder)
        if manifest.get("criteria"):
            print(f"{name}: has a criterion record; left alone")
            continue
        manifest["criteria"] = record_for(folder)
        write_manifest(folder, manifest)
        record = manifest["criteria"]
        late = sum(entry["rows_before"] for entry in record["recorded"].values())
        print(f"{name}: {len(record['recorded'])} criteria ({late} first recorded after the rows), "
              f"{len(record['amendments'])} amendments")


if __name__ == "__main__":
    main(*sys.argv[1:])
