"""Load, validate and expand an experiment config (YAML).

Every error names the file, the line, the key and what was expected; unknown keys are errors at
every level. ``--set key=value`` overrides are applied before validation and are named
``--set`` in errors. The validated config is a plain, canonical dict (all defaults filled in);
its hash identifies the results it produces.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import yaml

from emrun.algorithms import RECORDABLE
from emrun.models.bernoulli import BOUNDARY_RULES as GD_BOUNDARY_RULES
from emrun.models.bernoulli import EM_UPDATES

MODELS = ("bernoulli", "gaussian")
ALGORITHMS = ("em", "gd")
INIT_SCHEMES = ("uniform", "near_one_cluster", "given", "kmeans")
ARTEFACTS = ("uai2019_table1", "uai2019_table2", "uai2019_table3", "uai2019_figure2")
EXPERIMENTS = ("grid", "first_k_cluster", "theory", "dynamics")
PAPER_STOPPING = {"em": {"max_iter": 20000, "tol": 1.0e-5}, "gd": {"max_iter": 10000, "tol": 1.0e-7}}


class ConfigError(ValueError):
    """A config that cannot be run; the message says where and why."""


@dataclass(frozen=True)
class Cell:
    """One point of the grid."""

    m: int
    D: int
    algorithm: str
    step: float | None  # GD only
    init: str
    max_iter: int | None = None  # GD's iteration cap when the grid varies it; else the stopping rule's

    @property
    def label(self) -> str:
        step = f"-step{self.step:g}" if self.step is not None else ""
        cap = f"-cap{self.max_iter}" if self.max_iter is not None else ""
        return f"m{self.m}-D{self.D}-{self.algorithm}{step}{cap}-{self.init}"


@dataclass(frozen=True)
class Config:
    """A validated config: ``values`` is the canonical dict that is hashed and stored."""

    values: dict[str, Any]
    source: str

    @property
    def name(self) -> str:
        return self.values["name"]

    @property
    def hash(self) -> str:
        hashed = {k: v for k, v in self.values.items() if k != "description"}
        text = json.dumps(hashed, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def cells(self) -> list[Cell]:
        grid = self.values["grid"]
        cells = []
        for m, D, algorithm, init in product(grid["m"], grid["D"], grid["algorithm"], grid["init"]):
            steps = grid["step"] if algorithm == "gd" else [None]
            caps = grid.get("gd_max_iter", [None]) if algorithm == "gd" else [None]
            cells.extend(Cell(m, D, algorithm, step, init, cap) for step in steps for cap in caps)
        return cells

    @property
    def n_truths(self) -> int:
        """Truths per cell; for a first_k_cluster experiment, the most it may draw."""
        truths = self.values["truths"]
        if isinstance(truths, dict):
            return truths["max"]
        return truths if isinstance(truths, int) else len(truths)

    def trial_count(self) -> int:
        return sum(self.values["runs"][cell.algorithm] for cell in self.cells()) * self.n_truths


# --- loading with line marks -------------------------------------------------------------------

def _plain(node: yaml.Node, path: str, marks: dict[str, int]) -> Any:
    """Turn a composed YAML node into plain Python, recording the line of every key path."""
    marks[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = key_node.value
            child = f"{path}.{key}" if path else key
            marks[child] = key_node.start_mark.line + 1
            out[key] = _plain(value_node, child, marks)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, f"{path}[{i}]", marks) for i, item in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


class _Checker:
    """Validation helpers that build errors naming file, line and key."""

    def __init__(self, source: str, marks: dict[str, int]):
        self.source, self.marks = source, marks

    def fail(self, path: str, message: str) -> None:
        probe = path  # a missing key is reported at its nearest parent that has a line
        while probe and probe not in self.marks:
            probe = probe.rsplit(".", 1)[0] if "." in probe else ""
        line = self.marks.get(probe, 1)
        where = f"{self.source}:{line}" if isinstance(line, int) else f"{self.source} ({line})"
        raise ConfigError(f"{where}: {message}")

    def mapping(self, value: Any, path: str, allowed: dict[str, bool]) -> dict:
        """Check a mapping's keys: ``allowed`` maps each key to whether it is required."""
        if not isinstance(value, dict):
            self.fail(path, f"'{path or 'config'}' must be a mapping, got {value!r}")
        for key in value:
            if key not in allowed:
                full = f"{path}.{key}" if path else key
                self.fail(full, f"unknown key '{full}' (allowed: {', '.join(allowed)})")
        for key, required in allowed.items():
            if required and key not in value:
                self.fail(path, f"missing key '{f'{path}.{key}' if path else key}'")
        return value

    def integer(self, value: Any, path: str, low: int, high: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f">= {low}"
            self.fail(path, f"'{path}' must be an integer {bound}, got {value!r}")
        return value

    def number(self, value: Any, path: str, positive: bool = True, below_one: bool = False) -> float:
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not is_number or (positive and not value > 0) or (below_one and not value < 1):
            rule = "a number in (0, 1)" if below_one else "a positive number"
            self.fail(path, f"'{path}' must be {rule}, got {value!r}")
        return float(value)

    def choice(self, value: Any, path: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            self.fail(path, f"'{path}' must be one of {', '.join(allowed)}; got {value!r}")
        return value

    def nonempty_list(self, value: Any, path: str) -> list:
        if not isinstance(value, list):
            value = [value]
        if not value:
            self.fail(path, f"'{path}' must not be empty")
        if len(set(map(repr, value))) != len(value):
            self.fail(path, f"'{path}' lists a value twice: {value!r}")
        return value


MAX_D = {"population": 16, "samples": 64, "gaussian": 1000}  # Bernoulli patterns are 64-bit masks


def _check_feature_count(check: _Checker, out: dict) -> None:
    largest = max(out["grid"]["D"])
    if out["model"] != "bernoulli":
        return
    if out["data"]["kind"] == "population" and largest > MAX_D["population"]:
        check.fail("grid.D", f"'grid.D' = {largest}: the population case enumerates all 2^D patterns, so D is at most "
                             f"{MAX_D['population']} (65,536 patterns); for larger D sample the data: "
                             "data: {samples: N}")
    if largest > MAX_D["samples"]:
        check.fail("grid.D", f"'grid.D' = {largest}: Bernoulli patterns are stored as 64-bit masks, so D is at most "
                             f"{MAX_D['samples']}")


def _check_mixture(check: _Checker, value: Any, path: str) -> dict:
    """A given mixture {pi: [m], mu: [m][D]} with pi on the simplex and mu in [0, 1]."""
    check.mapping(value, path, {"pi": True, "mu": True})
    pi, mu = value["pi"], value["mu"]
    if not isinstance(pi, list) or not pi or not all(isinstance(p, (int, float)) and p >= 0 for p in pi):
        check.fail(f"{path}.pi", f"'{path}.pi' must be a list of non-negative numbers, got {pi!r}")
    if abs(sum(pi) - 1.0) > 1e-9:
        check.fail(f"{path}.pi", f"'{path}.pi' must sum to 1, sums to {sum(pi)!r}")
    if not isinstance(mu, list) or len(mu) != len(pi) or not all(isinstance(row, list) for row in mu):
        check.fail(f"{path}.mu", f"'{path}.mu' must be a list of {len(pi)} rows (one per weight)")
    widths = {len(row) for row in mu}
    if len(widths) != 1 or not all(isinstance(x, (int, float)) and 0 <= x <= 1 for row in mu for x in row):
        check.fail(f"{path}.mu", f"'{path}.mu' rows must have equal length and entries in [0, 1]")
    return {"pi": [float(p) for p in pi], "mu": [[float(x) for x in row] for row in mu]}


def validate(raw: Any, source: str, marks: dict[str, int]) -> dict[str, Any]:
    """Check a plain config dict and return its canonical form (defaults filled in)."""
    check = _Checker(source, marks)
    check.mapping(raw, "", {
        "name": True, "description": False, "model": False, "experiment": False, "compare_to": False, "seed": True,
        "gd_boundary": False, "em_update": False,
        "grid": True, "data": False, "truths": False, "runs": False, "stopping": False,
        "k_cluster_threshold": False, "init_options": False, "record": False, "check": False, "check_options": False,
        "study": False, "options": False, "estimator": False,
    })
    name = raw["name"]
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "_-" for c in name):
        check.fail("name", f"'name' must be letters, digits, '_' or '-', got {name!r}")
    out: dict[str, Any] = {"name": name, "description": str(raw.get("description", ""))}
    out["model"] = check.choice(raw.get("model", "bernoulli"), "model", MODELS)
    out["experiment"] = check.choice(raw.get("experiment", "grid"), "experiment", EXPERIMENTS)
    # Stored only when not the default, so that configs written before the key existed keep their hash.
    gd_boundary = check.choice(raw.get("gd_boundary", "exact"), "gd_boundary", GD_BOUNDARY_RULES)
    if gd_boundary != "exact":
        out["gd_boundary"] = gd_boundary
    em_update = check.choice(raw.get("em_update", "simultaneous"), "em_update", EM_UPDATES)
    if em_update != "simultaneous":
        out["em_update"] = em_update
    compare_to = raw.get("compare_to")
    out["compare_to"] = None if compare_to is None else check.choice(compare_to, "compare_to", ARTEFACTS)
    out["seed"] = check.integer(raw["seed"], "seed", 0)

    grid = check.mapping(raw["grid"], "grid", {"m": True, "D": True, "algorithm": False, "step": False, "init": False,
                                               "gd_max_iter": False})
    out["grid"] = {
        # m >= 2: with one component there is no k-cluster point to end at.
        "m": [check.integer(v, "grid.m", 2, 64) for v in check.nonempty_list(grid["m"], "grid.m")],
        "D": [check.integer(v, "grid.D", 1, MAX_D["gaussian"]) for v in check.nonempty_list(grid["D"], "grid.D")],
        "algorithm": [check.choice(v, "grid.algorithm", ALGORITHMS)
                      for v in check.nonempty_list(grid.get("algorithm", ["em", "gd"]), "grid.algorithm")],
        "step": [check.number(v, "grid.step") for v in check.nonempty_list(grid.get("step", [0.02]), "grid.step")],
        "init": [check.choice(v, "grid.init", INIT_SCHEMES)
                 for v in check.nonempty_list(grid.get("init", ["uniform"]), "grid.init")],
    }
    if "gd_max_iter" in grid:  # GD's iteration cap as a grid dimension (overrides stopping.gd.max_iter)
        out["grid"]["gd_max_iter"] = [check.integer(v, "grid.gd_max_iter", 1)
                                      for v in check.nonempty_list(grid["gd_max_iter"], "grid.gd_max_iter")]

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
                       "threshold": check.integer(data.get("threshold", 8), "data.threshold", 1, 16), "classes": classes}
        if out["grid"]["D"] != [64] or out["model"] != "bernoulli":
            check.fail("grid.D", "the digits data set is binary 8x8 images: model bernoulli and grid.D: [64]")
    elif isinstance(data, dict):
        check.mapping(data, "data", {"samples": True})
        out["data"] = {"kind": "samples", "n": check.integer(data["samples"], "data.samples", 1)}
    else:
        check.fail("data", f"'data' must be 'population', {{samples: N}} or {{dataset: digits}}, got {data!r}")

    _check_feature_count(check, out)
    truths = raw.get("truths", 1)
    if out["experiment"] == "first_k_cluster":
        # Draw truths in blocks until `until_k_cluster` of them have a GD run ending at k < m.
        rule = check.mapping(truths, "truths", {"until_k_cluster": True, "block": False, "max": False})
        out["truths"] = {
            "until_k_cluster": check.integer(rule["until_k_cluster"], "truths.until_k_cluster", 1),
            "block": check.integer(rule.get("block", 10), "truths.block", 1),
            "max": check.integer(rule.get("max", 200), "truths.max", 1),
        }
        grid_out = out["grid"]
        if "gd" not in grid_out["algorithm"] or len(grid_out["step"]) != 1 or len(grid_out["init"]) != 1 \
                or len(grid_out.get("gd_max_iter", [0])) != 1:
            check.fail("grid", "experiment first_k_cluster needs GD in grid.algorithm, one grid.step, one grid.init "
                               "and at most one grid.gd_max_iter")
    elif isinstance(truths, list):
        out["truths"] = [_check_mixture(check, t, f"truths[{i}]") for i, t in enumerate(truths)]
        if not out["truths"]:
            check.fail("truths", "'truths' must list at least one mixture")
        for i, t in enumerate(out["truths"]):
            shape = (len(t["pi"]), len(t["mu"][0]))
            if any((m, D) != shape for m in out["grid"]["m"] for D in out["grid"]["D"]):
                check.fail(f"truths[{i}]", f"given truth {i} has (m, D) = {shape}; grid.m and grid.D must be exactly that")
    else:
        out["truths"] = check.integer(truths, "truths", 1)
    runs = raw.get("runs", 60)
    if isinstance(runs, dict):
        check.mapping(runs, "runs", {a: False for a in ALGORITHMS})
        out["runs"] = {a: check.integer(runs.get(a, 60), f"runs.{a}", 1) for a in ALGORITHMS}
    else:
        count = check.integer(runs, "runs", 1)
        out["runs"] = {a: count for a in ALGORITHMS}

    stopping = check.mapping(raw.get("stopping", {}), "stopping", {a: False for a in ALGORITHMS})
    out["stopping"] = {}
    for algorithm in ALGORITHMS:
        rule = check.mapping(stopping.get(algorithm, {}), f"stopping.{algorithm}", {"max_iter": False, "tol": False})
        default = PAPER_STOPPING[algorithm]
        out["stopping"][algorithm] = {
            "max_iter": check.integer(rule.get("max_iter", default["max_iter"]), f"stopping.{algorithm}.max_iter", 1),
            "tol": check.number(rule.get("tol", default["tol"]), f"stopping.{algorithm}.tol"),
        }
    out["k_cluster_threshold"] = check.number(raw.get("k_cluster_threshold", 5.0e-4), "k_cluster_threshold", below_one=True)

    options = check.mapping(raw.get("init_options", {}), "init_options", {"epsilon": False, "given": False,
                                                                                  "at_data_mean": False})
    out["init_options"] = {"epsilon": check.number(options.get("epsilon", 1.0e-4), "init_options.epsilon", below_one=True)}
    if "given" in out["grid"]["init"]:
        given = options.get("given")
        needed = max(out["runs"].values())
        if not isinstance(given, list) or len(given) != needed:
            check.fail("init_options.given" if given is not None else "init_options",
                       f"init scheme 'given' needs 'init_options.given': a list of exactly {needed} mixtures (one per run)")
        out["init_options"]["given"] = [_check_mixture(check, g, f"init_options.given[{i}]") for i, g in enumerate(given)]
    elif "given" in options:
        check.fail("init_options.given", "'init_options.given' is set but 'given' is not in grid.init")
    if "at_data_mean" in options:  # the algorithms whose components 2..m start at the data mean
        chosen = [check.choice(a, "init_options.at_data_mean", ALGORITHMS)
                  for a in check.nonempty_list(options["at_data_mean"], "init_options.at_data_mean")]
        out["init_options"]["at_data_mean"] = chosen

    if "record" in raw:  # per-iteration traces, stored beside the rows
        record = check.mapping(raw["record"], "record", {"quantities": True, "every": False})
        out["record"] = {
            "quantities": [check.choice(q, "record.quantities", RECORDABLE)
                           for q in check.nonempty_list(record["quantities"], "record.quantities")],
            "every": check.integer(record.get("every", 1), "record.every", 1),
        }
    if out["experiment"] == "theory":  # which check of emrun.theory, and its options
        from emrun.theory import CHECKS

        out["check"] = check.choice(raw.get("check"), "check", CHECKS)
        options = raw.get("check_options", {})
        out["check_options"] = check.mapping(options, "check_options", {
            "deltas": False, "steps": False, "samples": False, "grid": False, "starts": False, "epsilon": False,
            "gd_iterations": False, "em_iterations": False, "trajectories": False})
    elif "check" in raw or "check_options" in raw:
        check.fail("check", "'check' and 'check_options' belong to experiment: theory")
    if out["experiment"] == "dynamics":  # papers B and C: trajectories of means-only Gaussian mixtures
        _check_dynamics(check, raw, out)
        return out
    for key in ("study", "options", "estimator"):
        if key in raw:
            check.fail(key, f"'{key}' belongs to experiment: dynamics")
    if out["model"] == "gaussian":
        if out["data"]["kind"] != "samples":
            check.fail("data", "model 'gaussian' needs finite samples: data: {samples: N}")
        for key, default in (("gd_boundary", "exact"), ("em_update", "simultaneous")):
            if key in out:
                check.fail(key, f"'{key}' applies to model 'bernoulli' only (the Gaussian family has {default!r})")
    return out


def _check_dynamics(check: _Checker, raw: dict, out: dict) -> None:
    """A dynamics config: its study, the study's options (defaults filled in) and the estimator of
    population expectations (kind and size, recorded in every row)."""
    from emrun.dynamics import STUDIES
    from emrun.models.gaussian_means import ESTIMATORS

    if out["model"] != "gaussian":
        check.fail("model", "experiment 'dynamics' needs model: gaussian (means-only Gaussian mixtures fitted to N(0, I))")
    out["study"] = check.choice(raw.get("study"), "study", tuple(STUDIES))
    defaults = STUDIES[out["study"]]
    options = check.mapping(raw.get("options", {}), "options", {key: False for key in defaults})
    out["options"] = {}
    for key, default in defaults.items():
        value, path = options.get(key, default), f"options.{key}"
        if isinstance(default, bool):
            if not isinstance(value, bool):
                check.fail(path, f"'{path}' must be true or false, got {value!r}")
        elif isinstance(default, int):
            value = check.integer(value, path, 1)
        elif isinstance(default, float):
            value = check.number(value, path)
        elif isinstance(default, str):  # a named scheme; each study has one (rates: weights 'dirichlet')
            value = check.choice(value, path, (default,))
        elif isinstance(default, list):
            value = [_check_entry(check, v, f"{path}[{i}]", default[0]) for i, v in enumerate(check.nonempty_list(value, path))]
        out["options"][key] = value
    estimator = check.mapping(raw.get("estimator", {}), "estimator", {"kind": True, "size": True})
    out["estimator"] = {"kind": check.choice(estimator["kind"], "estimator.kind", ESTIMATORS),
                        "size": check.integer(estimator["size"], "estimator.size", 2)}
    needs_sample = out["study"] in ("statrate", "simplex_samples", "lloyd")
    if needs_sample != (out["estimator"]["kind"] == "sample"):
        check.fail("estimator.kind", f"study {out['study']!r} needs estimator.kind "
                   + ("'sample'" if needs_sample else "quadrature, whitened_mc or fresh_mc (population expectations)"))
    samples = out["options"].get("samples")
    if samples is not None and out["estimator"]["size"] != max(samples):
        check.fail("estimator.size", f"'estimator.size' must be the largest of options.samples ({max(samples)}): "
                   "smaller samples are its prefixes")
    if out["data"]["kind"] != "population":
        check.fail("data", "experiment 'dynamics' learns N(0, I): the estimator says how its expectations are computed")


def _check_entry(check: _Checker, value: Any, path: str, example: Any) -> Any:
    """One entry of a list option, of the same kind as the default's first entry."""
    if isinstance(example, list):  # a weight vector
        if not isinstance(value, list) or not value:
            check.fail(path, f"'{path}' must be a non-empty list, got {value!r}")
        items = [check.number(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if abs(sum(items) - 1) > 1e-9:
            check.fail(path, f"'{path}' must sum to 1, sums to {sum(items)!r}")
        return items
    return check.integer(value, path, 1) if isinstance(example, int) else check.number(value, path)


def _apply_override(raw: dict, assignment: str, marks: dict[str, Any]) -> None:
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected key=value, for example --set runs=5")
    path, text = assignment.split("=", 1)
    keys = path.strip().split(".")
    target = raw
    for key in keys[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[keys[-1]] = yaml.safe_load(text)
    for known in [p for p in marks if p == path or p.startswith(path + ".") or p.startswith(path + "[")]:
        marks[known] = "--set"
    marks[path] = "--set"


def load(path: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> Config:
    """Read, override and validate a config file; raise ConfigError with a clear message."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{source}: cannot read the config ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not a text file (the config must be UTF-8 YAML)") from None
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"{where}: not valid YAML ({getattr(error, 'problem', error)})") from None
    if node is None:
        raise ConfigError(f"{source}: the config is empty")
    marks: dict[str, Any] = {}
    raw = _plain(node, "", marks)
    if isinstance(raw, dict):
        for assignment in overrides:
            _apply_override(raw, assignment, marks)
    return Config(validate(raw, source, marks), source)
