"""The work of the built-in theory checks (emrun.theory, emrun.segmentation), one batch each:
named by ``work=`` in their registry entries (:mod:`emrun.kinds.theory`)."""

from __future__ import annotations

from typing import Any

from emrun.batch import Cell
from emrun.work import CALLS, CHECK_ROW, SOLVE_SECONDS, TRACE_ROW, Work, compiled, loop, trial_calls


def _options(values: dict) -> dict:
    """The check's options in force: the config's, with the check's defaults for the rest."""
    from emrun.kinds.theory import TheorySettings

    return TheorySettings.from_values(values).options


def closed_forms(values: dict, cell: Cell, convergence: Any) -> Work:
    """One BMM EM step on 2^D patterns; a 200,000-point GMM sample and its posteriors."""
    D = cell.D
    return loop(1, 1, 2**D, 2, D, values=CHECK_ROW * (D + 3)) + loop(1, 1, 200_000, 2, D) + Work(exps=200_000 * D)


def one_cluster_gap(values: dict, cell: Cell, convergence: Any) -> Work:
    """The loss of ``perturbations`` mixtures on 2^D patterns on each side of Z_1 = 1; the gaps."""
    D, options = cell.D, _options(values)
    return loop(2, options["perturbations"], 2**D, 2, D, values=CHECK_ROW * 4) + loop(4 + len(options["deltas"]), 1, 2**D, 2, D)


def gmm_rotation(values: dict, cell: Cell, convergence: Any) -> Work:
    """``steps`` EM steps on a sample of ``samples`` points."""
    options = _options(values)
    steps = options["steps"]
    return loop(steps, 1, options["samples"], 2, cell.D, values=CHECK_ROW * steps, calls=CALLS["rotation"]) \
        + Work(exps=options["samples"] * cell.D)


def _rule_nodes(options: dict, D: int) -> int:
    """Nodes per component of the two Gauss-Hermite rules of the population checks (rank <= 2)."""
    rank = min(2, D)
    return options["points"] ** rank + options["coarse_points"] ** rank


def gmm_rotation_population(values: dict, cell: Cell, convergence: Any) -> Work:
    """``steps`` EM steps under each of two rules (points^r nodes around each of 2 components)."""
    options = _options(values)
    return loop(2 * options["steps"], 1, _rule_nodes(options, cell.D), 2, cell.D, values=CHECK_ROW * options["steps"],
                calls=trial_calls("em", 2))


def escape_population(values: dict, cell: Cell, convergence: Any) -> Work:
    """EM's and GD's steps under each of two rules, every step recorded."""
    options = _options(values)
    steps = options["em_steps"] + options["gd_steps"]
    return loop(2 * options["em_steps"], 1, _rule_nodes(options, cell.D), 2, cell.D, values=CHECK_ROW * steps,
                calls=trial_calls("em", 2)) \
        + loop(2 * options["gd_steps"], 1, _rule_nodes(options, cell.D), 2, cell.D, calls=trial_calls("gd", 2))


def gd_trap(values: dict, cell: Cell, convergence: Any) -> Work:
    """GD and EM from every start for all their iterations in the kernel (tolerance 1e-300), the
    capped runs' cycle check, and one start of each traced in the numpy loop."""
    from emrun.algorithms import CYCLE_WINDOW

    D, options = cell.D, _options(values)
    starts = options["grid"] ** 2 if D == 2 else options["starts"]
    iterations = options["gd_iterations"] + options["em_iterations"]
    return (compiled(starts, iterations, 2**D, 2, D) + loop(2 * CYCLE_WINDOW, starts, 2**D, 2, D, calls=trial_calls("gd", 2))
            + loop(iterations, 1, 2**D, 2, D, values=CHECK_ROW * (starts + 200), calls=trial_calls("gd", 1)))


def bmm_escape(values: dict, cell: Cell, convergence: Any) -> Work:
    """EM from ``starts`` starts, traced at every iteration in the numpy loop."""
    options = _options(values)
    iterations, starts = options["em_iterations"], options["starts"]
    return loop(iterations, starts, 4, 2, 2, values=CHECK_ROW * (iterations * options["trajectories"] + starts),
                calls=trial_calls("em", 1))


def kmeans_vs_em(values: dict, cell: Cell, convergence: Any) -> Work:
    """Two small synthetic sets (about 500 points): k-means from 10 starts and two EM fits (scikit-learn)."""
    return compiled(2 * 10, 100, 500, 2, 2) + loop(2 * 2 * 100, 1, 500, 2, 2, values=CHECK_ROW * 2 * 520, calls=CALLS["em"])


def segmentation(values: dict, cell: Cell, convergence: Any) -> Work:
    """Three images of about size^2 pixels: k-means from ``kmeans_starts`` starts (compiled, about
    100 iterations each), then full-covariance EM traced for at most ``iterations``, each of which
    solves one 3 x 3 system per pixel and component (priced as compiled: SOLVE_SECONDS each)."""
    from emrun.kinds.segmentation import SegmentationSettings

    options = SegmentationSettings.from_values(values).options
    pixels, K, iterations = options["size"] ** 2, cell.m, 3 * options["iterations"]
    return compiled(3 * options["kmeans_starts"], 100, pixels, K, 3) \
        + loop(iterations, 1, pixels, K, 3 * 3, values=TRACE_ROW * iterations, calls=trial_calls("em", 1)) \
        + Work(compiled=iterations * pixels * K * SOLVE_SECONDS)

