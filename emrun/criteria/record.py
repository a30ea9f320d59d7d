"""The criterion record of a results folder: which criterion each claim was to be judged by,
recorded before the rows it judges, and every later change, dated.

It lives in the folder's manifest under ``criteria``:

- ``recorded``: claim key -> the criterion as first recorded (claim id, version, criterion params,
  wording, source kind), when, whether rows already existed then, and how it got there (declared
  at the folder's first sweep; added by a later sweep or report; reconstructed from history).
- ``amendments``: a list of changes, each with its date, the criterion before and after, and the
  reason the claim's author gave with the version bump.

A sweep records what its config declares; a report records what it judged but found no record
of, and every change from the last recorded state. Nothing is ever removed from a record, so a
verdict judged under a changed criterion always says so and gives the verdict under the recorded
one beside it (or says why that cannot be computed any more).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from emrun.criteria import Declared

DECLARED_AT_FIRST_SWEEP = "declared by the config at its folder's first sweep, before any row"
ADDED_BY_SWEEP = "declared by the config at a later sweep"
ADDED_BY_REPORT = "first judged by a report (no earlier record)"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def empty() -> dict:
    return {"recorded": {}, "amendments": []}


def of(manifest: dict) -> dict:
    """The manifest's record (a new, empty one if it has none)."""
    record = manifest.get("criteria")
    if not isinstance(record, dict) or not isinstance(record.get("recorded"), dict):
        return empty()
    record.setdefault("amendments", [])
    return record


def latest(record: dict, key: str) -> dict | None:
    """The criterion of ``key`` as last recorded: its first record with every amendment applied."""
    state = record["recorded"].get(key)
    for amendment in record["amendments"]:
        if amendment["key"] == key:
            state = {**(state or {}), **amendment["to"]}
    return state


def _same_rule(a: dict, b: dict) -> bool:
    return a.get("version") == b.get("version") and a.get("params") == b.get("params")


def note(record: dict, entries: dict[str, dict], when: str, rows_exist: bool, how: str,
         reasons: dict[str, str] | None = None) -> bool:
    """Record ``entries`` (key -> :meth:`Declared.entry`): a key not yet recorded is added (with
    ``when``, whether rows existed and ``how``); a key whose rule differs from its last recorded
    state gets an amendment dated ``when``, with its reason. True if the record changed."""
    changed = False
    for key, entry in entries.items():
        state = latest(record, key)
        if state is None:
            record["recorded"][key] = {**entry, "recorded": when, "rows_before": bool(rows_exist), "how": how}
            changed = True
        elif not _same_rule(state, entry) and not rows_exist and not state.get("rows_before"):
            # Changed before any row was stored: nothing was judged under the old rule yet.
            record["recorded"][key] = {**record["recorded"][key], **entry, "recorded": when}
            changed = True
        elif not _same_rule(state, entry):
            record["amendments"].append({
                "key": key, "date": when, "rows_before": bool(rows_exist),
                "from": {k: state.get(k) for k in ("version", "params", "criterion")},
                "to": {k: entry[k] for k in ("version", "params", "criterion")},
                "reason": (reasons or {}).get(key, "no reason recorded with the change")})
            changed = True
    return changed


def note_declared(record: dict, declared: list[Declared], when: str, rows_exist: bool, first_sweep: bool) -> bool:
    """What a sweep records: every claim its config declares."""
    entries = {d.key: d.entry() for d in declared}
    reasons = {d.key: d.spec.reason(d.spec.version) for d in declared}
    return note(record, entries, when, rows_exist, DECLARED_AT_FIRST_SWEEP if first_sweep else ADDED_BY_SWEEP, reasons)


def note_judged(record: dict, verdicts: list, when: str) -> bool:
    """What a report records: the criterion of every verdict it judged on stored rows."""
    entries, reasons = {}, {}
    for v in verdicts:
        if v.key is None:
            continue
        entries[v.key] = {"claim": v.id, "version": v.version, "params": v.params,
                          "criterion": v.criterion, "source": (v.source or {}).get("kind")}
        reasons[v.key] = v.change_reason or "no reason recorded with the change"
    return note(record, entries, when, True, ADDED_BY_REPORT, reasons)


def audit(verdict, record: dict, earlier: Callable[[dict], Any] | None = None):
    """``verdict`` with its record: when its criterion was recorded and whether before its rows;
    if the criterion it was judged by differs from the recorded one, the dated changes and the
    verdict under the recorded criterion (from the verdict's alternatives, else ``earlier(first
    record)``: a claim plug-in's kept copy judging again), or why there is none."""
    if verdict.key is None:
        return replace(verdict, record={"recorded": None, "note": "not a declared claim: no criterion record"})
    first = record["recorded"].get(verdict.key)
    if first is None:
        return replace(verdict, record={"recorded": None, "note": "no criterion record for this claim"})
    mine = {"version": verdict.version, "params": verdict.params}
    changes = [a for a in record["amendments"] if a["key"] == verdict.key]
    out = {"recorded": first["recorded"], "rows_before": first.get("rows_before", False), "how": first.get("how"),
           "recorded_version": first.get("version"), "recorded_params": first.get("params"),
           "recorded_criterion": first.get("criterion"),
           "changed_after_rows": not _same_rule(first, mine),
           "amendments": [{"date": a["date"], "from_version": a["from"].get("version"),
                           "to_version": a["to"].get("version"), "reason": a["reason"]} for a in changes]}
    if out["changed_after_rows"]:
        before = next((alt for alt in verdict.alternatives
                       if _same_rule(first, {"version": alt.version, "params": alt.params})), None)
        if before is None and earlier is not None:
            before = earlier(first)
        if before is not None:
            out.update(recorded_status=before.status, recorded_evidence=before.evidence)
        elif first.get("status_then"):
            then = first["status_then"]
            out.update(recorded_status=then["status"], recorded_evidence=(
                f"as judged under it by the code of commit {then['commit']}, on rows of the same config (that code is "
                "no longer in emrun)"))
        else:
            out.update(recorded_status=None, recorded_evidence=(
                f"the recorded criterion (version {first.get('version')}) can no longer be computed: "
                "emrun keeps only the current rule of this claim"))
    return replace(verdict, record=out)
