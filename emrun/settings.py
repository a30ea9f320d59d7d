"""Typed, frozen configs: what a validated config says, as attributes rather than dict lookups.

The checker (:func:`emrun.config.validate` and each kind's ``validate``) builds the canonical
dict, whose hash names the rows. Each kind reads that dict into its settings type (the protocol
member ``settings``): the common keys' here, the grid kinds' here too (:class:`GridSettings`), a
kind's own beside the kind (theory, dynamics, segmentation), with its defaults filled in once, in
one place, rather than restated wherever a key is read. :meth:`Settings.hashed` gives the canonical dict back, key for
key and in the same order; :func:`emrun.config.validate` checks that round trip on every config
it validates, so the hashes cannot move through this layer.

Optional keys the canonical dict leaves out (a family's default EM update, an unset trace record,
options a config did not give) stay out of :meth:`~Settings.hashed` (``given`` lists the keys it
held), while their attributes hold the value in force. Nothing here can be changed after it is
built: lists become tuples and mappings read-only views.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

EMPTY: Mapping = MappingProxyType({})
K_CLUSTER_THRESHOLD = 5.0e-4  # a weight below this counts as zero (the default of k_cluster_threshold)


def none_given() -> Any:
    """An empty read-only mapping as a field's default (a dataclass refuses a mapping itself)."""
    return field(default_factory=lambda: EMPTY)


def freeze(value: Any) -> Any:
    """A read-only copy: mappings as read-only views, lists as tuples, all the way down."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    return value


def thaw(value: Any) -> Any:
    """The plain (JSON-shaped) value of a frozen one, as the canonical dict holds it."""
    if hasattr(value, "canonical"):
        return value.canonical()
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw(item) for item in value]
    return value


@dataclass(frozen=True)
class Settings:
    """The keys every config has (and the report-only ones). Keys the type has no attribute for (a
    plug-in kind's own, on a built-in settings type or on this one) are kept, frozen as given, in
    ``own``."""

    name: str = ""
    experiment: str = "grid"
    seed: int = 0
    description: str = ""
    plugins: tuple = ()  # records of the row plug-ins (file or module, sha256)
    claim_plugins: tuple = ()
    claims: tuple = ()  # report only: the claims the config declares ({claim: name, **params})
    baseline: str | None = None
    report_sections: tuple = ()
    companions: Mapping[str, str] = none_given()
    own: Mapping[str, Any] = none_given()
    given: tuple[str, ...] = ()  # the keys of the canonical dict, in its order

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> Settings:
        """The settings of a canonical dict (as validated, or as a manifest stores it). A partial
        dict (check-plugin's synthetic config, a test's) gets the defaults for the keys it lacks."""
        keys = _attributes_by_key(cls)
        own = {key: freeze(value) for key, value in values.items() if key not in keys}
        given = {keys[key]: cls.read(keys[key], value) for key, value in values.items() if key in keys}
        return cls(**given, **cls.filled(values), own=MappingProxyType(own), given=tuple(values))

    @classmethod
    def read(cls, attribute: str, value: Any) -> Any:
        """The typed value of one key (nested settings types read their own)."""
        return freeze(value)

    @classmethod
    def filled(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        """Attributes whose key the dict leaves out, with the value in force (a kind's defaults)."""
        return {}

    def hashed(self) -> dict[str, Any]:
        """The canonical dict: exactly the keys it held, in its order (its hash is the config's)."""
        by_key = _attributes_by_key(type(self))
        return {key: thaw(getattr(self, by_key[key]) if key in by_key else self.own[key]) for key in self.given}


def _attributes_by_key(settings_type: type) -> dict[str, str]:
    """Config key -> attribute of a settings type (a field's ``key`` metadata, else its name)."""
    return {f.metadata.get("key", f.name): f.name for f in fields(settings_type) if f.name not in ("own", "given")}


# --- the grid kinds (grid, first_k_cluster, theory, dynamics) ------------------------------------

@dataclass(frozen=True)
class Grid:
    """The cells' axes: m, D, algorithms, steps, inits, then any other axis (an algorithm's
    hyperparameter, an iteration cap ``<algorithm>_max_iter``, a truth option), in config order."""

    m: tuple[int, ...]
    D: tuple[int, ...]
    algorithm: tuple[str, ...]
    step: tuple[float, ...]
    init: tuple[str, ...]
    axes: Mapping[str, tuple] = none_given()

    def canonical(self) -> dict:
        return {"m": list(self.m), "D": list(self.D), "algorithm": list(self.algorithm), "step": list(self.step),
                "init": list(self.init), **thaw(self.axes)}


@dataclass(frozen=True)
class Data:
    """``population``, ``samples`` (n per batch) or a shipped ``dataset`` (name, threshold, classes)."""

    kind: str
    n: int | None = None
    name: str | None = None
    threshold: int | None = None
    classes: tuple[int, ...] | None = None

    def canonical(self) -> dict:
        if self.kind == "samples":
            return {"kind": "samples", "n": self.n}
        if self.kind == "dataset":
            return {"kind": "dataset", "name": self.name, "threshold": self.threshold,
                    "classes": None if self.classes is None else list(self.classes)}
        return {"kind": self.kind}


@dataclass(frozen=True)
class Stopping:
    max_iter: int
    tol: float

    def canonical(self) -> dict:
        return {"max_iter": self.max_iter, "tol": self.tol}


@dataclass(frozen=True)
class Record:
    """Per-iteration traces kept beside the rows."""

    quantities: tuple[str, ...]
    every: int = 1

    def canonical(self) -> dict:
        return {"quantities": list(self.quantities), "every": self.every}


@dataclass(frozen=True)
class TruthRule:
    """first_k_cluster: truths in blocks until ``until_k_cluster`` of them had a k-cluster GD run."""

    until_k_cluster: int
    block: int
    max: int

    def canonical(self) -> dict:
        return {"until_k_cluster": self.until_k_cluster, "block": self.block, "max": self.max}


def _read_grid(value: Mapping[str, Any]) -> Grid:
    fixed = ("m", "D", "algorithm", "step", "init")
    # .get: a claim may be judged with a partial config (check-plugin's synthetic one, a test's)
    return Grid(*(tuple(value.get(key, ())) for key in fixed), axes=freeze({k: v for k, v in value.items() if k not in fixed}))


# How the nested keys of a grid config are read into their types (the rest are frozen as given).
_GRID_READERS = {
    "grid": _read_grid,
    "data": lambda value: Data(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in value.items()}),
    "stopping": lambda value: MappingProxyType({name: Stopping(**rule) for name, rule in value.items()}),
    "record": lambda value: Record(tuple(value["quantities"]), value["every"]),
    "truths": lambda value: TruthRule(**value),  # first_k_cluster's rule (a count or mixtures otherwise)
}


def _family_default(model: str, offered: str) -> str | None:
    from emrun.registry import FAMILIES

    return getattr(FAMILIES.get(model), offered)[0] if model in FAMILIES else None


@dataclass(frozen=True)
class GridSettings(Settings):
    """A grid of cells crossed with truths (:class:`emrun.kinds.base.CellGrid`)."""

    model: str = "bernoulli"
    compare_to: str | None = None
    grid: Grid | None = None
    data: Data = Data("population")
    truths: int | tuple | TruthRule = 1  # a count, given mixtures ({pi, mu}), or first_k_cluster's rule
    truth: Mapping[str, Any] = none_given()  # truth options held fixed (a family's, e.g. separation)
    runs: Mapping[str, int] = none_given()  # per algorithm (em and gd always present, for old hashes)
    stopping: Mapping[str, Stopping] = none_given()
    k_cluster_threshold: float = K_CLUSTER_THRESHOLD
    init_options: Mapping[str, Any] = none_given()
    em_update: str | None = None  # the family's default when the config leaves it out
    gd_boundary: str | None = None
    record: Record | None = None

    @classmethod
    def read(cls, attribute: str, value: Any) -> Any:
        reader = _GRID_READERS.get(attribute)
        if reader is None or (attribute == "truths" and not isinstance(value, Mapping)):
            return super().read(attribute, value)  # a count, or given mixtures
        return reader(value)

    @classmethod
    def filled(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        model = values.get("model", "bernoulli")
        return {key: _family_default(model, offered) for key, offered in
                (("em_update", "em_updates"), ("gd_boundary", "boundary_rules")) if key not in values}

    @property
    def n_truths(self) -> int:
        """Truths per cell; for first_k_cluster the most it may draw."""
        truths = self.truths
        return truths.max if isinstance(truths, TruthRule) else truths if isinstance(truths, int) else len(truths)


def settings_of(values: Mapping[str, Any]) -> Settings:
    """The settings of a stored config (a manifest's) by its kind; the common keys typed alone when
    the kind is not registered in this process (a plug-in kind whose code was not run)."""
    from emrun.registry import KINDS

    kind = values.get("experiment", "grid")
    return KINDS.get(kind).settings(values) if kind in KINDS else Settings.from_values(values)
