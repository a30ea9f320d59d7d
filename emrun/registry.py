"""Registries of the named things a config can use, and where each one came from.

A config names a model family, algorithms, init schemes, claims and an experiment kind; each name
is looked up here. The built-in entries of a registry are a dict in some emrun module, imported
the first time the registry is used (so ``emrun --help`` imports no numpy). Plug-ins add entries
with :mod:`emrun.plugins`; installed packages do so through the entry-point group
``emrun.plugins``, loaded only when a registry is asked for a name it does not have, or for all
its names. A name registered twice, by two different plug-ins or over a built-in, is an error.
"""

from __future__ import annotations

import importlib
import types
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

BUILT_IN = "built in"
ENTRY_POINT_GROUP = "emrun.plugins"


class RegistryError(ValueError):
    """A name that is unknown or registered twice; the message is one line for the user."""


@dataclass
class Entry:
    value: Any
    origin: str  # "built in", or the plug-in that registered it
    owner: str  # what registered it: "emrun", an entry point, or a plug-in ("label@sha")
    replaceable: bool = False  # a listed plug-in's entry: another config's version of it may replace it


def resolve(target: str) -> Any:
    """The object an import string names: "package.module" or "package.module:attribute"."""
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


class Registry:
    """Named entries of one kind ("algorithm", "model family", ...)."""

    def __init__(self, noun: str, builtins: str | None = None):
        self.noun = noun
        self._builtins = builtins  # "module:attribute" of a dict name -> value, imported on first use
        self._entries: dict[str, Entry] = {}

    def _load_builtins(self) -> None:
        if self._builtins is not None:
            source, self._builtins = self._builtins, None
            for name, value in resolve(source).items():
                self._entries.setdefault(name, Entry(value, BUILT_IN, "emrun"))

    def register(self, name: str, value: Any) -> None:
        """Add an entry, on behalf of whatever is being imported (a plug-in) or of the caller. A
        plug-in re-registering its own name (a newer version of the same file) replaces it; anyone
        else's name is refused."""
        self._load_builtins()
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "_-/" for c in name):
            raise RegistryError(f"{self.noun} name {name!r} must be letters, digits, '_' or '-'")
        origin, owner, listed, this_import, yields = _loading[-1] if _loading else ("registered at run time", RUN_TIME,
                                                                                     False, set(), False)
        known = self._entries.get(name)
        if yields and known is not None and known.owner == RUN_TIME:
            return  # a name the caller registered in this process stays theirs (see registering_as)
        # Two plug-ins of one config, or a plug-in and emrun, may not claim the same name; a plug-in
        # of another config loaded earlier in this process (another results folder) may be replaced.
        clash = known is not None and known.owner != owner and not (known.replaceable and known.owner not in _active)
        if clash or (known is not None and (self.noun, name) in this_import):
            raise RegistryError(f"{self.noun} '{name}' is registered twice: {known.origin}, and {origin}")
        if known is not None and known.owner != owner:
            displaced.add(known.owner)  # importing that plug-in again must register it again
        this_import.add((self.noun, name))
        self._entries[name] = Entry(value, origin, owner, listed)
        if owner in _entry_points:
            _entry_points[owner]["names"].add(name)

    def forget(self, owners: set[str] | None = None) -> None:
        """Drop the entries of listed plug-ins (of ``owners``, or all of them)."""
        for name in [n for n, e in self._entries.items() if e.replaceable and (owners is None or e.owner in owners)]:
            del self._entries[name]

    def _entry(self, name: str) -> Entry | None:
        self._load_builtins()
        if name not in self._entries:
            load_entry_points()
        return self._entries.get(name)

    def get(self, name: str) -> Any:
        entry = self._entry(name)
        if entry is None:
            raise RegistryError(f"unknown {self.noun} '{name}' (known: {', '.join(self.names())})")
        return entry.value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._entry(name) is not None

    def origin(self, name: str) -> str:
        entry = self._entry(name)
        return entry.origin if entry is not None else "unknown"

    def owner(self, name: str) -> str | None:
        entry = self._entry(name)
        return entry.owner if entry is not None else None

    def names(self) -> tuple[str, ...]:
        self._load_builtins()
        load_entry_points()
        return tuple(self._entries)

    def items(self) -> list[tuple[str, Entry]]:
        self.names()
        return list(self._entries.items())


def registered_by(owner: str) -> list[tuple[str, str]]:
    """(noun, name) of every entry ``owner`` (a plug-in) has registered, in every registry."""
    return [(table.noun, name) for table in ALL.values() for name, entry in table._entries.items() if entry.owner == owner]


RUN_TIME = "run time"  # the owner of a name registered by calling register_* directly (in Python, not a plug-in file)
# (origin, owner, listed plug-in?, names it registered, yields to run-time names?) of what is being imported
_loading: list[tuple] = []
_active: set[str] = set()  # the listed plug-ins of the config being validated (they may not clash)
displaced: set[str] = set()  # plug-ins some of whose names another plug-in has since taken over
_entry_points: dict[str, dict] = {}  # owner -> its record, the names it registered, its distribution
_entry_points_loaded = False


@contextmanager
def registering_as(origin: str, owner: str, listed: bool = False, active: bool = False, yields: bool = False):
    """Within this block, registrations are made on behalf of ``owner``; ``listed`` for a plug-in a
    config lists (another config's version may later replace its names); ``active`` while that
    config is being validated (its plug-ins may not clash with each other); ``yields`` for a
    results folder's kept copy: a name the caller registered at run time in this process (say,
    by importing the same plug-in before ``emrun.load_results``) is left as it is, not refused."""
    _loading.append((origin, owner, listed, set(), yields))
    displaced.discard(owner)
    if active:
        _active.add(owner)
    try:
        yield
    finally:
        _loading.pop()


def end_config() -> None:
    """The config's plug-ins are imported: from now on another config's version may replace them."""
    _active.clear()


def begin_config() -> None:
    """A config is about to import its plug-ins: forget the names earlier configs' plug-ins
    registered in this process (a config sees emrun, installed entry points and its own plug-ins)."""
    _active.clear()
    displaced.clear()
    for table in ALL.values():
        table.forget()


def load_entry_points() -> None:
    """Import every installed package's ``emrun.plugins`` entry point, once per process. An entry
    point names a module (importing it registers) or a function (called with no arguments)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib import metadata

    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(point, "dist", None)
        owner = f"entry point {point.name}"
        record = {"entry_point": point.name, "distribution": dist.name if dist else None,
                  "version": dist.version if dist else None}
        _entry_points[owner] = {"record": record, "names": set(), "dist": dist}
        try:
            with registering_as(f"{owner} ({record['distribution']} {record['version']})", owner):
                loaded = point.load()
                if callable(loaded) and not isinstance(loaded, types.ModuleType):
                    loaded()
        except RegistryError:
            raise
        except Exception as error:
            raise RegistryError(f"{owner} of {record['distribution']} failed to load: {type(error).__name__}: {error}") from None


def entry_points_using(names: set[str]) -> list[dict]:
    """The loaded entry points that registered any of ``names``, with their distributions."""
    return [point for point in _entry_points.values() if point["names"] & names]


FAMILIES = Registry("model family", "emrun.models:BUILT_IN")
ALGORITHMS = Registry("algorithm", "emrun.algorithms:BUILT_IN")
ACCELERATORS = Registry("accelerator", "emrun.models.bernoulli:ACCELERATORS")  # names "family/algorithm"
INIT_SCHEMES = Registry("init scheme", "emrun.inits:BUILT_IN")
KINDS = Registry("experiment kind", "emrun.kinds:BUILT_IN")
CLAIMS = Registry("claim", "emrun.report.row_claims:BUILT_IN")
ARTEFACTS = Registry("published artefact", "emrun.report.row_claims:ARTEFACTS")
TRIAL_REPORTS = Registry("trial report layout", "emrun.kinds.trials:REPORT_LAYOUTS")
SECTIONS = Registry("report section")  # plug-in sections of a grid report (emrun.report.sections); none built in
CHECKS = Registry("theory check", "emrun.kinds.theory:BUILT_IN")
STUDIES = Registry("dynamics study", "emrun.kinds.dynamics:BUILT_IN")

ALL = {registry.noun: registry for registry in (KINDS, FAMILIES, ALGORITHMS, INIT_SCHEMES, CLAIMS, ACCELERATORS,
                                                 ARTEFACTS, TRIAL_REPORTS, SECTIONS, CHECKS, STUDIES)}
