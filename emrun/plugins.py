"""Plug-ins: a Python file, an importable module or an installed package that registers
algorithms, model families, init schemes, claims, report sections or experiment kinds, with no
edit to emrun.

A config lists them (``plugins: [my_algorithms.py, some.module]``; a path is relative to the config
file). They are imported before the config is validated, so the config can name what they
register. A listed plug-in's hash enters the config hash (a file: the SHA-256 of its text; a
module: of its source files), so a changed plug-in never mixes its rows with the old ones.

Claims and report sections are the exception: they read rows and never make them, so they live in
files of their own, listed under ``claim_plugins:``, which is not hashed (like ``claims:`` and
``description:``). A file under ``plugins:`` that registers a claim or a section, or one under
``claim_plugins:`` that registers anything else, is refused: which files may change after a sweep
is read from the config's text, so the hash is known without running any code, and nothing a
family or an algorithm calls can hide in an unhashed file. A sweep that runs nothing records a
changed claim plug-in (and keeps its copy); the report then judges (and draws its sections) with it.

How a file plug-in reaches a worker: its text travels with every task (:class:`PluginSource`), and
the worker imports that text once per process; a worker never reads the client's path. A module
plug-in is imported by name on the worker, so it must be installed there. Installed packages can
also register through the entry-point group ``emrun.plugins``; such a plug-in enters a config's
hash only when the config uses a name it registers.

Registration functions (a plug-in file calls them at import):
:func:`register_algorithm`, :func:`register_family`, :func:`register_init_scheme`,
:func:`register_claim`, :func:`register_report_section`, :func:`register_kind`, :func:`register_accelerator`.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emrun import registry
from emrun.files import read_small_text
from emrun.registry import RegistryError, registering_as


class PluginError(RegistryError):
    """A plug-in that cannot be used: missing, failing to import, or registering a taken name."""


class PluginsNotRun(PluginError):
    """Code that a read path (report, status, replay, list, a dry run) does not run unless the user
    asks: the plug-ins a results folder keeps, or those a config lists. ``records`` describe them
    (label, hash, path) without importing them."""

    def __init__(self, message: str, records: list[dict]):
        super().__init__(message)
        self.records = records


@dataclass(frozen=True)
class PluginSource:
    """A file plug-in as it travels with tasks: the label the config gives it, its text and hash."""

    label: str
    source: str
    sha256: str

    @property
    def origin(self) -> str:
        return f"plug-in {self.label} (sha256 {self.sha256[:12]})"

    @property
    def owner(self) -> str:
        return f"{self.label}@{self.sha256[:12]}"


ROWS, CLAIMS_ONLY = "plugins", "claim_plugins"  # the config keys that list plug-ins (hashed, and not)
REPORT_ONLY = ("claim", "report section")  # what a file under claim_plugins registers (it reads rows, never makes them)
_capturing: list[dict] = []  # while claims_in reads a kept copy: where its register_claim calls go
_loaded: set[str] = set()  # owners ("label@sha") of the file plug-ins whose names are registered now


def _register(table: registry.Registry, name: str, value: Any) -> Any:
    if _capturing:
        raise PluginError(f"a claim plug-in registers claims and report sections only, not a {table.noun} ('{name}')")
    try:
        table.register(name, value)
    except RegistryError as error:
        raise PluginError(str(error)) from None
    return value


def register_algorithm(algorithm: Any) -> Any:
    """Register an object following :class:`emrun.algorithms.Algorithm` under ``algorithm.name``."""
    return _register(registry.ALGORITHMS, algorithm.name, algorithm)


def register_family(family: Any) -> Any:
    """Register an object (or module) following :class:`emrun.models.Family` under ``family.name``."""
    return _register(registry.FAMILIES, family.name, family)


def register_init_scheme(name: str, scheme: Any) -> Any:
    """Register an init scheme: a function (ctx: emrun.inits.InitContext) -> (pi [R, m], mu [R, m, D]).
    Its options, if any, are its attribute ``options`` ({name: default}): a config using it may set
    ``init_options.<name>``, and ``ctx.options`` holds the value (see :mod:`emrun.inits`)."""
    return _register(registry.INIT_SCHEMES, name, scheme)


def register_claim(claim: Any) -> Any:
    """Register an :class:`emrun.report.claims.Claim` under ``claim.name``."""
    if _capturing:  # a kept copy read for its claims (claims_in): nothing is registered
        _capturing[-1][claim.name] = claim
        return claim
    return _register(registry.CLAIMS, claim.name, claim)


def register_report_section(name: str, section: Callable[[Any], str], title: str = "") -> Callable[[Any], str]:
    """Register a report section: ``section(ctx: emrun.report.sections.SectionContext) -> str``
    (Markdown) drawn under the heading ``title`` (default: ``name``) in the grid report of every
    config listing ``name`` under ``report_sections:``. Report-only: register it in a file under
    ``claim_plugins:``, which is not hashed with the rows."""
    if _capturing:  # a kept copy read for its claims only (claims_in): its sections are not wanted
        return section
    from emrun.report.sections import Section

    _register(registry.SECTIONS, name, Section(name, section, title or name))
    return section


def register_kind(kind: Any) -> Any:
    """Register an object following the kind protocol (:mod:`emrun.kinds.protocol`) under
    ``kind.name``; an object that does not follow it is refused here, with every problem named."""
    from emrun.kinds.protocol import Kind, KindError

    try:
        checked = Kind(kind)
    except KindError as error:
        raise PluginError(str(error)) from None
    _register(registry.KINDS, kind.name, checked)
    return kind


def register_accelerator(family: str, algorithm: str, accelerator: Any) -> Any:
    """Register a compiled (or otherwise faster) loop for one (family, algorithm) pair; see
    :class:`emrun.algorithms.Accelerator`."""
    return _register(registry.ACCELERATORS, f"{family}/{algorithm}", accelerator)


# --- file plug-ins ---------------------------------------------------------------------------------

def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def read_file(label: str, base: Path) -> PluginSource:
    """The plug-in a config lists as ``label`` (a path relative to the config's folder ``base``)."""
    path = Path(label) if Path(label).is_absolute() else Path(base) / label
    try:
        text = read_small_text(path)
    except OSError as error:
        raise PluginError(f"plug-in {label}: cannot read {path} ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise PluginError(f"plug-in {label}: {path} is not a UTF-8 Python file") from None
    return PluginSource(label, text, sha256_text(text))


def load(plugin: PluginSource, active: bool = False, kept: bool = False) -> bool:
    """Import a file plug-in's text in this process, once per version while its names stay
    registered; True if it was imported now. ``active``: it belongs to the config being validated;
    ``kept``: a results folder's copy, which leaves the names the caller registered at run time."""
    if plugin.owner in _loaded and plugin.owner not in registry.displaced:
        return False
    stem = "".join(c if c.isalnum() else "_" for c in Path(plugin.label).stem)
    module = types.ModuleType(f"emrun_plugin_{stem}_{plugin.sha256[:8]}")
    module.__file__ = plugin.label
    sys.modules[module.__name__] = module  # dataclasses and pickling look a class's module up here
    with registering_as(plugin.origin, plugin.owner, listed=True, active=active, yields=kept):
        try:
            exec(compile(plugin.source, plugin.label, "exec"), module.__dict__)
        except RegistryError:
            raise
        except (Exception, SystemExit) as error:  # SystemExit(0) at import must not end emrun as a success
            sys.modules.pop(module.__name__, None)
            line = _line_of(error, plugin.label)
            raise PluginError(f"plug-in {plugin.label} failed to import{line}: {type(error).__name__}: {error}") from None
    _loaded.add(plugin.owner)
    return True


def _line_of(error: BaseException, filename: str) -> str:
    if isinstance(error, SyntaxError) and error.lineno:
        return f" (line {error.lineno})"
    trace = error.__traceback__
    line = None
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == filename:
            line = trace.tb_lineno
        trace = trace.tb_next
    return f" (line {line})" if line else ""


def ensure_loaded(plugins: tuple[PluginSource, ...] | list[PluginSource]) -> None:
    """What a worker does before a task: import the task's file plug-ins it has not imported yet."""
    for plugin in plugins:
        load(plugin)


# --- module plug-ins and entry points --------------------------------------------------------------

def _files_hash(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def load_entry_points() -> None:
    """Import every installed package's ``emrun.plugins`` entry point, once per process."""
    registry.load_entry_points()


def load_module(name: str) -> dict:
    """Import a module plug-in by name; its record (name and the hash of its source files)."""
    try:
        with registering_as(f"plug-in module {name}", f"module {name}", listed=True, active=True):
            module = importlib.import_module(name)
    except RegistryError:
        raise
    except (Exception, SystemExit) as error:
        raise PluginError(f"plug-in module {name} failed to import: {type(error).__name__}: {error}") from None
    file = getattr(module, "__file__", None)
    if file is None:
        return {"module": name, "sha256": None}
    path = Path(file)
    files = list(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
    return {"module": name, "sha256": _files_hash(files)}


def entry_point_records(names: set[str]) -> list[dict]:
    """Records (distribution, version, hash of its files) of the entry points that registered any of
    ``names``: the installed plug-ins a config uses."""
    out = []
    for point in registry.entry_points_using(names):
        dist = point["dist"]
        files = [Path(dist.locate_file(f)) for f in (dist.files or []) if str(f).endswith(".py")] if dist else []
        out.append({**point["record"], "sha256": _files_hash([f for f in files if f.exists()])})
    return out


def begin_config() -> None:
    """A config is being loaded: forget the plug-ins of any config loaded before it in this process."""
    registry.begin_config()
    _loaded.clear()


def _is_file(label: str) -> bool:
    return label.endswith(".py") or "/" in label or "\\" in label


def describe(listed: list[str], base: Path, key: str = ROWS) -> list[dict]:
    """What a config's plug-ins (listed under ``key``) are, without importing any: a file's label,
    the path it resolves to and the SHA-256 of its text; a module's name."""
    out = []
    for label in listed:
        if _is_file(label):
            plugin = read_file(label, base)
            path = (Path(base) / label).resolve() if not Path(label).is_absolute() else Path(label)
            outside = not path.is_relative_to(Path(base).resolve())
            out.append({"file": label, "sha256": plugin.sha256, "path": str(path), "outside": outside, "key": key})
        else:
            out.append({"module": label, "key": key})
    return out


def describe_line(record: dict) -> str:
    """One plug-in record as the user reads it (what would run)."""
    if "copy" in record:  # kept in a results folder
        return f"{record['copy']} (sha256 {str(record.get('sha256'))[:16]}, from {record['file']})"
    claims = " (claims only, not hashed)" if record.get("key") == CLAIMS_ONLY else ""
    if "file" in record:
        where = f" -> {record['path']}, outside the config's folder" if record.get("outside") else ""
        return f"{record['file']}{where} (sha256 {str(record.get('sha256'))[:16]}){claims}"
    if "module" in record:
        return f"module {record['module']}{claims}"
    return f"entry point {record.get('entry_point')} ({record.get('distribution')} {record.get('version')})"


def resolve(listed: list[str], base: Path, key: str = ROWS) -> tuple[list[dict], tuple[PluginSource, ...]]:
    """Import the plug-ins a config lists under ``key`` (``plugins`` or ``claim_plugins``): their
    records for the canonical config (label and hash) and the file plug-ins' sources (those of
    ``plugins`` travel with the tasks). The caller ends the config's scope (:func:`end_config`)
    once both lists are imported, so that the two lists may not register the same name."""
    records, sources = [], []
    for label in listed:
        if _is_file(label):
            plugin = read_file(label, base)
            load(plugin, active=True)
            _check_role(label, plugin.owner, key)
            records.append({"file": plugin.label, "sha256": plugin.sha256})
            sources.append(plugin)
        else:
            records.append(load_module(label))
            _check_role(label, f"module {label}", key)
    return records, tuple(sources)


def end_config() -> None:
    """A config's plug-ins are imported: from now on another config's version may replace them."""
    registry.end_config()


def _check_role(label: str, owner: str, key: str) -> None:
    """A plug-in under ``plugins`` registers no claim or report section; one under ``claim_plugins``
    registers only those (what reads rows, never what makes them)."""
    found = registry.registered_by(owner)
    if key == CLAIMS_ONLY:
        other = [f"{noun} '{name}'" for noun, name in found if noun not in REPORT_ONLY]
        if other:
            raise PluginError(f"claim plug-in {label} registers {', '.join(other)}: a file under claim_plugins registers "
                              "claims and report sections only (it is not part of the config hash); list a file that "
                              "changes rows under plugins")
        return
    report_only = [f"{noun} '{name}'" for noun, name in found if noun in REPORT_ONLY]
    if report_only:
        raise PluginError(f"plug-in {label} registers {', '.join(report_only)}: put claims and report sections in a file "
                          "of their own under claim_plugins, which is not part of the config hash, so that they can change "
                          "after a sweep without re-running it (files under plugins are hashed with the rows)")


def kept_records(values: dict) -> list:
    """The plug-in records of a stored config: those of ``plugins`` (hashed) and ``claim_plugins``."""
    return [*values.get(ROWS, []), *values.get(CLAIMS_ONLY, [])]


def restore(records: list[dict], folder: Path, run: bool = False, say: Callable[[str], Any] | None = None
            ) -> tuple[PluginSource, ...]:
    """The plug-ins a stored config used, imported from the copies kept in its results folder
    (``plugins/``) in a scope of their own (the plug-ins of any folder or config read before are
    forgotten first), and only when the user asked (``run``): a results folder is data, and the hash
    beside a copy is written by whoever wrote the folder. A ``module`` record is never imported
    from a folder (it could name any importable module): only one the caller imported already is
    used. Without ``run``, PluginsNotRun lists what would run. Returns the file plug-ins' sources."""
    kept = [r for r in records if "file" in r or "module" in r]
    if not kept:
        return ()
    kept = [{**r, "copy": copy_name(str(r["file"]), str(r.get("sha256")))} if "file" in r else r for r in kept]
    lines = [describe_line(r) for r in kept]
    if not run:
        raise PluginsNotRun(f"{folder} was run with plug-ins ({'; '.join(lines)}); reading it would run their code, and a "
                            "results folder is data: add --run-plugins to run them (Python: run_plugins=True)", kept)
    begin_config()
    sources = []
    try:
        for record, line in zip(kept, lines, strict=True):
            if "module" in record:
                if record["module"] not in sys.modules:
                    raise PluginError(f"{folder} lists plug-in module {record['module']}: a module a results folder names "
                                      "is never imported (install it with an 'emrun.plugins' entry point, or import it "
                                      "yourself before reading the folder in Python)")
                continue
            plugin = kept_copy(folder, record)
            if say is not None:
                say(f"running plug-in {line} of {folder}")
            load(plugin, active=True, kept=True)
            sources.append(plugin)
    finally:
        registry.end_config()
    return tuple(sources)


def kept_copy(folder: Path, record: dict) -> PluginSource:
    """The copy of a file plug-in a results folder keeps, checked against the hash its record gives."""
    if not isinstance(record.get("sha256"), str) or len(record["sha256"]) != 64 or \
            any(c not in "0123456789abcdef" for c in record["sha256"]):
        raise PluginError(f"{folder}: the manifest's record of plug-in {record.get('file')} has no valid sha256")
    copy = Path(folder) / copy_name(str(record["file"]), record["sha256"])
    if not copy.is_file():
        raise PluginError(f"{folder}: the plug-in {record['file']} it was run with is not kept at {copy}")
    plugin = PluginSource(str(record["file"]), copy.read_text(), record["sha256"])
    if plugin.sha256 != sha256_text(plugin.source):
        raise PluginError(f"{copy} does not match the hash recorded for plug-in {record['file']}")
    return plugin


def claims_in(plugin: PluginSource) -> dict[str, Any]:
    """The claims a claim plug-in's text registers, read without registering them: how a report
    judges a claim under its recorded criterion with the copy of the file kept when it was recorded,
    beside the current version. Such a file registers claims only."""
    found: dict[str, Any] = {}
    stem = "".join(c if c.isalnum() else "_" for c in Path(plugin.label).stem)
    module = types.ModuleType(f"emrun_recorded_{stem}_{plugin.sha256[:8]}")
    module.__file__ = plugin.label
    sys.modules[module.__name__] = module  # dataclasses look a class's module up here
    _capturing.append(found)
    try:
        exec(compile(plugin.source, plugin.label, "exec"), module.__dict__)
    except (Exception, SystemExit) as error:
        raise PluginError(f"the kept copy of {plugin.label} failed to import{_line_of(error, plugin.label)}: "
                          f"{type(error).__name__}: {error}") from None
    finally:
        _capturing.pop()
    return found


def copy_name(label: str, sha256: str) -> str:
    """Where a results folder keeps a copy of a file plug-in it was run with."""
    return f"plugins/{Path(label).stem}.{sha256[:12]}.py"
