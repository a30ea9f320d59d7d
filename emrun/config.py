"""Load, validate and expand an experiment config (YAML).

Every error names the file, the line, the key and what was expected; unknown keys are errors at
every level. ``--set key=value`` overrides are applied before validation and are named
``--set`` in errors. This module checks the keys every config has (name, description,
experiment, seed, plugins); the experiment kind checks the rest (:mod:`emrun.kinds`). The
validated config is a plain, canonical dict (defaults filled in); its hash identifies the rows it
produces. Keys that only change the report (description, claims, baseline, claim_plugins,
report_sections, companions) are not hashed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from emrun.batch import Cell
from emrun.files import read_small_text
from emrun.registry import KINDS, RegistryError

INT64_MAX = 2**63 - 1  # counts and caps are stored as 64-bit integers
# The most batches a plan may hold: a plan is built in memory, so 800 million cheap one-iteration
# batches pass a guard on CPU-hours and then exhaust memory. No config in configs/ comes near.
MAX_BATCHES = 1_000_000
_PLAIN_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map")}
COMMON_KEYS = {"name": True, "description": False, "experiment": False, "seed": True, "plugins": False,
               "claim_plugins": False}
# Read by the report only: not part of the hash. claim_plugins lists files that register claims and
# report sections only; report_sections selects sections; companions names folders claims may read.
REPORT_KEYS = ("description", "claims", "baseline", "claim_plugins", "report_sections", "companions")


class ConfigError(ValueError):
    """A config that cannot be run; the message says where and why."""


@dataclass(frozen=True)
class Config:
    """A validated config: ``values`` is the canonical dict that is hashed and stored; ``plugins``
    the sources of its file plug-ins (they travel with the tasks to the workers); ``claim_plugins``
    those of its claim plug-ins (kept beside the results for the report; no worker needs them)."""

    values: dict[str, Any]
    source: str
    plugins: tuple = ()
    claim_plugins: tuple = ()

    @property
    def name(self) -> str:
        return self.values["name"]

    @property
    def hash(self) -> str:
        return config_hash(self.values)

    @property
    def kind(self):
        """The experiment kind (:class:`emrun.kinds.protocol.Kind`) that runs and reports it."""
        return KINDS.get(self.values["experiment"])

    @property
    def settings(self):
        """The values typed and frozen by the kind (:mod:`emrun.settings`), defaults filled in."""
        return self.kind.settings(self.values)

    def cells(self) -> list[Cell]:
        return self.kind.cells(self.values)

    @property
    def n_truths(self) -> int:
        """Truths per cell; for an adaptive plan (first_k_cluster), the most it may draw."""
        return self.kind.n_truths(self.values)

    def trial_count(self) -> int:
        return sum(self.values["runs"][cell.algorithm] for cell in self.cells()) * self.n_truths


def planned_bound(config: Config) -> int:
    """At most how many batches the config plans, counted without building them where the kind can."""
    return config.kind.planned_bound(config)


def config_hash(values: dict[str, Any]) -> str:
    hashed = {k: v for k, v in values.items() if k not in REPORT_KEYS}
    text = json.dumps(hashed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- loading with line marks -------------------------------------------------------------------

def _plain(node: yaml.Node, path: str, marks: dict[str, int], source: str) -> Any:
    """Turn a composed YAML node into plain Python, recording the line of every key path. Only
    plain YAML is accepted: no tags beyond the standard scalars, no key given twice."""
    line = node.start_mark.line + 1
    marks[path] = line
    if node.tag not in _PLAIN_TAGS:
        raise ConfigError(f"{source}:{line}: the tag {node.tag.rsplit(':', 1)[-1]!r} of '{path or 'the config'}' is not "
                          "allowed (a config is plain YAML: numbers, strings, lists and mappings)")
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = key_node.value
            child = f"{path}.{key}" if path else key
            if key in out:
                raise ConfigError(f"{source}:{key_node.start_mark.line + 1}: the key '{child}' is given twice "
                                  f"(first on line {marks[child]})")
            marks[child] = key_node.start_mark.line + 1
            out[key] = _plain(value_node, child, marks, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, f"{path}[{i}]", marks, source) for i, item in enumerate(node.value)]
    return yaml.constructor.SafeConstructor().construct_object(node)


def _compose(text: str, source: str) -> yaml.Node | None:
    """The YAML node tree of a config, refusing anchors and aliases (``&a``, ``*a``): they let a
    few lines expand into billions of values, or into themselves."""
    try:
        for token in yaml.scan(text):
            if isinstance(token, (yaml.AnchorToken, yaml.AliasToken)):
                raise ConfigError(f"{source}:{token.start_mark.line + 1}: YAML anchors and aliases ('&{token.value}', "
                                  f"'*{token.value}') are not allowed in a config; write the values out")
        return yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"{where}: not valid YAML ({getattr(error, 'problem', None) or error})") from None


class Checker:
    """Validation helpers that build errors naming file, line and key (kinds and plug-ins use it)."""

    def __init__(self, source: str, marks: dict[str, Any]):
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
        high = INT64_MAX if high is None else high
        if isinstance(value, bool) or not isinstance(value, int) or value < low or value > high:
            bound = f"from {low} to {high}" if high != INT64_MAX else f">= {low} (and below 2^63)"
            self.fail(path, f"'{path}' must be an integer {bound}, got {value!r}")
        return value

    def number(self, value: Any, path: str, below_one: bool = False) -> float:
        """A positive, finite number (in (0, 1) with ``below_one``)."""
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not is_number or not math.isfinite(value) or not value > 0 or (below_one and not value < 1):
            rule = "a number in (0, 1)" if below_one else "a positive finite number"
            self.fail(path, f"'{path}' must be {rule}, got {value!r}")
        return float(value)

    def choice(self, value: Any, path: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            self.fail(path, f"'{path}' must be one of {', '.join(allowed)}; got {value!r}")
        return value

    def registered(self, value: Any, path: str, table) -> str:
        """A name the registry ``table`` knows (built in or added by a plug-in)."""
        if not isinstance(value, str) or value not in table:
            self.fail(path, f"'{path}' must be one of {', '.join(table.names())}; got {value!r}")
        return value

    def nonempty_list(self, value: Any, path: str) -> list:
        if not isinstance(value, list):
            value = [value]
        if not value:
            self.fail(path, f"'{path}' must not be empty")
        if len(set(map(repr, value))) != len(value):
            self.fail(path, f"'{path}' lists a value twice: {value!r}")
        return value

    def typed(self, value: Any, path: str, default: Any) -> Any:
        """A value of the same type as ``default`` (a bool, a positive integer or number, or a list
        of such); how typed option defaults check what a config gives."""
        if isinstance(default, bool):
            if not isinstance(value, bool):
                self.fail(path, f"'{path}' must be true or false, got {value!r}")
            return value
        if isinstance(default, int):
            return self.integer(value, path, 1)
        if isinstance(default, float):
            return self.number(value, path)
        if isinstance(default, list):
            items = self.nonempty_list(value, path)
            return [self.typed(v, f"{path}[{i}]", default[0]) for i, v in enumerate(items)] if default else items
        if isinstance(default, str):
            if not isinstance(value, str):
                self.fail(path, f"'{path}' must be a name, got {value!r}")
            return value
        return value


def validate(raw: Any, source: str, marks: dict[str, Any], base: Path | None = None,
             run_plugins: bool = True, kept: tuple | None = None) -> tuple[dict[str, Any], dict[str, tuple]]:
    """Check a plain config dict; return its canonical form (defaults filled in) and the sources of
    its file plug-ins (``plugins`` and ``claim_plugins``). ``base`` is the folder plug-in paths are
    relative to. A config is code only when it is run: without ``run_plugins``, a config that lists
    plug-ins raises PluginsNotRun describing them (paths and hashes), and imports none; unless
    ``kept`` (a results folder and its manifest's plug-in records, whose copies the user chose to
    run) holds the same files with the same hashes, in which case those copies are imported
    instead: the same code, already allowed."""
    from emrun import plugins

    check = Checker(source, marks)
    if not isinstance(raw, dict):
        check.fail("", f"the config must be a mapping of keys, got {type(raw).__name__}")
    out: dict[str, Any] = {}
    sources: dict[str, tuple] = {}
    plugins.begin_config()  # this config sees emrun, installed entry points and its own plug-ins only
    # Imported first: they may register the kind, family, algorithms and claims named below.
    listed = {key: [v if isinstance(v, str) else check.fail(key, f"'{key}' lists files or modules, got {v!r}")
                    for v in check.nonempty_list(raw[key], key)]
              for key in (plugins.ROWS, plugins.CLAIMS_ONLY) if key in raw}
    key = plugins.ROWS
    try:
        if listed and run_plugins:
            try:
                for key, labels in listed.items():
                    out[key], sources[key] = plugins.resolve(labels, base or Path("."), key)
            finally:
                plugins.end_config()  # a later config or results folder in this process may replace them
        elif listed:
            records = [r for key, labels in listed.items() for r in plugins.describe(labels, base or Path("."), key)]
            if kept is None or not _same_files(records, kept[1]):
                raise plugins.PluginsNotRun(
                    f"{source} lists plug-ins ({'; '.join(map(plugins.describe_line, records))}); they are not "
                    "imported here (a config runs code only when swept)", records)
            sources[plugins.ROWS] = plugins.restore(kept[1], kept[0], run=True)
            for key in listed:
                out[key] = [{"file": r["file"], "sha256": r["sha256"]} for r in records if r["key"] == key]
    except plugins.PluginsNotRun as error:
        error.name = raw.get("name")  # what a listing shows for the config
        raise
    except RegistryError as error:
        check.fail(key, str(error))
    kind = KINDS.get(check.registered(raw.get("experiment", "grid"), "experiment", KINDS))
    _check_top_level_keys(check, raw, kind)
    name = raw["name"]
    # ASCII only (no look-alike digits), not starting with '-' (it would read as an option), and
    # short enough for a folder name on any file system.
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}", name):
        check.fail("name", f"'name' must be ASCII letters, digits, '_' or '-', start with a letter or digit and have "
                           f"at most 100 characters, got {name!r}")
    out.update({"name": name, "description": str(raw.get("description", "")), "experiment": kind.name,
                "seed": check.integer(raw["seed"], "seed", 0)})
    try:
        kind.validate(raw, check, out)
    except RegistryError as error:  # a name no registry knows, met deep inside a kind's checks
        check.fail("", str(error))
    used = kind.names_used(out)
    extra = plugins.entry_point_records(used)
    if extra:
        out["plugins"] = [*out.get("plugins", []), *extra]
    _check_round_trip(check, kind, out)
    return out, sources


def _check_round_trip(check: Checker, kind, values: dict) -> None:
    """The kind's typed settings must give the canonical values back, as JSON (the manifest's form):
    same keys, in the same order at every level, same values. The hash is taken from those values,
    so a settings type that drops or changes a key would make readers see another config than the
    one that ran."""
    try:
        settings = kind.settings(values)
        back = settings.hashed()
    except Exception as error:  # noqa: BLE001 (a kind's settings type that cannot read its own values)
        check.fail("", f"experiment kind '{kind.name}': its settings cannot read the validated config "
                       f"({type(error).__name__}: {error}); this is a bug in the kind or its settings type")
    if json.dumps(back) != json.dumps(values):
        changed = sorted({*back, *values} - {k for k in values if k in back and json.dumps(back[k]) == json.dumps(values[k])})
        check.fail("", f"experiment kind '{kind.name}': its settings ({type(settings).__name__}) do not give back the "
                       f"validated config (keys {', '.join(changed) or 'in another order'}); this is a bug in the "
                       "kind or its settings type")


def _same_files(records: list[dict], kept: list[dict]) -> bool:
    """Whether a config's plug-ins are exactly the files a results folder keeps (labels, hashes, order)."""
    files = [(r.get("file"), r.get("sha256")) for r in kept if "file" in r or "module" in r]
    return all("file" in r for r in records) and files == [(r["file"], r["sha256"]) for r in records]


def _check_top_level_keys(check: Checker, raw: dict, kind) -> None:
    allowed = {**COMMON_KEYS, **kind.keys}
    for key in raw:
        if key not in allowed:
            owners = [other for other, entry in KINDS.items() if key in entry.value.keys]
            if owners:
                check.fail(key, f"'{key}' belongs to experiment: {' or '.join(owners)}")
    check.mapping(raw, "", allowed)


def _apply_override(raw: dict, assignment: str, marks: dict[str, Any]) -> None:
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected key=value, for example --set runs=5")
    path, text = assignment.split("=", 1)
    keys = path.strip().split(".")
    if not all(keys):
        raise ConfigError(f"--set {assignment!r}: expected key=value with a key such as runs or grid.m")
    try:
        node = _compose(text, f"--set {assignment!r}")
        value = None if node is None else _plain(node, path, {}, f"--set {assignment!r}")
    except ConfigError as error:
        raise ConfigError(str(error).replace(":1: ", ": ", 1)) from None
    target = raw
    for key in keys[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[keys[-1]] = value
    for known in [p for p in marks if p == path or p.startswith(path + ".") or p.startswith(path + "[")]:
        marks[known] = "--set"
    marks[path] = "--set"


def load(path: str | Path, overrides: tuple[str, ...] | list[str] = (), run_plugins: bool = True,
         kept: tuple | None = None) -> Config:
    """Read, override and validate a config file; raise ConfigError with a clear message. Without
    ``run_plugins`` (list, status, a dry run) a config listing plug-ins raises PluginsNotRun."""
    path = Path(path)
    source = str(path)
    try:
        text = read_small_text(path)
    except OSError as error:
        raise ConfigError(f"{source}: cannot read the config ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not a text file (the config must be UTF-8 YAML)") from None
    node = _compose(text, source)
    if node is None:
        raise ConfigError(f"{source}: the config is empty")
    marks: dict[str, Any] = {}
    raw = _plain(node, "", marks, source)
    if isinstance(raw, dict):
        for assignment in overrides:
            _apply_override(raw, assignment, marks)
    values, sources = validate(raw, source, marks, path.parent, run_plugins, kept)
    return Config(values, source, sources.get("plugins", ()), sources.get("claim_plugins", ()))


def from_manifest(values: dict[str, Any], folder: Path, run_plugins: bool = False, say=None,
                  fresh: bool = True, running: list[dict] | None = None) -> Config:
    """The config a results folder was run with (its manifest). Its plug-ins are imported, from the
    copies the folder keeps and in a scope of their own, only with ``run_plugins`` (the user's
    explicit choice; ``say`` tells what runs); otherwise a folder that lists any raises
    PluginsNotRun (:func:`emrun.plugins.restore`). ``fresh``: forget the plug-ins of whatever was
    read before (False for a companion read while another folder's report is written).
    ``running``: for a companion, the plug-in records of the folder being reported, whose code
    already runs. A companion is read for its rows only, so its claim plug-ins are not needed, and
    row plug-ins that are the same files (same hashes) as those running are not imported again."""
    from emrun import plugins

    if fresh:
        plugins.begin_config()  # this folder sees emrun, installed entry points and its own plug-ins only
    kept = plugins.kept_records(values)
    if running is not None:
        same = {(r.get("file"), r.get("module"), r.get("sha256")) for r in running}
        kept = [r for r in values.get(plugins.ROWS, []) if (r.get("file"), r.get("module"), r.get("sha256")) not in same]
    sources = plugins.restore(kept, folder, run_plugins, say) if kept else ()
    return Config(values, str(Path(folder) / "manifest.json"), sources)
