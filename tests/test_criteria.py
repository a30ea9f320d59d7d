"""Each tightened criterion flips on synthetic rows that contradict it (and holds on rows that fit)."""

import numpy as np
import pandas as pd
import pytest

from emrun.criteria import ClaimSpec, check
from emrun.report import digits, figure2, published
from emrun.report import theory as theory_report
from emrun.report.verdicts import FAILS, HOLDS, UNTESTABLE, band_verdict, sign_verdict


def _escape(gd_final, growing_factors=(1.5, 1.4), stuck_factor=None):
    """Synthetic Figure 2 tables: truths that escape (pi_1 0.3) and, optionally, one that does not."""
    truths = range(len(gd_final))
    paths = pd.DataFrame([{"algorithm": "em", "truth_index": t, "iteration": 100, "pi1": 0.3} for t in truths])
    factors = pd.DataFrame([{"truth_index": t, "iteration": i + 1, "pi1": 1e-4 * 1.5 ** i, "observed": f,
                             "predicted": f, "relative_error": 0.01} for t in truths for i, f in enumerate(growing_factors)])
    if stuck_factor is not None:
        t = len(gd_final)
        paths = pd.concat([paths, pd.DataFrame([{"algorithm": "em", "truth_index": t, "iteration": 100, "pi1": 2e-4}])])
        factors = pd.concat([factors, pd.DataFrame([{"truth_index": t, "iteration": 1, "pi1": 1e-4, "observed": 1.0,
                                                      "predicted": stuck_factor, "relative_error": 0.01}])])
        gd_final = [*gd_final, 1e-4]
    slopes = pd.DataFrame({"truth_index": range(len(gd_final)), "final_pi1": gd_final, "r2": 0.999, "log_r2": 0.7,
                           "slope": 1e-5, "predicted_slope": 1e-5})
    separations = pd.Series(np.linspace(0.2, 1.0, len(gd_final)), index=range(len(gd_final)))
    return figure2.escape_verdicts(paths, factors, slopes, 0.0015, separations, 1e-4)


def by_claim(verdicts, start):
    return next(v for v in verdicts if v.claim.startswith(start))


def test_gd_reaches_the_published_value_by_its_rank_among_our_truths():
    inside = _escape(list(np.linspace(0.0005, 0.01, 40)))
    assert by_claim(inside, "GD reaches about").status == HOLDS
    outside = _escape(list(np.linspace(0.003, 0.2, 40)))  # every truth ends above the published value: p = 2/41
    verdict = by_claim(outside, "GD reaches about")
    assert verdict.status == FAILS and "0 of them end below" in verdict.evidence
    # One truth below it: rank 2 of 41, two-sided p = 4/41 > 0.05, consistent with a random truth.
    assert by_claim(_escape([0.001, *np.linspace(0.01, 0.2, 39)]), "GD reaches about").status == HOLDS
    # With 20 truths even the most extreme rank gives p = 2/21: the claim cannot fail, so it is not testable.
    assert by_claim(_escape(list(np.linspace(0.003, 0.2, 20))), "GD reaches about").status == UNTESTABLE
    # A value within half the published last digit ties with it (0.00154 rounds to 0.0015).
    assert by_claim(_escape([0.00154, *np.linspace(0.003, 0.2, 39)]), "GD reaches about").status == FAILS


def test_em_grows_pi1_at_every_step_is_judged_as_worded():
    assert by_claim(_escape([0.001] * 5), "EM grows pi_1").status == HOLDS
    assert by_claim(_escape([0.001] * 5, growing_factors=(1.5, 0.999, 1.4)), "EM grows pi_1").status == FAILS


def test_the_explanation_of_a_truth_that_does_not_escape_follows_eq_4_4():
    slow = by_claim(_escape([0.001] * 5, stuck_factor=1.0016), "EM escapes the one-cluster")
    assert slow.status == FAILS and "predicts pi_1 = 0.00012 after 100 steps, so no escape" in slow.evidence
    fast = by_claim(_escape([0.001] * 5, stuck_factor=1.12), "EM escapes the one-cluster")
    assert "would reach 0.01 within 100 steps; on the sample the run grows by 1.0000" in fast.evidence



def test_eq_4_4_is_judged_per_truth_so_one_truth_with_many_steps_does_not_decide():
    verdicts = _escape([0.001] * 5)
    factors = pd.concat([pd.DataFrame([{"truth_index": t, "iteration": 1, "pi1": 1e-4, "observed": 1.01,
                                        "predicted": 1.0, "relative_error": 0.01} for t in range(5)]),
                         pd.DataFrame([{"truth_index": 5, "iteration": i + 1, "pi1": 1e-4, "observed": 1.2,
                                        "predicted": 1.0, "relative_error": 0.2} for i in range(50)])])
    paths = pd.DataFrame([{"algorithm": "em", "truth_index": t, "iteration": 100, "pi1": 0.3} for t in range(6)])
    slopes = pd.DataFrame({"truth_index": range(6), "final_pi1": 0.001, "r2": 0.999, "log_r2": 0.7, "slope": 1e-5,
                           "predicted_slope": 1e-5})
    separations = pd.Series(np.linspace(0.2, 1.0, 6), index=range(6))
    verdicts = figure2.escape_verdicts(paths, factors, slopes, 0.0015, separations, 1e-4)
    eq44 = by_claim(verdicts, "Eq. 4.4")
    assert eq44.status == HOLDS and "pooled, 20.00% over 55 steps" in eq44.evidence, eq44.evidence
    factors["relative_error"] = 0.2
    assert by_claim(figure2.escape_verdicts(paths, factors, slopes, 0.0015, separations, 1e-4), "Eq. 4.4").status == FAILS


def test_a_run_that_converged_early_contributes_no_copied_steps():
    # EM (batch "e") stops at iteration 2; GD ("g") runs to 4, so EM's fixed point is carried to 4
    # for the figures only.
    traces = pd.DataFrame([{"batch_id": batch, "run_index": 0, "iteration": t, "quantity": quantity, "component": c,
                            "feature": f, "value": value}
                           for batch, last in (("e", 2), ("g", 4)) for t in range(last + 1)
                           for quantity, c, f, value in (("pi", 0, 0, 1e-4 * (1 + t)), ("pi", 1, 0, 1 - 1e-4 * (1 + t)),
                                                          ("mu", 0, 0, 0.9), ("mu", 0, 1, 0.1), ("mu", 1, 0, 0.2),
                                                          ("mu", 1, 1, 0.8))])
    rows = pd.DataFrame({"batch_id": ["e", "g"], "run_index": 0, "algorithm": ["em", "gd"], "truth_index": 0,
                         "step": [None, 0.01], "truth_pi": [[0.5, 0.5]] * 2, "truth_mu": [[0.9, 0.1, 0.1, 0.9]] * 2})
    paths = figure2.trajectories(rows, traces)
    em = paths[paths["algorithm"] == "em"]
    assert list(em["iteration"]) == [0, 1, 2, 3, 4] and list(em["recorded"]) == [True, True, True, False, False]
    assert list(figure2.em_factors(paths)["iteration"]) == [0, 1]


LOG_2 = float(np.log(2))


def _gap_rows(trap_change=1e-9, escape_change=-1e-9, independent=1e-16, slope=LOG_2):
    rows = [{"quantity": "local_minimum_trap", "closed_form": 0.8, "engine": trap_change, "perturbations": 200},
            {"quantity": "local_minimum_escape", "closed_form": 1.2, "engine": escape_change, "perturbations": 200},
            {"quantity": "gap_random_truth", "engine": 0.1, "D": 3}, {"quantity": "gap_independent_truth", "engine": independent}]
    rows += [{"quantity": "gap_extreme_truth", "D": D, "delta": 1e-4, "engine": slope * (D - 1), "limit": np.log(2) * (D - 1)}
             for D in range(2, 9)]
    return pd.DataFrame(rows).assign(relative_error=0.0)


@pytest.mark.parametrize("change,claim", [({}, None), ({"trap_change": -1e-9}, "One-cluster points"),
                                          ({"escape_change": 1e-9}, "One-cluster points"),
                                          ({"independent": 1e-6}, "The one-cluster gap is positive"),
                                          ({"slope": 0.66}, "The gap grows like")])
def test_theorem_5_checks_can_fail(tmp_path, change, claim):
    _, verdicts = theory_report.one_cluster_gap(_gap_rows(**change), tmp_path)
    failed = [v.claim for v in verdicts if v.status == FAILS]
    assert failed == ([] if claim is None else [next(v.claim for v in verdicts if v.claim.startswith(claim))])


def _trap_starts(escaping_per_D: dict[int, int], starts: int = 40) -> pd.DataFrame:
    """Starts with Z_1 < 1 at which GD is trapped; ``escaping_per_D[D]`` of them EM escapes."""
    rows = []
    for D, escaping in escaping_per_D.items():
        rows += [{"quantity": "start", "D": D, "truth_index": 0, "index": i, "engine": 0.0, "epsilon": 1e-3,
                  "em_pi1": 0.5 if i < escaping else 1e-4, "in_trap": True, "lambda_1": 1.0, "lambda_2": -1.0,
                  "closed_form": 0.5} for i in range(starts)]
    return pd.DataFrame(rows).assign(relative_error=0.0)


def test_em_escape_is_judged_per_D(tmp_path):
    # D = 2 at 97.5%: Theorem 4.5 says every start escapes, so it fails; pooled with D = 3's 100% it would pass.
    # D = 3 with no escape: Theorem 4.7 asserts some region exists, so its existence verdict fails.
    _, verdicts = theory_report.gd_trap(_trap_starts({2: 39, 3: 0, 4: 40}), tmp_path)
    statuses = {v.claim.split(" (")[0]: v.status for v in verdicts}
    assert statuses["D = 2: EM escapes from every start with Z_1 < 1"] == FAILS
    assert statuses["D = 2: there are one-cluster regions that trap GD and that EM escapes"] == HOLDS
    assert statuses["D = 3: there are one-cluster regions that trap GD and that EM escapes"] == FAILS
    assert statuses["D = 4: there are one-cluster regions that trap GD and that EM escapes"] == HOLDS
    assert not any(claim.startswith("D = 3: EM escapes from every") for claim in statuses)  # the paper claims it at D = 2 only
    _, verdicts = theory_report.gd_trap(_trap_starts({2: 40}), tmp_path)
    assert all(v.status == HOLDS for v in verdicts)


def _digits_rows(kmeans_diverged, kmeans_hits, uniform_diverged=10, uniform_hits=0):
    rows = []
    for init, diverged, hits in (("uniform", uniform_diverged, uniform_hits), ("kmeans", kmeans_diverged, kmeans_hits)):
        for m in (2, 5):
            for r in range(20):
                status = "diverged" if r < diverged else "converged"
                rows.append(dict(algorithm="gd", step=0.02, init=init, m=m, run_index=r, status=status,
                                 k_cluster=diverged <= r < diverged + hits, k=m, loss=1.0, ari=0.2))
        rows += [dict(algorithm="em", step=np.nan, init=init, m=m, run_index=r, status="converged", k_cluster=False,
                      k=m, loss=1.0, ari=0.4) for m in (2, 5) for r in range(20)]
    return pd.DataFrame(rows)


def test_digits_divergence_and_k_cluster_endings_are_two_outcomes_with_two_claims():
    rows = _digits_rows(kmeans_diverged=0, kmeans_hits=0)
    verdicts = {v.claim: v.status for v in digits.verdicts(digits.summary(rows), rows)}
    k_cluster = next(c for c in verdicts if "GD ends at k-cluster points on real data" in c)
    diverges = next(c for c in verdicts if "GD diverges on real data" in c)
    assert verdicts[k_cluster] == FAILS and verdicts[diverges] == HOLDS  # divergence is no longer counted as collapse
    assert verdicts["k-means initialisation lowers GD's rate of divergence (step 0.02)"] == HOLDS
    assert verdicts["k-means initialisation lowers GD's rate of k-cluster endings (step 0.02)"] == UNTESTABLE  # 0 vs 0
    worse = _digits_rows(kmeans_diverged=18, kmeans_hits=0, uniform_diverged=2)
    verdicts = {v.claim: v.status for v in digits.verdicts(digits.summary(worse), worse)}
    assert verdicts["k-means initialisation lowers GD's rate of divergence (step 0.02)"] == FAILS


def test_an_interval_over_inits_that_all_agree_is_exact_not_zero_width():
    # Every uniform init ends at a k-cluster point and no k-means init does: resampling inits shows no
    # spread, so the interval comes from Clopper-Pearson bounds over the 40 inits of each side.
    rows = _digits_rows(kmeans_diverged=0, kmeans_hits=0, uniform_diverged=0, uniform_hits=20)
    verdict = next(v for v in digits.verdicts(digits.summary(rows), rows) if "rate of k-cluster endings" in v.claim)
    assert verdict.status == HOLDS and "Estimate -1 [-1, -0.792]" in verdict.evidence, verdict.evidence


def test_a_slope_claim_with_an_interval_over_replicates():
    claim, band = ClaimSpec("slope", "a slope", "in the band", check("a test")), (-0.35, -0.15)
    assert band_verdict(claim, {}, -0.22, -0.30, -0.18, band, "", "").status == HOLDS
    assert band_verdict(claim, {}, -0.60, -0.70, -0.50, band, "", "").status == FAILS
    assert band_verdict(claim, {}, 0.04, -0.47, 2.9, band, "", "").status == UNTESTABLE  # paper C's 10 replicates
    assert band_verdict(claim, {}, -0.22, np.nan, np.nan, band, "", "").status == UNTESTABLE
    assert sign_verdict(claim, {}, -0.3, -0.4, -0.2, "", "", sign=-1).status == HOLDS
    assert sign_verdict(claim, {}, -0.1, -0.4, 0.2, "", "", sign=-1).status == UNTESTABLE


def test_chance_misses_leave_each_truth_out():
    def cell_rows(rates):
        rows = pd.DataFrame([dict(m=2, D=2, algorithm="gd", truth_index=t, run_index=r, k_cluster=r < round(rate * 60),
                                  status="capped") for t, rate in enumerate(rates) for r in range(60)])
        return published.per_truth_counts(rows)

    # Twenty identical observed rates: no truth falls outside the range of the others.
    assert published.expected_misses(cell_rows([0.5] * 20), "gd") == 0
    # Twenty evenly spread rates: the two lowest and two highest fall outside the others' 5-95% range.
    assert published.expected_misses(cell_rows(np.round(np.linspace(0.05, 0.95, 20) * 60) / 60), "gd") == 0.2
    # Summed over cells.
    two_cells = pd.concat([cell_rows([0.5] * 20), cell_rows(np.round(np.linspace(0.05, 0.95, 20) * 60) / 60).assign(D=3)])
    assert published.expected_misses(two_cells, "gd") == 0.2


def _curve(kl, estimator="quadrature", size=6, T=10000):
    t = np.arange(0, T + 1, 10)
    return pd.DataFrame({"iteration": t, "kl": kl(np.maximum(t, 1)), "distance": 1 / np.sqrt(np.maximum(t, 1)),
                         "estimator": estimator, "estimator_size": size})


def test_paper_b_rate_criteria_judge_the_claims_as_worded():
    from emrun.report.gradem import _rate_fits

    # A power law whose log-log slope changes between the windows is still sub-linear.
    bent = _rate_fits(_curve(lambda t: t ** -0.6 * np.exp(-np.sqrt(t) / 30)), 10000)
    assert bent["sublinear"] and abs(bent["slope_mid"] - bent["slope_L"]) > 0.5
    # An exponential decay is not sub-linear, but it is at least as fast as the O(1/sqrt(t)) bound.
    exponential = _rate_fits(_curve(lambda t: np.exp(-t / 2000)), 10000)
    assert not exponential["sublinear"] and exponential["bounded"]
    # Slower than the bound.
    assert not _rate_fits(_curve(lambda t: t ** -0.3), 10000)["bounded"]
    # Fresh Monte Carlo whose standard error sqrt(2 L / N) exceeds 10% of L: no slope is fitted.
    noisy = _rate_fits(_curve(lambda t: 1e-4 / np.sqrt(t) * 100, "fresh_mc", 350_000), 10000)
    assert not noisy["measurable"] and noisy["unresolved"] > 0 and noisy["nonpositive"] == 0
    assert _rate_fits(_curve(lambda t: 1 / np.sqrt(t), "fresh_mc", 350_000), 10000)["measurable"]
    # Curves that do not converge are not sub-linear convergence, whatever their rate does.
    for stalls in (lambda t: 0.5 + 0 * t, lambda t: 1e-3 * t ** 0.5, lambda t: 1e-3 + np.exp(-t / 30)):
        assert not _rate_fits(_curve(stalls), 10000)["sublinear"]
