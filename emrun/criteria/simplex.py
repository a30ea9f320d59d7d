"""The claims of "Learning Overspecified Gaussian Mixtures Exponentially Fast with the EM Algorithm"
(Assylbekov, Legg & Pak, arXiv 2506.11850; paper C) that emrun judges. Its text and experimental
settings are not available to emrun: the quotes are from a summary of the paper, and every rate,
band and tolerance below is emrun's reconstruction, so each verdict is an extension of what the
summary says the paper shows."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from emrun.criteria import ClaimSpec, Declared, Work
from emrun.criteria.uai2019 import TEN_CLUSTERS
from emrun.criteria.xu2024 import BAND_INTERVAL

SIMPLEX = Work('Assylbekov, Legg & Pak, "Learning Overspecified Gaussian Mixtures Exponentially Fast with the EM '
               'Algorithm" (arXiv 2506.11850, as summarised: its text and settings are not available)')
POPULATION_EM = "population EM, N(0, I) data, means on a regular simplex, weights with non-zero DFT entries"
EXPONENTIAL = SIMPLEX.says("the summary's Key Results", "EM achieves exponential convergence in KL divergence "
                           "(O(log(1/eps)) iterations) for overspecified mixtures with simplex-structured means",
                           POPULATION_EM)
UNIFORM_SLOW = SIMPLEX.says("the summary's Failure signatures", "Slow Convergence: Uniform weights violate DFT "
                            "condition, matrix A becomes singular", "population EM with uniform weights, k > 2")
ACCELERATION = SIMPLEX.says("the summary's Executive Summary", "numerical experiments confirming dramatic acceleration "
                            "compared to conventional sublinear rates", POPULATION_EM)
NEIGHBOURHOOD = SIMPLEX.says("the summary's Mechanism 2", "Break condition: Initialization outside radius gamma "
                             "prevents exponential rate", POPULATION_EM + ", initialised within radius gamma")
FINITE_SAMPLE = SIMPLEX.says("the summary's Key Results", "Finite-sample bounds show convergence with explicit sample "
                             "complexity guarantees", "sample EM")
LLOYD = SIMPLEX.says("the summary's Mechanism 3 (Proposition 1)", "When clustering N(0,I) data, k-means centroids "
                     "converge to fixed point R_0 v_i dictated by angular symmetry", "the population N(0, I)")
RECONSTRUCTED = "emrun's reconstruction of the setting"

EXPONENTIAL_RATE = ClaimSpec(
    "simplex.exponential", "pi = {weights}, ||theta_0|| = {radius:g}: EM converges exponentially, at the predicted rate",
    "ln KL is linear in t (R² > 0.99 over >= 6 decades, t >= 10, KL > 1e-12) with slope within 5% of "
    "2 ln(1 - min|DFT(pi)|²) = {predicted:.4f}, and KL never increases (by more than 1e-15)",
    EXPONENTIAL.beyond(f"{RECONSTRUCTED}; the predicted slope is emrun's linearisation"),
    identity=("weights", "radius"))
SUBLINEAR_UNIFORM = ClaimSpec(
    "simplex.uniform_sublinear", "pi = {weights} (DFT condition fails), ||theta_0|| = {radius:g}: EM converges "
    "sub-linearly, far slower", "over t in [100, 1000] the log-log slope of KL is in [-2.3, -1.5] and ln KL against t "
    "is not a line (R² < 0.99); KL(100) is at least 1e3 times that of every weight vector meeting the DFT condition",
    UNIFORM_SLOW.beyond(f"{RECONSTRUCTED}; the slope band and the factor 1e3 are emrun's"),
    identity=("weights", "radius"))
FREE_MEANS = ClaimSpec(
    "simplex.free_means", "Free-means gradient EM (paper B's setting) from the same simplex is sub-linear, so the "
    "simplex constraint is a dramatic acceleration",
    "every free-means curve has a log-log slope in [-2.5, -1] over t in [100, 1000], and at t = 100 its KL is at least "
    "1e3 times the simplex EM's, under the DFT condition",
    ACCELERATION.beyond(f"{RECONSTRUCTED}; the slope band and the factor 1e3 are emrun's"))
SAME_RATE = ClaimSpec(
    "simplex.radius", "Every start converges, with the same asymptotic rate",
    "every start reaches KL < 1e-8, and the slope of ln KL over KL < 1e-4 is within 5% of {predicted:.4f} for every "
    "start", NEIGHBOURHOOD.beyond(f"{RECONSTRUCTED}: radii from 0.25 to 8; the paper gives no gamma to test"))
SAMPLE_RATE = ClaimSpec(
    "simplex.sample_rate", "pi = {weights}: mean ||theta_hat|| falls as N^({power})",
    "the log-log slope of the mean ||theta_hat|| against N lies in [{low}, {high}], its whole 95% interval over 10 "
    "or more replicates inside that band", FINITE_SAMPLE.beyond(f"{RECONSTRUCTED}; the rates and bands are emrun's"),
    identity=("weights",), version=3,
    changes=(BAND_INTERVAL, replace(TEN_CLUSTERS, version=3, reason="a percentile bootstrap needs at least 10 "
                                    "replicates (it bootstrapped over as few as 2)")))
LLOYD_SIMPLEX = ClaimSpec(
    "simplex.lloyd", "Lloyd's algorithm on N(0, I) data ends at a regular simplex of radius R_0",
    "every centroid norm within 2% of the closed form where there is one (k = 2, 3), the pairwise distances' "
    "coefficient of variation below 2%, and ||mean of centroids|| < 0.02",
    LLOYD.beyond("200,000-point samples of N(0, I); the 2% tolerances are emrun's"))

UNIFORM = 1e-12  # min |DFT(pi)|^2 below this: the DFT condition fails


def weights_label(weights) -> str:
    return "(" + ", ".join(f"{w:.2g}" for w in weights) + ")"


def dft_min(weights) -> float:
    """The smallest |DFT(pi)|^2 over the non-trivial frequencies (0: the DFT condition fails)."""
    from emrun.models.gaussian_means import weight_dft_min

    return weight_dft_min(np.asarray(weights, float))


def predicted_slope(dft: float) -> float:
    """2 ln(1 - min|DFT(pi)|^2), to the 4 decimals a criterion states it with."""
    return round(float(2 * np.log(1 - dft)), 4)


def rates_claims(values: dict) -> list[Declared]:
    options = values["options"]
    out = []
    for weights in options["weights"]:
        dft = dft_min(weights)
        for radius in options["radii"]:
            params = {"weights": weights_label(weights), "radius": radius}
            out.append(Declared(EXPONENTIAL_RATE, {**params, "predicted": predicted_slope(dft)}) if dft >= UNIFORM
                       else Declared(SUBLINEAR_UNIFORM, params))
    return out + ([Declared(FREE_MEANS)] if options.get("free_means") else [])


def radius_claims(values: dict) -> list[Declared]:
    return [Declared(SAME_RATE, {"predicted": predicted_slope(dft_min(values["options"]["weights"][0]))})]


def sample_band(weights) -> dict:
    uniform = dft_min(weights) < UNIFORM
    low, high = (-0.35, -0.15) if uniform else (-0.65, -0.40)
    return {"weights": weights_label(weights), "power": "-1/4" if uniform else "-1/2", "low": low, "high": high}


def samples_claims(values: dict) -> list[Declared]:
    return [Declared(SAMPLE_RATE, sample_band(weights)) for weights in values["options"]["weights"]]


def lloyd_claims(values: dict) -> list[Declared]:
    return [Declared(LLOYD_SIMPLEX)]
