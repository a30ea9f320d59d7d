"""The report of the lecture's image segmentation (the ``segmentation`` kind): verdicts on EM's
monotone objective and on the two synthetic images (docs/protocols.md, sections 4.3-4.4), tables
per image and K, and figures drawn from the stored images and label maps of seed 0."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from emrun.criteria import lecture
from emrun.criteria.lecture import ACCURACY_THRESHOLD, EQUAL_PARAMS, MEDIAN_THRESHOLD, SHARE_THRESHOLD, UNEQUAL_PARAMS
from emrun.report import ReportResult
from emrun.report.common import save_figure
from emrun.report.theory import options_line, write_numbers
from emrun.report.verdicts import (
    BOOTSTRAP_RESAMPLES,
    FAILS,
    HOLDS,
    MIN_CLUSTERS,
    UNTESTABLE,
    Verdict,
    same_as_before,
    with_multiplicity,
)
from emrun.segmentation import DECREASE_TOLERANCE, OPTIONS, REGIONS, decode


def _monotone(rows: pd.DataFrame) -> Verdict:
    runs = rows[rows["quantity"] == "objective_decreases"]
    spec, params = lecture.SEGMENTATION_MONOTONE, {"tolerance": DECREASE_TOLERANCE}
    if runs.empty:
        return spec.untestable("no EM runs are stored.", **params)
    falls = int(runs["value"].sum())
    largest = runs["largest_rise"].max()  # of -F in one step, relative to |F|
    fall = ("non-finite in some run" if not np.isfinite(largest) else
            f"{largest:.1e}" if largest > 0 else "none (F never fell, even by rounding)")
    return spec.judged(falls == 0, f"{falls} decreases over {int(runs['steps'].sum()):,} iterations of {len(runs)} runs; "
                       f"the largest one-step fall of F relative to |F|: {fall}.", **params)


def _accuracies(rows: pd.DataFrame, image: str) -> pd.DataFrame:
    """Per seed, GMM and k-means accuracy on ``image`` at K = its number of regions."""
    mine = rows[(rows["image"] == image) & rows["quantity"].isin(["gmm_accuracy", "kmeans_accuracy"])]
    return mine.pivot_table(index="truth_index", columns="quantity", values="value")


def _equal_noise(rows: pd.DataFrame) -> Verdict:
    spec, params = lecture.SEGMENTATION_EQUAL, EQUAL_PARAMS
    table = _accuracies(rows, "equal_noise")
    if table.empty:
        return spec.untestable(f"no run at K = {params['K']} is stored.", **params)
    gmm = table["gmm_accuracy"]
    return spec.judged(bool((gmm >= ACCURACY_THRESHOLD).all()),
                       f"GMM accuracy over {len(gmm)} seeds: min {gmm.min():.4f}, median {gmm.median():.4f} "
                       f"(k-means: min {table['kmeans_accuracy'].min():.4f}).", **params)


def _unequal_noise(rows: pd.DataFrame) -> Verdict:
    spec, params = lecture.SEGMENTATION_UNEQUAL, UNEQUAL_PARAMS
    table = _accuracies(rows, "unequal_noise")
    if len(table) < MIN_CLUSTERS:
        # Version 1 bootstrapped over as few as 2 seeds.
        return spec.untestable(f"fewer than {MIN_CLUSTERS} seeds at K = 3: no interval over seeds.", **params)
    difference = (table["gmm_accuracy"] - table["kmeans_accuracy"]).to_numpy()
    rng = np.random.default_rng(0)
    means = difference[rng.integers(0, len(difference), (BOOTSTRAP_RESAMPLES, len(difference)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    strict_low = np.percentile(means, 0.5)
    share, median = float((difference > 0).mean()), float(np.median(difference))
    evidence = (f"GMM ahead in {int((difference > 0).sum())} of {len(difference)} seeds; median difference {median:+.4f}, "
                f"mean {difference.mean():+.4f} [{low:+.4f}, {high:+.4f}] (GMM median accuracy "
                f"{table['gmm_accuracy'].median():.4f}, k-means {table['kmeans_accuracy'].median():.4f}).")
    interval = f"percentile bootstrap over seeds ({BOOTSTRAP_RESAMPLES} resamples, seed 0)"
    def status(lower: float) -> str:
        return FAILS if share < SHARE_THRESHOLD or median < MEDIAN_THRESHOLD else UNTESTABLE if lower <= 0 else HOLDS

    note = " The interval contains 0." if status(low) == UNTESTABLE else ""
    verdict = spec.verdict(status(low), evidence + note, params, interval=interval)
    return same_as_before(with_multiplicity(verdict, "interval", status(strict_low)), 1)


def _stored_map(rows: pd.DataFrame, image: str, quantity: str, K: int | None = None) -> np.ndarray | None:
    chosen = rows[(rows["image"] == image) & (rows["quantity"] == quantity) & (rows["truth_index"] == 0)]
    if K is not None:
        chosen = chosen[chosen["K"] == K]
    if chosen.empty:
        return None
    row = chosen.iloc[0]
    shape = (int(row["height"]), int(row["width"])) + ((3,) if quantity == "image" else ())
    return decode(row["encoded"], shape)


def _painted(labels: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Each label drawn in the mean colour of its pixels (so two methods' maps compare by eye)."""
    colours = np.zeros((labels.max() + 1, 3))
    for label in np.unique(labels):
        colours[label] = image[labels == label].mean(axis=0)
    return colours[labels]


def _segmentation_figure(rows: pd.DataFrame, folder: Path, chosen: dict[str, int]) -> list[str]:
    images = [name for name in chosen if _stored_map(rows, name, "image", chosen[name]) is not None]
    if not images:
        return []
    fig, axes = plt.subplots(len(images), 3, figsize=(9, 3 * len(images)), squeeze=False)
    for row_axes, name in zip(axes, images, strict=True):
        image = _stored_map(rows, name, "image", chosen[name]) / 255.0
        panels = [("image", image)] + [(method, _painted(_stored_map(rows, name, f"{method}_labels", chosen[name]), image))
                                       for method in ("kmeans", "gmm")]
        for ax, (title, picture) in zip(row_axes, panels, strict=True):
            ax.imshow(picture)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}: " + {"image": "the image", "kmeans": f"k-means, K = {chosen[name]}",
                                         "gmm": f"GMM (EM), K = {chosen[name]}"}[title], fontsize=8)
    return save_figure(fig, folder, "segmentations", "each image (seed 0) beside its k-means and GMM segmentations, "
                       "each label in the mean colour of its pixels")


def _accuracy_figure(rows: pd.DataFrame, folder: Path) -> list[str]:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, name in zip(axes, ("equal_noise", "unequal_noise"), strict=True):
        table = _accuracies(rows, name)
        if table.empty:
            continue
        for row in table.itertuples():
            ax.plot([0, 1], [row.kmeans_accuracy, row.gmm_accuracy], "o-", color="0.5", alpha=0.7)
        ax.set_xticks([0, 1], ["k-means", "GMM (EM)"])
        ax.set_xlim(-0.3, 1.3)
        ax.set(ylabel="pixel accuracy (best label matching)",
               title=f"{name}, K = {REGIONS[name]}: one line per seed")
        if name == "equal_noise":
            ax.axhline(ACCURACY_THRESHOLD, color="tab:red", ls="--", lw=0.8, label=f"{ACCURACY_THRESHOLD}")
            ax.legend(fontsize=7)
    return save_figure(fig, folder, "accuracies", "pixel accuracy of k-means and the GMM per seed, paired")


def _china_figure(rows: pd.DataFrame, folder: Path) -> list[str]:
    Ks = sorted(rows[(rows["image"] == "china") & (rows["quantity"] == "gmm_labels")]["K"].unique())
    if not Ks:
        return []
    image = _stored_map(rows, "china", "image", Ks[0]) / 255.0
    fig, axes = plt.subplots(2, len(Ks), figsize=(2.8 * len(Ks), 4.6), squeeze=False)
    for j, K in enumerate(Ks):
        for i, method in enumerate(("kmeans", "gmm")):
            ax = axes[i][j]
            ax.imshow(_painted(_stored_map(rows, "china", f"{method}_labels", K), image))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{'k-means' if method == 'kmeans' else 'GMM (EM)'}, K = {K}", fontsize=8)
    return save_figure(fig, folder, "china", "china.jpg segmented by k-means (top) and the GMM (bottom) for every K")


def _span(low: float, high: float) -> str:
    return f"{int(low)}" if low == high else f"{int(low)}-{int(high)}"


def section(rows: pd.DataFrame, folder: Path) -> tuple[list[str], list[Verdict]]:
    verdicts = [_monotone(rows), _equal_noise(rows), _unequal_noise(rows)]
    scores = rows[rows["quantity"].isin(["gmm_log_likelihood", "kmeans_inertia"])]
    wide = scores.pivot_table(index=["image", "K"], columns="quantity", values="value", aggfunc="median")
    iterations = rows[rows["quantity"] == "objective_decreases"].groupby(["image", "K"]).agg(
        iterations=("em_iterations", "median"), capped=("em_status", lambda s: int((s == "capped").sum())),
        fewest=("gmm_components", "min"), most=("gmm_components", "max"))
    wide = wide.join(iterations)
    lines = ["Per image and K, medians over seeds: the GMM's log-likelihood per pixel (its penalty apart), k-means' "
             "inertia per pixel, EM's iterations (runs stopped by the cap), and the GMM's components left at the "
             "end over seeds (EM drops a component whose share of the pixels falls below 1e-100).", "",
             "| image | K | GMM log-likelihood | k-means inertia | EM iterations (capped) | GMM components left |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {image} | {K} | {r.gmm_log_likelihood:.4f} | {r.kmeans_inertia:.5f} | {r.iterations:.0f} "
              f"({int(r.capped)}) | {_span(r.fewest, r.most)} |" for (image, K), r in wide.iterrows()]
    for name in ("equal_noise", "unequal_noise"):
        table = _accuracies(rows, name)
        if not table.empty:
            lines += ["", f"Pixel accuracy on {name} at K = {REGIONS[name]}, per seed (GMM / k-means): "
                      + ", ".join(f"{int(seed)}: {r.gmm_accuracy:.4f} / {r.kmeans_accuracy:.4f}"
                                  for seed, r in table.iterrows()) + "."]
    lines += [""]
    chosen = {"equal_noise": REGIONS["equal_noise"], "unequal_noise": REGIONS["unequal_noise"], "china": 3}
    lines += _segmentation_figure(rows, folder, chosen) + _accuracy_figure(rows, folder) + _china_figure(rows, folder)
    return lines, verdicts


def write(ctx) -> ReportResult:
    """The folder's report: what ran, the verdicts, the tables and figures, the provenance."""
    config = ctx.config
    ran = (f"The lecture: a full-covariance GMM (EM, started from k-means) and k-means segment RGB images; K = "
           f"{config['K']}, {config['seeds']} seeds per K (seed {config['seed']}), options "
           f"{options_line(config.get('options', {}), OPTIONS)}.")
    return write_numbers(ctx, ran, section)
