"""The config keys every grid kind shares, checked into the canonical config: the grid (m, D,
algorithms and their hyperparameters, inits, truth axes), the data, the runs and stopping rules,
the family's variants and the traces to record. Each function reads ``raw``, reports errors
through ``check`` (:class:`emrun.config.Checker`, file:line messages) and writes ``out``.
"""

from __future__ import annotations

from emrun.config import Checker
from emrun.registry import ALGORITHMS, INIT_SCHEMES
from emrun.truths import check_grid_axis

MAX_D = 1000  # the largest dimension any built-in family handles
SAMPLE_BYTES = 4 << 30  # the most memory one batch's sample may take (8 bytes per value)
LEGACY_ALGORITHMS = ("em", "gd")  # always in the canonical runs and stopping (configs before plug-ins kept their hash)


def check_variants(raw: dict, check: Checker, out: dict, family) -> None:
    # Stored only when not the family's default, so that configs written before the key existed keep their hash.
    retired = getattr(family, "retired_variants", {})
    for key, offered in (("gd_boundary", family.boundary_rules), ("em_update", family.em_updates)):
        value = raw.get(key, offered[0])
        if value in retired:
            check.fail(key, f"'{key}: {value}' is retired: {retired[value]}")
        if value not in offered:
            check.fail(key, f"'{key}' must be one of {', '.join(offered)} for model '{family.name}'; got {value!r}")
        if value != offered[0]:
            out[key] = value


def grid_keys(algorithms: list[str]) -> dict[str, bool]:
    keys = {"m": True, "D": True, "algorithm": False, "step": False, "init": False}
    for name in algorithms:
        algorithm = ALGORITHMS.get(name)
        keys.update({h: False for h in algorithm.hyperparameters if h != "step"})
        keys[f"{name}_max_iter"] = False  # the algorithm's iteration cap as a grid axis
    return keys


def check_grid(raw: dict, check: Checker, out: dict, default_algorithms: tuple, truth: dict) -> None:
    """grid: m, D, algorithms, steps, inits, iteration caps, hyperparameter and truth axes."""
    grid = raw["grid"]
    if not isinstance(grid, dict):
        check.fail("grid", f"'grid' must be a mapping, got {grid!r}")
    algorithms = [check.registered(v, "grid.algorithm", ALGORITHMS)
                  for v in check.nonempty_list(grid.get("algorithm", list(default_algorithms)), "grid.algorithm")]
    for key in truth:  # one name, two meanings: which axis would the grid vary?
        owners = [a for a in algorithms if key in ALGORITHMS.get(a).hyperparameters]
        if key in grid and owners:
            check.fail(f"grid.{key}", f"'grid.{key}' is both a truth option of model '{out['model']}' and a "
                                      f"hyperparameter of {', '.join(owners)}")
    check.mapping(grid, "grid", {**grid_keys(algorithms), **{key: False for key in truth}})
    out["grid"] = {
        # m >= 2: with one component there is no k-cluster point to end at.
        "m": [check.integer(v, "grid.m", 2, 64) for v in check.nonempty_list(grid["m"], "grid.m")],
        "D": [check.integer(v, "grid.D", 1, MAX_D) for v in check.nonempty_list(grid["D"], "grid.D")],
        "algorithm": algorithms,
        "step": [check.number(v, "grid.step") for v in check.nonempty_list(grid.get("step", [0.02]), "grid.step")],
        "init": [check.registered(v, "grid.init", INIT_SCHEMES)
                 for v in check.nonempty_list(grid.get("init", ["uniform"]), "grid.init")],
    }
    for key in grid:
        if key in truth:
            out["grid"][key] = check_grid_axis(check, out, key, grid[key])
        elif key.endswith("_max_iter"):
            out["grid"][key] = [check.integer(v, f"grid.{key}", 1) for v in check.nonempty_list(grid[key], f"grid.{key}")]
        elif key not in out["grid"]:  # an algorithm's hyperparameter as a grid axis
            out["grid"][key] = [check.number(v, f"grid.{key}") for v in check.nonempty_list(grid[key], f"grid.{key}")]


def check_data(raw: dict, check: Checker, out: dict) -> None:
    data = raw.get("data", "population")
    if data == "population":
        out["data"] = {"kind": "population"}
    elif isinstance(data, dict) and "dataset" in data:  # a real data set shipped with a package
        from emrun.datasets import DATASETS

        check.mapping(data, "data", {"dataset": True, "threshold": False, "classes": False})
        classes = data.get("classes")
        if classes is not None:
            classes = [check.integer(c, "data.classes", 0, 9) for c in check.nonempty_list(classes, "data.classes")]
        out["data"] = {"kind": "dataset", "name": check.choice(data["dataset"], "data.dataset", DATASETS),
                       "threshold": check.integer(data.get("threshold", 8), "data.threshold", 1, 16),
                       "classes": classes}
        if out["grid"]["D"] != [64] or out["model"] != "bernoulli":
            check.fail("grid.D", "the digits data set is binary 8x8 images: model bernoulli and grid.D: [64]")
    elif isinstance(data, dict):
        check.mapping(data, "data", {"samples": True})
        out["data"] = {"kind": "samples", "n": check.integer(data["samples"], "data.samples", 1)}
        need = 8 * out["data"]["n"] * max(out["grid"]["D"])  # a batch draws its sample whole, as float64
        if need > SAMPLE_BYTES:
            check.fail("data.samples", f"'data.samples' = {out['data']['n']:,}: drawing it at D = {max(out['grid']['D'])} "
                                       f"needs about {need / 2**30:,.0f} GiB in each worker (at most "
                                       f"{SAMPLE_BYTES >> 30} GiB)")
    else:
        check.fail("data", f"'data' must be 'population', {{samples: N}} or {{dataset: digits}}, got {data!r}")


def run_keys(out: dict) -> list[str]:
    return [*LEGACY_ALGORITHMS, *(a for a in out["grid"]["algorithm"] if a not in LEGACY_ALGORITHMS)]


def check_runs_and_stopping(raw: dict, check: Checker, out: dict) -> None:
    names = run_keys(out)
    runs = raw.get("runs", 60)
    if isinstance(runs, dict):
        check.mapping(runs, "runs", {a: False for a in names})
        out["runs"] = {a: check.integer(runs.get(a, 60), f"runs.{a}", 1) for a in names}
    else:
        count = check.integer(runs, "runs", 1)
        out["runs"] = {a: count for a in names}
    stopping = check.mapping(raw.get("stopping", {}), "stopping", {a: False for a in names})
    out["stopping"] = {}
    for name in names:
        rule = check.mapping(stopping.get(name, {}), f"stopping.{name}", {"max_iter": False, "tol": False})
        default = ALGORITHMS.get(name).stopping
        out["stopping"][name] = {
            "max_iter": check.integer(rule.get("max_iter", default["max_iter"]), f"stopping.{name}.max_iter", 1),
            "tol": check.number(rule.get("tol", default["tol"]), f"stopping.{name}.tol"),
        }


def check_record(raw: dict, check: Checker, out: dict) -> None:
    if "record" in raw:  # per-iteration traces, stored beside the rows
        from emrun.algorithms import RECORDABLE

        record = check.mapping(raw["record"], "record", {"quantities": True, "every": False})
        out["record"] = {
            "quantities": [check.choice(q, "record.quantities", RECORDABLE)
                           for q in check.nonempty_list(record["quantities"], "record.quantities")],
            "every": check.integer(record.get("every", 1), "record.every", 1),
        }
