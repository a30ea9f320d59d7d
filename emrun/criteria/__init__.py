"""What a verdict judges, where the claim comes from, and the record of its criterion.

A claim emrun judges is declared as a :class:`ClaimSpec`: a stable id, the claim's wording, its
criterion (the decision rule, in words), its :class:`Source` (a paper's own claim with the quote,
its place and the setting the paper states; an extension of such a claim beyond that setting; or
a consistency check of emrun's own) and a criterion version that its author bumps, with a dated
reason, whenever the decision rule changes. Wording and code may change freely without a bump:
the version, not a hash of code, says whether the rule changed.

The declarations of each work live in one module of this package (``uai2019``, ``xu2024``,
``simplex``, ``lecture``), beside a function per report layout that lists what a config will be
judged on, from the config alone. A sweep records that list in the folder's manifest before any
row exists (:mod:`emrun.criteria.record`); a report judges with the criterion it is given now and
says when that differs from the recorded one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

HOLDS, FAILS, UNTESTABLE = "holds", "does not hold", "not testable"
PAPER, EXTENSION, CHECK = "paper", "extension", "check"
KIND_NAMES = {PAPER: "paper claim", EXTENSION: "extension of a paper's claim", CHECK: "consistency check"}


@dataclass(frozen=True)
class Source:
    """Where a claim comes from. For a paper's claim: the work, the place in it, the paper's own
    words and the setting the paper states them in. An extension is a paper's claim judged beyond
    that setting (``note`` says how). A check is emrun's own (``note`` says what it checks)."""

    kind: str
    work: str = ""
    place: str = ""
    quote: str = ""
    setting: str = ""
    note: str = ""

    def beyond(self, note: str) -> Source:
        """The same statement judged outside the paper's setting: an extension, saying how."""
        return replace(self, kind=EXTENSION, note=note)

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "work": self.work, "place": self.place, "quote": self.quote,
                "setting": self.setting, "note": self.note}

    def markdown(self) -> str:
        if self.kind == CHECK:
            return f"Source: consistency check ({self.note})." if self.note else "Source: consistency check."
        if not self.work:  # a plug-in claim that names no work
            return f"Source: {self.note or 'not given'}."
        quote = f': "{self.quote}"' if self.quote else ""  # a plug-in's source may give the place alone
        said = f"{self.work}, {self.place}{quote} (stated for: {self.setting})"
        if self.kind == EXTENSION:
            return f"Source: extension of {said}; here {self.note}."
        return f"Source: paper claim, {said}."


@dataclass(frozen=True)
class Work:
    """A paper (or lecture) whose claims emrun judges; makes its :class:`Source` entries."""

    title: str

    def says(self, place: str, quote: str, setting: str) -> Source:
        return Source(PAPER, self.title, place, quote, setting)


def check(note: str) -> Source:
    return Source(CHECK, note=note)


@dataclass(frozen=True)
class Change:
    """A later version of a criterion: when it was made and why (the record shows both)."""

    version: int
    date: str
    reason: str


@dataclass(frozen=True)
class ClaimSpec:
    """A declared claim. ``claim`` and ``criterion`` are templates filled in with the params
    (``{D}``, ``{threshold:g}``); ``identity`` names the params that say which claim this is
    (``D``, ``algorithm``): the others are criterion params, recorded and compared like the
    version. ``algorithms`` names the params whose values are the algorithms whose runs it judges
    (empty: every algorithm the rows hold)."""

    id: str
    claim: str
    criterion: str
    source: Source
    version: int = 1
    changes: tuple[Change, ...] = ()
    identity: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ()
    symmetric: bool = False  # its two identity params can be swapped: one finding (A against B, B against A)

    def key(self, params: dict) -> str:
        """The claim's identity in a record: its id and identity params."""
        named = ", ".join(f"{name}={_plain(params.get(name))}" for name in self.identity)
        return f"{self.id}[{named}]" if named else self.id

    def criterion_params(self, params: dict) -> dict:
        return {k: v for k, v in sorted(params.items()) if k not in self.identity}

    def _filled(self, params: dict) -> dict:
        """The params, with ``<name>_label`` (EM, GD, or a plug-in's own name) for each algorithm param."""
        labels = {f"{name}_label": algorithm_label(params[name]) for name in self.algorithms if name in params}
        return {**params, **labels}

    def text(self, params: dict) -> str:
        return self.claim.format_map(_Missing(self._filled(params)))

    def criterion_text(self, params: dict) -> str:
        """The criterion in words (a param an earlier version did not have stays as ``{name}``)."""
        return self.criterion.format_map(_Missing(self._filled(params)))

    def finding(self, params: dict) -> str:
        """The finding's identity when counting each finding once (a symmetric pair in one order)."""
        if not self.symmetric:
            return self.key(params)
        a, b = self.identity
        return self.key({a: min(str(params[a]), str(params[b])), b: max(str(params[a]), str(params[b]))})

    def reason(self, version: int) -> str:
        return next((c.reason for c in self.changes if c.version == version), "no reason recorded with the change")

    def verdict(self, status: str, evidence: str, params: dict | None = None, *, interval: str | None = None,
                source: Source | None = None, version: int | None = None, alternatives: tuple = ()):
        """A verdict on this claim (``version``: judged under an earlier version of the rule)."""
        params = dict(params or {})
        version = self.version if version is None else version
        return Verdict(self.text(params), status, evidence, self.criterion_text(params), interval,
                       id=self.id, key=self.key(params), params=_plain(self.criterion_params(params)), version=version,
                       source=(source or self.source).as_dict(), alternatives=tuple(alternatives),
                       change_reason=self.reason(version), finding=self.finding(params),
                       judges=tuple(params[name] for name in self.algorithms if name in params) or None,
                       symmetric=self.symmetric)

    def judged(self, holds: bool, evidence: str, *, interval: str | None = None, version: int | None = None,
               alternatives: tuple = (), **params):
        return self.verdict(HOLDS if holds else FAILS, evidence, params, interval=interval, version=version,
                            alternatives=alternatives)

    def untestable(self, why: str, *, interval: str | None = None, version: int | None = None,
                   alternatives: tuple = (), **params):
        return self.verdict(UNTESTABLE, why, params, interval=interval, version=version, alternatives=alternatives)


@dataclass(frozen=True)
class Declared:
    """A claim a config will be judged on, known before any row: spec, params and source (a
    paper's claim becomes an extension when the config leaves the paper's setting)."""

    spec: ClaimSpec
    params: dict = field(default_factory=dict)
    source: Source | None = None
    copy: dict | None = None  # a claim plug-in's: its file, hash, registered name and params (see entry)

    @property
    def key(self) -> str:
        return self.spec.key(self.params)

    def entry(self) -> dict:
        """What the record keeps of it. A claim plug-in's entry also names the kept copy of its file,
        so that a report can judge it under the recorded criterion once the file has changed."""
        entry = {"claim": self.spec.id, "version": self.spec.version,
                 "params": _plain(self.spec.criterion_params(self.params)),
                 "criterion": self.spec.criterion_text(self.params),
                 "source": (self.source or self.spec.source).kind}
        return {**entry, "copy": _plain(self.copy)} if self.copy else entry


@dataclass(frozen=True)
class Verdict:
    """A claim's status on stored rows, with its evidence and criterion. A declared claim
    (:class:`emrun.criteria.ClaimSpec`) also carries its id, record key, criterion params and
    version, its source, and ``alternatives``: the same claim judged under earlier versions or
    params of its criterion, so that the report can give the verdict under the recorded one."""

    claim: str
    status: str  # HOLDS, FAILS or UNTESTABLE
    evidence: str
    criterion: str = ""
    interval: str | None = None  # how the interval that decided it was computed, if one did
    folder: str | None = None  # the results folder whose rows decided it (filled in by the report)
    complete: bool | None = None  # whether that folder held every planned batch
    id: str | None = None  # the declared claim's id
    key: str | None = None  # its key in the criterion record (id and identity params)
    params: dict | None = None  # the criterion params it was judged with
    version: int | None = None  # the criterion version it was judged with
    source: dict | None = None  # emrun.criteria.Source as a dict
    record: dict | None = None  # the criterion record's entry for it (filled in by the report)
    runs: dict | None = None  # which runs decided it (filled in by the report; counting each finding once)
    counted: dict | None = None  # where REPORT.md counts it (filled in by the index)
    change_reason: str | None = None  # the reason given with its criterion's current version
    finding: str | None = None  # what it finds, for counting each finding once (the key, or a symmetric pair's)
    judges: tuple | None = None  # the algorithms whose runs it judges (None: every algorithm of the rows)
    symmetric: bool = False  # a comparison of two variants judged from either side (one finding)
    multiplicity: dict | None = None  # decided by a 95% interval or p < 0.05: {"kind", "status_at_99"}
    alternatives: tuple = field(default=(), compare=False)  # the same claim under earlier criteria

    @classmethod
    def judged(cls, claim: str, holds: bool, evidence: str, criterion: str = "", interval: str | None = None) -> Verdict:
        return cls(claim, HOLDS if holds else FAILS, evidence, criterion, interval)

    @classmethod
    def untestable(cls, claim: str, why: str, criterion: str = "", *, interval: str | None = None) -> Verdict:
        """Not testable on these rows, saying why; ``interval``: how the interval that failed to
        decide it was drawn (one containing 0, say), when one did."""
        return cls(claim, UNTESTABLE, why, criterion, interval)

    @property
    def holds(self) -> bool:
        return self.status == HOLDS

    def markdown(self) -> str:
        criterion = f" Criterion: {self.criterion}." if self.criterion else ""
        where = "" if self.complete is not False else " (from an incomplete folder: not all planned batches are stored)"
        evidence = self.evidence if self.evidence.endswith((".", "!", "?")) or not self.evidence else f"{self.evidence}."
        source = f" {Source(**self.source).markdown()}" if self.source else ""
        record = f" {flag(self)}" if self.record is not None else ""
        return f"- **{self.claim}**: {self.status}{where}. {evidence}{criterion}{source}{record}"

    def located(self, folder: str, complete: bool | None) -> Verdict:
        return replace(self, folder=self.folder or folder, complete=complete if self.complete is None else self.complete)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["alternatives"] = [{k: alt[k] for k in ("status", "evidence", "criterion", "version", "params")}
                               for alt in out["alternatives"]]
        return out

    @classmethod
    def from_dict(cls, values: dict) -> Verdict:
        known = {f for f in cls.__dataclass_fields__}
        given = {k: v for k, v in values.items() if k in known}
        given["alternatives"] = tuple(cls(claim=values["claim"], **alt) for alt in values.get("alternatives", ()))
        return cls(**given)


def day(timestamp: str | None) -> str:
    return (timestamp or "?")[:10]


def flag(verdict: Verdict) -> str:
    """The criterion record's sentence in a report (see emrun.criteria.record)."""
    record = verdict.record or {}
    if not record.get("recorded"):
        return f"Criterion record: none ({record.get('note', 'not recorded')})."
    if record["changed_after_rows"]:
        dates = ", ".join(f"{day(a['date'])} (version {a['from_version']} -> {a['to_version']}: {a['reason']})"
                          for a in record["amendments"]) or day(None)
        under = (f"under it, this claim {record['recorded_status']} ({record.get('recorded_evidence', '').rstrip('.')})"
                 if record.get("recorded_status") else record.get("recorded_evidence", ""))
        return (f"**Criterion changed after these rows were stored**: {dates}. The criterion recorded on "
                f"{day(record['recorded'])} (version {record['recorded_version']}): {record['recorded_criterion']}; "
                f"{under}.")
    if record["rows_before"]:
        return (f"Criterion first recorded on {day(record['recorded'])}, after these rows were stored "
                f"({record['how']}).")
    return f"Criterion recorded on {day(record['recorded'])}, before these rows."


class _Missing(dict):
    """Params for a template; a name they lack is left in the text as ``{name}``."""

    def __missing__(self, key: str) -> _Placeholder:
        return _Placeholder(key)


class _Placeholder(str):
    def __new__(cls, key: str) -> _Placeholder:
        return super().__new__(cls, "{" + key + "}")

    def __format__(self, spec: str) -> str:
        return str(self)


def algorithm_label(name: str) -> str:
    return name.upper() if name in ("em", "gd") else name


def _plain(value: Any) -> Any:
    """A JSON-plain copy (tuples as lists, numpy scalars as numbers) for records and comparisons."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
