"""The trial kinds: ``grid`` (every run of every (cell, truth): UAI 2019 Tables 1 and 2, Figure 2,
real data, and any new algorithm or family) and ``first_k_cluster`` (Tables 3 and 4: truths drawn
in blocks until enough of them have a GD run ending at a k-cluster point).

Rows are one per run (:mod:`emrun.experiments`). A grid report is laid out by the first
registered layout (highest priority) whose ``applies`` accepts the config; the generic k-cluster
layout accepts every config. Claims a config declares (``claims:``) are judged in any layout, and
the plug-in sections it selects (``report_sections:``, :mod:`emrun.report.sections`) follow the
layout's own content in either kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from emrun import experiments, selection, truths
from emrun.algorithms import check_pair
from emrun.batch import FAILED, STATUSES, BatchSpec
from emrun.config import Checker, Config
from emrun.kinds.base import SHARED_KEYS, CellGrid
from emrun.registry import ALGORITHMS, CLAIMS, FAMILIES, TRIAL_REPORTS, resolve

if TYPE_CHECKING:  # pandas is imported where rows are tabled: a worker running a batch never needs it
    import pandas as pd

# Columns every reader of trial rows relies on; rows without them come from an emrun too old to report on.
REQUIRED_COLUMNS = ("config_hash", "batch_id", "model", "m", "D", "algorithm", "truth_index", "run_index", "truth_seed",
                    "init_seed", "status", "iterations", "loss", "entropy", "data", "n_samples", "k", "k_cluster", "pi",
                    "mu", "batch_seconds")


def _bounds(table, column: str):
    """(min, max, any NaN) of a numeric or list-of-numbers column, nulls ignored."""
    import pyarrow.compute as pc

    values = table[column]
    if str(values.type).startswith("list"):
        values = pc.list_flatten(values)
    if len(values) == 0 or values.null_count == len(values):
        return None, None, False
    extremes = pc.min_max(values)
    nan = bool(pc.any(pc.is_nan(values)).as_py()) if str(values.type) in ("double", "float") else False
    return extremes["min"].as_py(), extremes["max"].as_py(), nan


def check_trial_batch(table, mean_range, threshold: float | None = None) -> str | None:
    """Why a batch file's trial rows are unusable (a column missing, a value out of range, a k or
    k_cluster that its own weights contradict), or None."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        return (f"lacks the columns {', '.join(missing)}: written by an older emrun (run 'emrun sweep CONFIG' to run "
                "it again, or --replace)")
    unknown = set(table["status"].to_pylist()) - set(STATUSES)
    if unknown:
        return f"has rows with unknown statuses {sorted(map(str, unknown))}"
    ranges = {"pi": (0.0, 1.0), "init_pi": (0.0, 1.0), "iterations": (0, None), "k": (-1, None), "run_index": (0, None)}
    if mean_range is not None:
        ranges.update({"mu": mean_range, "init_mu": mean_range})
    for column in ("pi", "init_pi", "mu", "init_mu", "iterations", "k", "run_index", "loss"):
        if column not in table.column_names:
            continue
        low, high, nan = _bounds(table, column)
        if nan:
            return f"has NaN in '{column}'"
        bound = ranges.get(column)
        if bound is not None and low is not None and (low < bound[0] or (bound[1] is not None and high > bound[1])):
            return f"has '{column}' values outside [{bound[0]}, {bound[1] if bound[1] is not None else 'inf'}] ({low}..{high})"
    return _check_k(table, threshold) if threshold is not None else None


def _check_k(table, threshold: float) -> str | None:
    """Rows re-written with valid checksums can still be caught: k is the number of final weights at
    or above the config's threshold, and k_cluster is k < m (what every rate is counted from)."""
    for row in table.select(["status", "pi", "k", "k_cluster", "m", "batch_id", "run_index"]).to_pylist():
        if row["status"] == FAILED or row["pi"] is None:
            continue
        k = sum(p >= threshold for p in row["pi"])
        if row["k"] != k or row["k_cluster"] != (k < row["m"]):
            return (f"has a row ({row['batch_id']}/{row['run_index']}) whose k = {row['k']}, k_cluster = "
                    f"{row['k_cluster']} contradict its weights (k = {k} at threshold {threshold:g})")
    return None


def add_reference_columns(rows: pd.DataFrame) -> pd.DataFrame:
    """Add ``ref_loss`` and ``likelihood_ratio`` = exp(ref_loss - loss) to trial rows.

    Population data: the reference is the entropy of the truth, the exact optimum. Sample data:
    the lowest finite loss any run of the config reached on the same data set (same m, D, truth
    and sample size); the empirical entropy stays beside it in ``entropy``. A diverged run
    (infinite loss) gets ratio 0.
    """
    rows = rows.copy()
    population = rows["data"] == "population"
    # Truth options the grid varies give other truths (and samples) under one truth index.
    options = {name for model in rows["model"].unique() for name in truths.options_of(model)}
    keys = ["m", "D", "truth_index", "data", "n_samples", *sorted(options & set(rows.columns))]
    finite_loss = rows["loss"].where(np.isfinite(rows["loss"]))
    best = finite_loss.groupby([rows[k].fillna(-1) for k in keys]).transform("min")
    rows["ref_loss"] = np.where(population, rows["entropy"].astype(float), best)
    with np.errstate(over="ignore"):
        rows["likelihood_ratio"] = np.exp(np.minimum(rows["ref_loss"] - rows["loss"], 0.0))
    return rows


@dataclass(frozen=True)
class ReportLayout:
    """How a grid report is laid out: ``write`` (ctx -> ReportResult, or its import string) for the
    configs ``applies`` accepts; among those that apply, the highest ``priority`` wins. ``claims``
    (config values -> list of :class:`emrun.criteria.Declared`, or its import string) lists what
    the layout judges beyond the config's declared claims; ``always_claims``: whether it judges the
    config's (or its artefact's) claims even when the config has no ``claims:`` key."""

    applies: Callable[[dict], bool]
    write: Any
    priority: int = 10
    description: str = ""
    claims: Any = None
    always_claims: bool = False


def _varies_gd_step_or_cap(values: dict) -> bool:
    grid = values["grid"]
    return "gd_max_iter" in grid or (len(grid["step"]) > 1 and grid["algorithm"] == ["gd"])


REPORT_LAYOUTS = {
    "digits": ReportLayout(lambda v: v["data"]["kind"] == "dataset", "emrun.report.digits:write",
                           description="Bernoulli mixtures on a labelled data set",
                           claims="emrun.criteria.lecture:digits_claims"),
    "escape": ReportLayout(lambda v: v.get("compare_to") == "uai2019_figure2", "emrun.report.figure2:write",
                           description="UAI 2019 Figure 2: escape from a one-cluster region",
                           claims="emrun.criteria.uai2019:figure2_claims", always_claims=True),
    "em_update": ReportLayout(lambda v: "em_update" in v, "emrun.report.variants:write_em_update",
                              description="another EM update rule, paired with the standard one",
                              claims="emrun.criteria.uai2019:em_update_claims"),
    "sensitivity": ReportLayout(_varies_gd_step_or_cap, "emrun.report.variants:write_sensitivity",
                                description="GD's k-cluster rate against step size and iteration cap",
                                claims="emrun.criteria.uai2019:sensitivity_claims"),
    "kcluster": ReportLayout(lambda v: True, "emrun.report.kcluster:write", priority=0,
                             description="k-cluster rates of every algorithm, comparisons, claims", always_claims=True),
}


def layout_of(values: dict) -> ReportLayout:
    """The registered layout that reports a grid config: the highest priority among those that apply."""
    layouts = [(entry.value.priority, name) for name, entry in TRIAL_REPORTS.items() if entry.value.applies(values)]
    _, chosen = max(layouts, key=lambda pair: pair[0])
    return TRIAL_REPORTS.get(chosen)


class TrialGrid(CellGrid):
    """Every run of every (cell, truth) of the grid, one row per run."""

    name = "grid"
    keys = {**SHARED_KEYS, "truth": False, "claims": False, "baseline": False, "report_sections": False,
            "companions": False}
    row_noun = "trials"
    replayable = True

    def truth_options(self, out: dict) -> dict:
        return truths.options_of(out["model"])

    def validate(self, raw: dict, check: Checker, out: dict) -> None:
        super().validate(raw, check, out)
        truths.check_constant_options(raw, check, out)
        truths.check_drawable(check, out, self.n_truths(out))
        family = FAMILIES.get(out["model"])
        kind = out["data"]["kind"]
        if kind not in family.data_kinds:
            wanted = " or ".join({"samples": "finite samples: data: {samples: N}", "population": "data: population",
                                  "dataset": "a data set", "image": "images (experiment: segmentation)"}
                                 .get(k, k) for k in family.data_kinds)
            check.fail("data", f"model '{family.name}' needs {wanted}")
        largest = max(out["grid"]["D"])
        if largest > family.max_features(kind):
            check.fail("grid.D", _too_many_features(family.name, kind, largest, family.max_features(kind)))
        for name in out["grid"]["algorithm"]:
            try:
                check_pair(family, ALGORITHMS.get(name))
            except ValueError as error:
                check.fail("grid.algorithm", str(error))
        self.check_report_keys(raw, check, out)

    def check_report_keys(self, raw: dict, check: Checker, out: dict) -> None:
        """``baseline`` (the algorithm others are compared with), ``claims`` (judged in the report),
        ``report_sections`` (plug-in sections drawn in it) and ``companions`` (other folders its
        claims may read): all read by the report only, none hashed."""
        from emrun.report import sections
        from emrun.report.companions import check_declared

        if "report_sections" in raw:
            out["report_sections"] = sections.check_names(raw["report_sections"], check)
        if "companions" in raw:
            out["companions"] = check_declared(raw["companions"], check, raw.get("name"))
        if "baseline" in raw:
            out["baseline"] = check.choice(raw["baseline"], "baseline", tuple(out["grid"]["algorithm"]))
        if "claims" in raw:
            out["claims"] = [self._claim(check, entry, f"claims[{i}]")
                             for i, entry in enumerate(check.nonempty_list(raw["claims"], "claims"))]

    def _claim(self, check: Checker, entry: Any, path: str) -> dict:
        name = entry if isinstance(entry, str) else entry.get("claim") if isinstance(entry, dict) else None
        check.registered(name, f"{path}.claim" if isinstance(entry, dict) else path, CLAIMS)
        claim = CLAIMS.get(name)
        if self.name not in claim.kinds:
            check.fail(path, f"claim '{name}' judges rows of experiment {' or '.join(claim.kinds)}, not {self.name}")
        given = {} if isinstance(entry, str) else check.mapping(entry, path, {"claim": True, **{k: False for k in claim.params}})
        params = {}
        for key, default in claim.params.items():
            if key not in given and default is None:
                check.fail(path, f"claim '{name}' needs '{key}'")
            params[key] = check.typed(given[key], f"{path}.{key}", default) if key in given else default
        return {"claim": name, **params}

    def traced(self, values: dict) -> dict:
        """The values with every trial's pi, mu and loss recorded at every iteration (replay)."""
        return {**values, "record": {"quantities": ["pi", "mu", "loss"], "every": 1}}

    def run_batch(self, values: dict, config_hash: str, spec: BatchSpec, retry: list[int] | None):
        return experiments.run_batch(values, config_hash, spec, retry)

    def bytes_per_trial(self, values: dict, cell) -> int:
        return experiments.bytes_per_trial(values, cell, experiments.data_size(values, cell.D))

    def counting(self, values: dict) -> str:
        """How one batch's work is counted (emrun.work)."""
        return "emrun.work.trials:trial_batch"

    def seconds_per_trial_iteration(self, values: dict, cell) -> float:
        return experiments.seconds_per_trial_iteration(values, cell)

    def batch_check(self, values: dict):
        mean_range = FAMILIES.get(values["model"]).mean_range if values["model"] in FAMILIES else None
        return lambda table: check_trial_batch(table, mean_range, self.settings(values).k_cluster_threshold)

    def postprocess(self, rows: pd.DataFrame) -> pd.DataFrame:
        rows = rows.assign(loss=rows["loss"].astype(float))  # null (failed) as NaN, never an object column
        return add_reference_columns(rows.sort_values(["batch_id", "run_index"], ignore_index=True))

    def write_report(self, ctx):
        from emrun.report import sections

        write = layout_of(ctx.config).write
        return sections.append(ctx, (resolve(write) if isinstance(write, str) else write)(ctx))

    def declared_claims(self, values: dict) -> list:
        """What the report will judge, known from the config alone: the layout's own claims, and the
        config's declared (or its artefact's) registered claims."""
        from emrun.report.claims import declared

        layout = layout_of(values)
        own = [] if layout.claims is None else (resolve(layout.claims) if isinstance(layout.claims, str)
                                                 else layout.claims)(values)
        return own + (declared(values) if layout.always_claims or "claims" in values else [])

    def status_lines(self, rows) -> list[str]:
        counts = rows["status"].value_counts().to_dict() if rows is not None else {}
        return [f"  {self.row_noun}: {sum(counts.values())} ("
                + ", ".join(f"{name} {counts.get(name, 0)}" for name in STATUSES) + ")"]

    def failed_rows(self, rows: pd.DataFrame) -> pd.Series:
        return rows["status"] == FAILED


def _too_many_features(family: str, kind: str, largest: int, most: int) -> str:
    if kind == "population":
        return (f"'grid.D' = {largest}: the population case enumerates all 2^D patterns, so D is at most {most} "
                f"({2**most:,} patterns); for larger D sample the data: data: {{samples: N}}")
    return f"'grid.D' = {largest}: model '{family}' with {kind} data handles D up to {most}"


class FirstKCluster(TrialGrid):
    """Tables 3 and 4: for each (m, D), truths in blocks until ``until_k_cluster`` of them have a GD
    run ending at a k-cluster point. Every init of a truth is run (so batches are fixed by the
    config); the plan grows as rows come in, and the sweep re-plans until it stops growing."""

    name = "first_k_cluster"
    keys = {**SHARED_KEYS, "truth": False, "claims": False, "report_sections": False, "companions": False}
    adaptive = True

    def check_truths(self, raw: dict, check: Checker, out: dict, family) -> None:
        rule = check.mapping(raw.get("truths", 1), "truths", {"until_k_cluster": True, "block": False, "max": False})
        out["truths"] = {
            "until_k_cluster": check.integer(rule["until_k_cluster"], "truths.until_k_cluster", 1),
            "block": check.integer(rule.get("block", 10), "truths.block", 1),
            "max": check.integer(rule.get("max", 200), "truths.max", 1),
        }
        grid = out["grid"]
        if "gd" not in grid["algorithm"] or len(grid["step"]) != 1 or len(grid["init"]) != 1 \
                or len(grid.get("gd_max_iter", [0])) != 1 or truths.truth_axes(out):
            check.fail("grid", "experiment first_k_cluster needs GD in grid.algorithm, one grid.step, one grid.init, "
                               "at most one grid.gd_max_iter and no truth option as a grid axis (set it in 'truth')")

    def truths_text(self, config: Config) -> str:
        return f"truths in blocks of {config.values['truths']['block']} (at most {config.n_truths})"

    def first_round(self, config: Config) -> int:
        rule = config.values["truths"]
        return len(config.cells()) * min(rule["block"], rule["max"])

    def plan(self, config: Config, stored: pd.DataFrame | None = None) -> list[BatchSpec]:
        rule = config.values["truths"]
        firsts = selection.first_k_cluster_run(stored) if stored is not None and len(stored) else None
        batches = []
        for cell in config.cells():
            if firsts is None:
                needed = min(rule["block"], rule["max"])
            else:
                mine = firsts[(firsts["m"] == cell.m) & (firsts["D"] == cell.D)]
                needed = selection.truths_needed(mine, rule["until_k_cluster"], rule["block"], rule["max"])
            batches += [BatchSpec(f"{cell.label}-truth{t}", cell, t) for t in range(needed)]
        return batches

    def status_lines(self, rows) -> list[str]:
        return [*super().status_lines(rows), "  (a first_k_cluster plan grows as rows come in)"]

    def write_report(self, ctx):
        from emrun.report import sections, table34

        return sections.append(ctx, table34.write(ctx))

    def declared_claims(self, values: dict) -> list:
        from emrun.report.claims import declared

        return declared(values)


GRID = TrialGrid()
FIRST_K_CLUSTER = FirstKCluster()
