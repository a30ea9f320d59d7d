"""The ``theory`` kind: the UAI 2019 paper's closed forms and theorems checked on numbers.

A theory config names one registered check (``check: NAME``) and its options. One registry entry
per check holds its runner (rows of one (cell, random configuration), :mod:`emrun.theory`), its
report section (:mod:`emrun.report.theory`) and its options with typed defaults. A config's
options are stored as it gives them; a check sees them with the defaults filled in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emrun import seeds
from emrun.algorithms import check_pair
from emrun.batch import BatchResult, BatchSpec
from emrun.config import Checker
from emrun.kinds.base import SHARED_KEYS, CellGrid, HasGrid
from emrun.registry import ALGORITHMS, CHECKS, FAMILIES, resolve
from emrun.settings import GridSettings, none_given, thaw

if TYPE_CHECKING:  # pandas is imported where rows are tabled: a worker running a batch never needs it
    import pandas as pd


@dataclass(frozen=True)
class Check:
    """A theory check: ``run`` (values, spec, rng, options) -> rows and ``section`` (rows, folder)
    -> (Markdown lines, verdicts), each an object or its import string; ``options`` maps each
    option to its default (the default's type is the option's type)."""

    run: Any
    section: Any
    options: dict
    description: str = ""
    family: str | None = None  # the model family the check fits: the config must name it, with its algorithms
    validate: Any = None  # (config values, options, checker) -> None: checks across the options and the grid
    claims: Any = None  # (config values, options) -> the emrun.criteria.Declared its section judges
    work: Any = None  # (config values, cell, convergence) -> emrun.work.Work: one batch's work (None: no expected time)


BUILT_IN = {
    "closed_forms": Check("emrun.theory:closed_forms", "emrun.report.theory:closed_forms", {},
                          "eqs. 4.4, 4.11, 4.12 and 4.14 against one step of the engine",
                          claims="emrun.criteria.uai2019:closed_forms_claims",
                          work="emrun.work.checks:closed_forms"),
    "one_cluster_gap": Check("emrun.theory:gap", "emrun.report.theory:one_cluster_gap",
                             {"deltas": [0.1, 0.01, 0.001], "perturbations": 200},
                             "Theorems 5.1 and 5.2: one-cluster local minima and their gap",
                             claims="emrun.criteria.uai2019:one_cluster_gap_claims",
                             work="emrun.work.checks:one_cluster_gap"),
    "gmm_rotation": Check("emrun.theory:rotation", "emrun.report.theory:gmm_rotation",
                          {"steps": 30, "samples": 20_000}, "eq. 4.7: EM rotates b towards mu*",
                          claims="emrun.criteria.uai2019:rotation_claims",
                          work="emrun.work.checks:gmm_rotation"),
    "gmm_rotation_population": Check("emrun.theory:rotation_population", "emrun.report.population:rotation",
                                     {"steps": 30, "points": 64, "coarse_points": 48},
                                     "eq. 4.7 on the population: EM rotates b towards mu*",
                                     claims="emrun.criteria.uai2019:rotation_population_claims",
                                     work="emrun.work.checks:gmm_rotation_population"),
    "escape_population": Check("emrun.theory:escape_population", "emrun.report.population:escape",
                               {"epsilon": 1e-4, "step": 0.01, "em_steps": 300, "gd_steps": 100, "points": 64,
                                "coarse_points": 48},
                               "Result 3.1, eqs. 2.9, 4.4 and 4.8 on the population: escape from a one-cluster region",
                               claims="emrun.criteria.uai2019:escape_population_claims",
                               work="emrun.work.checks:escape_population"),
    "gd_trap": Check("emrun.theory:gd_trap", "emrun.report.theory:gd_trap",
                     {"grid": 40, "starts": 400, "epsilon": 1e-3, "gd_iterations": 3000, "em_iterations": 300},
                     "Proposition 4.1 / Theorem 4.7: GD trapped where Z_1 < 1, EM escapes",
                     claims="emrun.criteria.uai2019:gd_trap_claims",
                     work="emrun.work.checks:gd_trap"),
    "bmm_escape": Check("emrun.theory:bmm_escape", "emrun.report.theory:bmm_escape",
                        {"starts": 1000, "epsilon": 1e-6, "em_iterations": 500, "trajectories": 8},
                        "Theorem 4.5: EM moves lambda into a positive region",
                        claims="emrun.criteria.uai2019:bmm_escape_claims",
                        work="emrun.work.checks:bmm_escape"),
    "kmeans_vs_em": Check("emrun.theory:kmeans_vs_em", "emrun.report.theory:kmeans_vs_em", {},
                          "the lecture: k-means and EM centres differ on overlapping unequal clusters",
                          claims="emrun.criteria.lecture:kmeans_vs_em_claims",
                          work="emrun.work.checks:kmeans_vs_em"),
}


@dataclass(frozen=True)
class TheorySettings(GridSettings):
    """A theory config typed: its check and the options the config gives (stored as given, so that
    a default is not part of the hash); ``options`` adds the check's defaults for the rest."""

    check: str = ""
    check_options: Mapping[str, Any] = none_given()

    @property
    def options(self) -> dict[str, Any]:
        return {**CHECKS.get(self.check).options, **thaw(self.check_options)}


def _callable(target: Any) -> Any:
    return resolve(target) if isinstance(target, str) else target


class Theory(HasGrid):
    """A registered check run on each (cell, random configuration) of a grid."""

    name = "theory"
    keys = {**SHARED_KEYS, "check": False, "check_options": False}
    row_noun = "check rows"

    def __init__(self):
        self.grid = CellGrid(default_algorithms=("em",))  # a check runs its own algorithms; the grid's only name batches

    def validate(self, raw: dict, check: Checker, out: dict) -> None:
        self.grid.validate(raw, check, out)
        if raw.get("check") == "segmentation":  # retired 2026-12-03: a folder or config from before says so
            check.fail("check", "'check: segmentation' is now its own kind: 'experiment: segmentation' with 'K' (was "
                                "grid.m), 'seeds' (was truths) and 'options' (was check_options); the rows are the same")
        out["check"] = check.registered(raw.get("check"), "check", CHECKS)
        defaults = CHECKS.get(out["check"]).options
        given = check.mapping(raw.get("check_options", {}), "check_options", {key: False for key in defaults})
        for key, value in given.items():
            check.typed(value, f"check_options.{key}", defaults[key])
        out["check_options"] = given  # as given (hash-stable); the check fills in its defaults
        entry = CHECKS.get(out["check"])
        if entry.family is not None:
            if out["model"] != entry.family:
                check.fail("model", f"check '{out['check']}' fits model '{entry.family}'; got {out['model']!r}")
            for name in out["grid"]["algorithm"]:
                try:
                    check_pair(FAMILIES.get(entry.family), ALGORITHMS.get(name))
                except ValueError as error:
                    check.fail("grid.algorithm", str(error))
        if entry.validate is not None:
            _callable(entry.validate)(out, {**defaults, **given}, check)

    def settings(self, values: dict) -> TheorySettings:
        return TheorySettings.from_values(values)

    def names_used(self, values: dict) -> set[str]:
        return {*self.grid.names_used(values), values["check"]}

    def counting(self, values: dict) -> Any:
        """How one batch's work is counted (emrun.work): the check's ``work``, or None."""
        return CHECKS.get(values["check"]).work

    def run_batch(self, values: dict, config_hash: str, spec: BatchSpec, retry=None) -> BatchResult:
        rng = seeds.generator(values["seed"], seeds.truth_key(spec.cell.m, spec.cell.D, spec.truth_index))
        rows = _callable(CHECKS.get(values["check"]).run)(values, spec, rng, self.settings(values).options)
        for row in rows:
            row["config_hash"] = config_hash
        return BatchResult(rows)

    def estimated_seconds(self, values: dict) -> float:
        """A rough 1.0 s per batch: a check runs in seconds."""
        return 1.0 * len(self.cells(values)) * self.n_truths(values)

    def postprocess(self, rows: pd.DataFrame) -> pd.DataFrame:
        return rows.sort_values(["batch_id", "quantity", "index"], ignore_index=True)

    def declared_claims(self, values: dict) -> list:
        entry = CHECKS.get(values["check"])
        return [] if entry.claims is None else _callable(entry.claims)(values, self.settings(values).options)

    def write_report(self, ctx):
        from emrun.report import theory

        return theory.write(ctx, _callable(CHECKS.get(ctx.config["check"]).section))


THEORY = Theory()
