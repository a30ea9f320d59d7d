"""The claims of jin2016.yaml (a claim file: listed under ``claim_plugins``, outside the config hash,
so a claim can be fixed after the sweep with nothing re-run).

A run *ends badly* when its final average log-likelihood on the sample is more than ``gap`` nats per
point below the truth's (``loss - truth_loss > gap``; losses are average negative log-likelihoods).
Runs sharing a truth share its sample and are not independent: every interval resamples truths
with all their runs, and a trend counts one point per truth.
"""

from dataclasses import replace

from emrun import stats
from emrun.criteria import EXTENSION, Change, ClaimSpec, Source
from emrun.plugins import register_claim, register_report_section
from emrun.report.claims import Claim

PAPER = Source(EXTENSION, "Jin, Zhang, Balakrishnan, Wainwright & Jordan, NeurIPS 2016", "Theorem 2", "",
               "population EM, M >= 3 equally weighted, well-separated unit-variance spherical Gaussians, "
               "random initialisation",
               "judged on samples of the mixture (4000 points), means at least 6 apart in D = 2")
BAD = ("a run ends badly when its final average log-likelihood on the sample is more than {gap:g} nats per point below "
       "the truth's")
RARE = 0.1  # bad endings rarer than one run in ten at some M: what would contradict "at every M"
EVERY_M = ClaimSpec(
    "bad_endings_at_every_m", "{algorithm} from random initialisation ends at bad critical points at every M",
    BAD + "; at every M, the 95% interval over truths of the rate of bad endings (emrun.stats.rate: truths resampled "
    f"whole, exact bounds for few truths or few events) lies above 0: holds; at some M it lies below {RARE:g}: does not "
    "hold; otherwise not testable", PAPER, version=2, identity=("algorithm",),
    changes=(Change(2, "2026-12-03", f"version 1 could not fail (an interval reaching 0 was not testable, never does "
                                     f"not hold); an M whose interval lies below {RARE:g} now does not hold"),))
RISES = ClaimSpec(
    "bad_endings_rise_with_m", "{algorithm}'s rate of bad endings rises with M",
    BAD + "; Spearman rho > 0 with p < 0.05 between M and each truth's rate of bad endings (a significant trend the "
    "other way: does not hold; none: not testable)", PAPER, identity=("algorithm",))


def _runs(rows, algorithm):
    return rows[rows["algorithm"] == algorithm]


def bad_endings_at_every_m(rows, config, algorithm="em_means", gap=0.1):
    params = {"algorithm": algorithm, "gap": gap}
    runs = _runs(rows, algorithm)
    if runs.empty:
        return EVERY_M.untestable(f"no {algorithm} runs are stored.", **params)
    estimates = {m: stats.rate(part, (part["loss"] - part["truth_loss"]) > gap) for m, part in runs.groupby("m")}
    evidence = "; ".join(f"M = {m}: rate {e.text('.2f')} over {e.truths} truths, {e.runs} runs" for m, e in estimates.items())
    methods = "; ".join(sorted({e.method for e in estimates.values()}))
    if all(e.has_interval and e.low > 0 for e in estimates.values()):
        return EVERY_M.judged(True, evidence + ".", interval=methods, **params)
    rare = [m for m, e in estimates.items() if e.has_interval and e.high < RARE]
    if rare:
        return EVERY_M.judged(False, evidence + f". At M = {rare}, bad endings are rarer than {RARE:g}.", interval=methods,
                              **params)
    return EVERY_M.untestable(evidence + ". Some M's interval reaches 0.", interval=methods, **params)


def bad_endings_rise_with_m(rows, config, algorithm="em_means", gap=0.1):
    runs = _runs(rows, algorithm)
    per_truth = stats.per_truth(runs, (runs["loss"] - runs["truth_loss"]) > gap).reset_index()
    trend = stats.trend(per_truth["m"], per_truth["sum"] / per_truth["size"], RISES.text({"algorithm": algorithm}),
                        points="truths (one rate per truth)")
    # The same status and evidence, as a verdict on the declared claim (its id, criterion record, source).
    return replace(RISES.verdict(trend.status, trend.evidence, {"algorithm": algorithm, "gap": gap}),
                   multiplicity=trend.multiplicity)


def bad_endings_by_m(ctx) -> str:
    """A table and a figure: each M's rate of bad endings (gap 0.1) with its 95% interval over truths,
    and each truth's own rate (runs of a truth are not independent: the spread is the truths')."""
    import matplotlib.pyplot as plt

    gap = next((c.get("gap", 0.1) for c in ctx.config.get("claims", []) if isinstance(c, dict)), 0.1)
    runs = ctx.rows
    bad = (runs["loss"] - runs["truth_loss"]) > gap
    lines = [f"A run ends badly when its final average log-likelihood is more than {gap:g} nats per point below the "
             "truth's.", "", "| M | truths | runs | bad endings | rate [95% interval over truths] |", "|---|---|---|---|---|"]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for m, part in runs.groupby("m"):
        estimate = stats.rate(part, bad.loc[part.index])
        lines.append(f"| {m} | {estimate.truths} | {estimate.runs} | {int(bad.loc[part.index].sum())} | {estimate.text('.2f')} |")
        per_truth = stats.per_truth(part, bad.loc[part.index])
        ax.scatter([m] * len(per_truth), per_truth["sum"] / per_truth["size"], s=12, color="0.6")
        ax.errorbar([m], [estimate.value], yerr=[[estimate.value - estimate.low], [estimate.high - estimate.value]],
                    fmt="o", color="C3", capsize=3)
    ax.set_xlabel("M (components)")
    ax.set_ylabel("rate of bad endings")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("grey: each truth's rate; red: the rate, 95% interval over truths", fontsize=8)
    return "\n".join(lines) + "\n\n" + ctx.save_figure(fig, "rates", "Rate of bad endings against M")


register_report_section("bad_endings_by_m", bad_endings_by_m, title="Bad endings by M (Jin et al. 2016)")
register_claim(Claim("bad_endings_at_every_m", bad_endings_at_every_m, {"algorithm": "em_means", "gap": 0.1},
                     description="Jin et al. 2016: bad endings at every M", spec=EVERY_M))
register_claim(Claim("bad_endings_rise_with_m", bad_endings_rise_with_m, {"algorithm": "em_means", "gap": 0.1},
                     description="Jin et al. 2016: bad endings rise with M", spec=RISES))
