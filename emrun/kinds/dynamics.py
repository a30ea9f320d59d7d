"""The ``dynamics`` kind: means-only Gaussian mixtures learning N(0, I_d) (paper B's gradient EM,
paper C's EM on a simplex), one registered study per config (``study: NAME``).

One registry entry per study holds its runner (:mod:`emrun.dynamics`), its report section and
its options with typed defaults (filled into the canonical config). ``grid.algorithm`` is ``gd``
(gradient EM, with ``grid.step``) or ``em`` (the M-step); the estimator of the population
expectations is recorded in every row.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emrun import dynamics
from emrun.batch import BatchResult, BatchSpec, worker_description
from emrun.config import Checker
from emrun.kinds.base import SHARED_KEYS, CellGrid, HasGrid
from emrun.registry import STUDIES, resolve
from emrun.settings import EMPTY, GridSettings, none_given, thaw

if TYPE_CHECKING:  # a worker running a batch never needs pandas: it costs 0.27 s per process to import
    import pandas as pd

K = dynamics.K_MEANS_RADIUS_3


@dataclass(frozen=True)
class Study:
    """A dynamics study: ``run`` (values, spec) -> rows and ``section`` (rows, folder, config) ->
    (Markdown lines, verdicts), each an object or its import string; ``options`` maps each option
    to its default; ``samples`` is True if it learns from finite samples (estimator kind 'sample')."""

    run: Any
    section: Any
    options: dict
    samples: bool = False
    description: str = ""
    pairs_updates: bool = False  # its report pairs it with the same study run with the other update
    claims: Any = None  # config values -> the emrun.criteria.Declared its section judges
    work: Any = None  # (config values, cell, convergence) -> emrun.work.Work: one batch's work (None: no expected time)


def _study(run: str, section: str, options: dict, samples: bool = False, description: str = "",
           pairs_updates: bool = False, claims: str | None = None) -> Study:
    return Study(f"emrun.dynamics:{run}", section, options, samples, description, pairs_updates, claims,
                 f"emrun.work.studies:{run}")


BUILT_IN = {
    "rates": _study("rates", "emrun.report.gradem:rates", {"iterations": 3000, "weights": "dirichlet", "checkpoints": 80},
                    description="paper B, Figure 1 (left, middle): sub-linear convergence of L and D",
                    claims="emrun.criteria.xu2024:rates_claims"),
    "weights": _study("weights", "emrun.report.gradem:weights",
                      {"iterations": 2000, "weights": dynamics.PAPER_B_WEIGHTS, "checkpoints": 80},
                      description="paper B, Figure 1 (right): more even weights converge faster",
                      claims="emrun.criteria.xu2024:weights_claims"),
    "gradnorm": _study("gradnorm", "emrun.report.gradem:gradnorm", {"scale": 2.0, "trap_max_D": 20, "trap_cap": 200000},
                       description="paper B, Figure 2 (left): the gradient at Theorem 7's initialisation",
                       claims="emrun.criteria.xu2024:gradnorm_claims"),
    "statrate": _study("statrate", "emrun.report.gradem:statrate",
                       {"samples": [1000, 3000, 10000, 30000], "max_iter": 20000, "tol": 1.0e-6}, samples=True,
                       description="paper B, Figure 2 (right): statistical error of sample EM against N", pairs_updates=True,
                       claims="emrun.criteria.xu2024:statrate_claims"),
    "simplex_rates": _study("simplex_population", "emrun.report.simplex:simplex_rates",
                            {"weights": [[0.5, 0.3, 0.2]], "radii": [K], "iterations": 1000, "free_step": 0.7,
                             "free_means": True}, description="paper C: ln KL linear in t under the DFT condition",
                            claims="emrun.criteria.simplex:rates_claims"),
    "simplex_radius": _study("simplex_population", "emrun.report.simplex:simplex_radius",
                             {"weights": [[0.5, 0.3, 0.2]], "radii": [0.25, 0.5, 1.0, 2.0, 4.0, 8.0], "iterations": 2000,
                              "free_step": 0.7, "free_means": False}, description="paper C: the initial radius",
                             claims="emrun.criteria.simplex:radius_claims"),
    "simplex_samples": _study("simplex_samples", "emrun.report.simplex:simplex_samples",
                              {"weights": [[0.5, 0.3, 0.2]], "samples": [1000, 3000, 10000, 30000, 100000], "radius": K,
                               "max_iter": 3000, "tol": 1.0e-10}, samples=True,
                              description="paper C: sample EM's error against N", claims="emrun.criteria.simplex:samples_claims"),
    "lloyd": _study("lloyd", "emrun.report.simplex:lloyd", {"max_iter": 300}, samples=True,
                    description="paper C: Lloyd's algorithm on N(0, I) ends at a simplex",
                    claims="emrun.criteria.simplex:lloyd_claims"),
}


def _callable(target: Any) -> Any:
    return resolve(target) if isinstance(target, str) else target


def _check_entry(check: Checker, value: Any, path: str, example: Any) -> Any:
    """One entry of a list option, of the same kind as the default's first entry."""
    if isinstance(example, list):  # a weight vector
        if not isinstance(value, list) or not value:
            check.fail(path, f"'{path}' must be a non-empty list, got {value!r}")
        items = [check.number(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if abs(sum(items) - 1) > 1e-9:
            check.fail(path, f"'{path}' must sum to 1, sums to {sum(items)!r}")
        return items
    return check.integer(value, path, 1) if isinstance(example, int) else check.number(value, path)


@dataclass(frozen=True)
class DynamicsSettings(GridSettings):
    """A dynamics config typed: its study, the study's options (stored with their defaults filled
    in) and the estimator of its expectations ({kind, size})."""

    study: str = ""
    stored_options: Mapping[str, Any] = field(default_factory=lambda: EMPTY, metadata={"key": "options"})
    estimator: Mapping[str, Any] = none_given()

    @property
    def options(self) -> dict[str, Any]:
        """The study's options, a plain dict as every kind's ``options`` (here stored with their defaults)."""
        return thaw(self.stored_options)


class Dynamics(HasGrid):
    """A registered study (papers B and C) run on each (cell, replicate) of a grid."""

    name = "dynamics"
    keys = {**SHARED_KEYS, "study": False, "options": False, "estimator": False, "companions": False}
    row_noun = "study rows"
    prepares_kernels = True  # every worker loads the Gaussian expectation kernels first (prepare; emrun.work.loads_kernel)

    def __init__(self):
        self.grid = CellGrid(check_model=self._check_model)

    @staticmethod
    def _check_model(raw: dict, check: Checker, out: dict) -> None:
        out["model"] = raw.get("model", "bernoulli")
        if out["model"] != "gaussian":
            check.fail("model", "experiment 'dynamics' needs model: gaussian (means-only Gaussian mixtures fitted to N(0, I))")

    def validate(self, raw: dict, check: Checker, out: dict) -> None:
        if isinstance(raw.get("runs"), dict):  # a study runs each algorithm alike: one count, not one per algorithm
            check.fail("runs", "experiment 'dynamics' takes one number of runs ('runs: 4'), not one per algorithm")
        self.grid.validate(raw, check, out)
        for name in out["grid"]["algorithm"]:
            check.choice(name, "grid.algorithm", tuple(dynamics.UPDATES))
        out["study"] = check.registered(raw.get("study"), "study", STUDIES)
        study = STUDIES.get(out["study"])
        options = check.mapping(raw.get("options", {}), "options", {key: False for key in study.options})
        out["options"] = {key: self._option(check, options.get(key, default), f"options.{key}", default)
                          for key, default in study.options.items()}
        self._check_estimator(raw, check, out, study)
        if "companions" in raw:  # the same study run with the other update, to pair with (not hashed)
            from emrun.report.companions import check_declared

            out["companions"] = check_declared(raw["companions"], check, raw.get("name"))

    def _option(self, check: Checker, value: Any, path: str, default: Any) -> Any:
        if isinstance(default, str):  # a named scheme; each study has one (rates: weights 'dirichlet')
            return check.choice(value, path, (default,))
        if isinstance(default, list):
            return [_check_entry(check, v, f"{path}[{i}]", default[0]) for i, v in enumerate(check.nonempty_list(value, path))]
        return check.typed(value, path, default)

    def _check_estimator(self, raw: dict, check: Checker, out: dict, study: Study) -> None:
        from emrun.models.gaussian_means import ESTIMATORS

        estimator = check.mapping(raw.get("estimator", {}), "estimator", {"kind": True, "size": True})
        out["estimator"] = {"kind": check.choice(estimator["kind"], "estimator.kind", ESTIMATORS),
                            "size": check.integer(estimator["size"], "estimator.size", 2)}
        if study.samples != (out["estimator"]["kind"] == "sample"):
            check.fail("estimator.kind", f"study {out['study']!r} needs estimator.kind "
                       + ("'sample'" if study.samples else "quadrature, whitened_mc or fresh_mc (population expectations)"))
        samples = out["options"].get("samples")
        if samples is not None and out["estimator"]["size"] != max(samples):
            check.fail("estimator.size", f"'estimator.size' must be the largest of options.samples ({max(samples)}): "
                       "smaller samples are its prefixes")
        if out["data"]["kind"] != "population":
            check.fail("data", "experiment 'dynamics' learns N(0, I): the estimator says how its expectations are computed")

    def settings(self, values: dict) -> DynamicsSettings:
        return DynamicsSettings.from_values(values)

    def names_used(self, values: dict) -> set[str]:
        return {values["experiment"], values["study"]}

    def counting(self, values: dict) -> Any:
        """How one batch's work is counted (emrun.work): the study's ``work``, or None."""
        return STUDIES.get(values["study"]).work

    def prepare(self, values: dict, say=None) -> None:
        """Compile, or load, the Gaussian expectation kernels every study's steps use (see CellGrid.prepare)."""
        from emrun.models import gaussian_kernels

        self.grid.prepare(values, say)
        gaussian_kernels.prepare(say)

    def run_batch(self, values: dict, config_hash: str, spec: BatchSpec, retry=None) -> BatchResult:
        """The rows of one (cell, replicate) of a dynamics study."""
        started = time.perf_counter()
        rows = _callable(STUDIES.get(values["study"]).run)(values, spec)
        common = {"config": values["name"], "config_hash": config_hash, "batch_id": spec.batch_id,
                  "study": values["study"], "m": spec.cell.m, "D": spec.cell.D, "algorithm": spec.cell.algorithm,
                  "step": spec.cell.step, "truth_index": spec.truth_index, "estimator": values["estimator"]["kind"],
                  "estimator_size": values["estimator"]["size"], "batch_seconds": time.perf_counter() - started,
                  "worker": worker_description()}
        return BatchResult([{**common, **row} for row in rows])

    def bytes_per_trial(self, values: dict, cell) -> int:
        return dynamics.bytes_per_trial(values, cell.m, cell.D)

    def estimated_seconds(self, values: dict) -> float:
        """A rough 60.0 s per batch: a study runs its own loop (seconds to minutes)."""
        return 60.0 * len(self.cells(values)) * self.n_truths(values)

    def postprocess(self, rows: pd.DataFrame) -> pd.DataFrame:
        return rows.sort_values(["batch_id", "series", "run_index", "iteration"], ignore_index=True)

    def declared_claims(self, values: dict) -> list:
        study = STUDIES.get(values["study"])
        return [] if study.claims is None else _callable(study.claims)(values)

    def write_report(self, ctx):
        from emrun.report import gradem

        study = STUDIES.get(ctx.config["study"])
        return gradem.write(ctx, _callable(study.section), study.pairs_updates)


DYNAMICS = Dynamics()
