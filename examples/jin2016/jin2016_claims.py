"""The claims of jin2016.yaml (a claim file: listed under ``claim_plugins``, outside the config hash,
so a claim can be fixed after the sweep with nothing re-run).

A run *ends badly* when its final average log-likelihood on the sample is more than ``gap`` nats per
point below the truth's (``loss - truth_loss > gap``; losses are average negative log-likelihoods).
Runs sharing a truth share its sample and are not independent: every interval resamples truths
with all their runs, and a trend counts one point per truth.
"""

import numpy as np

from emrun.criteria import EXTENSION, ClaimSpec, Source
from emrun.plugins import register_claim
from emrun.report.claims import Claim
from emrun.report.verdicts import CLUSTER_BOOTSTRAP, MIN_CLUSTERS, cluster_bootstrap, spearman_trend

TRUTH = ["m", "D", "truth_index"]  # runs sharing these share a truth and its sample
PAPER = Source(EXTENSION, "Jin, Zhang, Balakrishnan, Wainwright & Jordan, NeurIPS 2016", "Theorem 2", "",
               "population EM, M >= 3 equally weighted, well-separated unit-variance spherical Gaussians, "
               "random initialisation",
               "judged on samples of the mixture (4000 points), means at least 6 apart in D = 2")
BAD = ("a run ends badly when its final average log-likelihood on the sample is more than {gap:g} nats per point below "
       "the truth's")
EVERY_M = ClaimSpec(
    "bad_endings_at_every_m", "{algorithm} from random initialisation ends at bad critical points at every M",
    BAD + "; at every M, the 95% interval over truths (" + str(MIN_CLUSTERS) + " or more) of the rate of bad endings "
    "lies above 0 (an M whose interval reaches 0, or has too few truths: not testable)", PAPER, identity=("algorithm",))
RISES = ClaimSpec(
    "bad_endings_rise_with_m", "{algorithm}'s rate of bad endings rises with M",
    BAD + "; Spearman rho > 0 with p < 0.05 between M and each truth's rate of bad endings (a significant trend the "
    "other way: does not hold; none: not testable)", PAPER, identity=("algorithm",))


def bad_endings(rows, algorithm: str, gap: float):
    """Per truth of the algorithm's runs: M, its bad endings and its runs."""
    runs = rows[rows["algorithm"] == algorithm]
    bad = (runs["loss"] - runs["truth_loss"]) > gap
    return bad.groupby([runs[c] for c in TRUTH]).agg(["sum", "size"]).reset_index()


def bad_endings_at_every_m(rows, config, algorithm="em_means", gap=0.1):
    params = {"algorithm": algorithm, "gap": gap}
    per_truth = bad_endings(rows, algorithm, gap)
    if per_truth.empty:
        return EVERY_M.untestable(f"no {algorithm} runs are stored.", **params)
    parts, lowest = [], np.inf
    for m, truths in per_truth.groupby("m"):
        low, high = cluster_bootstrap(truths["sum"], truths["size"])
        rate = truths["sum"].sum() / truths["size"].sum()
        parts.append(f"M = {m}: {int(truths['sum'].sum())} of {int(truths['size'].sum())} runs, rate {rate:.2f} "
                     f"[{low:.2f}, {high:.2f}] over {len(truths)} truths")
        lowest = min(lowest, low) if not np.isnan(low) else -np.inf
    evidence = "; ".join(parts) + "."
    if lowest > 0:
        return EVERY_M.judged(True, evidence, interval=CLUSTER_BOOTSTRAP, **params)
    return EVERY_M.untestable(evidence + " Some M's interval reaches 0 or is missing.", interval=CLUSTER_BOOTSTRAP,
                              **params)


def bad_endings_rise_with_m(rows, config, algorithm="em_means", gap=0.1):
    per_truth = bad_endings(rows, algorithm, gap)
    return spearman_trend(per_truth["m"], per_truth["sum"] / per_truth["size"], RISES,
                          {"algorithm": algorithm, "gap": gap}, points="truths (one rate per truth)")


register_claim(Claim("bad_endings_at_every_m", bad_endings_at_every_m, {"algorithm": "em_means", "gap": 0.1},
                     description="Jin et al. 2016: bad endings at every M", spec=EVERY_M))
register_claim(Claim("bad_endings_rise_with_m", bad_endings_rise_with_m, {"algorithm": "em_means", "gap": 0.1},
                     description="Jin et al. 2016: bad endings rise with M", spec=RISES))
