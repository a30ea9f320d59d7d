"""Counting findings for REPORT.md: each finding once, by where its claim comes from.

A verdict shown in several reports (a companion's verdicts repeated beside the paper's one-truth
protocol) is one finding: the one of the folder whose rows decided it. Two folders that judge the
same claim on the same runs, or one on a subset of the other's runs (recognised from the configs:
the same identity of each judged algorithm's runs, cells and truths contained in the other's), hold
one finding, counted under the folder with the larger set of runs. A paper's claim judged in the
paper's setting and the same claim judged beyond it are different findings (a paper claim and an
extension), so each kind is counted on its own.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from emrun.criteria import CHECK, EXTENSION, PAPER


def _contains(big: dict | None, small: dict | None) -> bool:
    """Whether the runs ``small`` describes are among those of ``big`` (same identities)."""
    if big is None or small is None or big.get("identity") != small.get("identity"):
        return False
    return (set(small.get("m", [])) <= set(big.get("m", [])) and set(small.get("D", [])) <= set(big.get("D", []))
            and (small.get("truths") or 0) <= (big.get("truths") or 0))


def _size(runs: dict | None) -> int:
    return 0 if runs is None else len(runs.get("m", [])) * len(runs.get("D", [])) * (runs.get("truths") or 0)


@dataclass
class Counted:
    """The findings, each under the (folder, verdict) that counts it; and for every other (folder,
    verdict) shown, where it is counted."""

    findings: dict = field(default_factory=dict)  # (deciding folder, finding, kind) -> verdict dict
    elsewhere: dict = field(default_factory=dict)  # (shown in folder, claim, deciding folder) -> counted folder

    def by_kind(self) -> dict[str, Counter]:
        out = {kind: Counter() for kind in (PAPER, EXTENSION, CHECK, None)}
        for (_, _, kind), verdict in self.findings.items():
            out[kind if kind in out else None][verdict["status"]] += 1
        return out

    def summary_lines(self) -> list[str]:
        lines = ["Findings, each counted once (a verdict repeated in another report, or judged in another folder on the "
                 "same runs or a subset of them, is counted under the folder whose rows decide it), by where the claim "
                 "comes from:", ""]
        counts = self.by_kind()
        plural = {PAPER: "paper claims", EXTENSION: "extensions of a paper's claim", CHECK: "consistency checks",
                  None: "verdicts whose source is not recorded (reports written before sources were)"}
        for kind in (PAPER, EXTENSION, CHECK, None):
            found = counts[kind]
            if found:
                lines.append(f"- {sum(found.values())} {plural[kind]}: {found['holds']} hold, {found['does not hold']} "
                             f"do not hold, {found['not testable']} not testable.")
        if not any(counts[kind] for kind in (PAPER, EXTENSION, CHECK, None)):
            lines.append("- none: no folder has a report for the config its manifest holds.")
        changed = sum(1 for v in self.findings.values() if (v.get("record") or {}).get("changed_after_rows"))
        late = sum(1 for v in self.findings.values() if (v.get("record") or {}).get("rows_before")
                   and not (v.get("record") or {}).get("changed_after_rows"))
        lines += ["", f"{changed} of these findings are judged under a criterion changed after their rows were stored, "
                  f"and {late} under one first recorded after their rows; each says so in its report, with the verdict "
                  "under the recorded criterion.", ""]
        return lines

    def note_for(self, folder: str, verdict: dict) -> str:
        where = self.elsewhere.get((folder, verdict["claim"], verdict["folder"]))
        return f" (counted under `{where}`: the same runs or a superset)" if where else ""


def count_findings(entries: list[dict]) -> Counted:
    """Each finding once, from every folder's verdicts.json (``entries``)."""
    shown = [(entry["folder"], verdict) for entry in entries for verdict in entry["verdicts"]]
    # One per deciding folder and finding first (a companion's verdicts repeated in another report).
    deciding: dict = {}
    for folder, verdict in shown:
        key = (verdict["folder"], verdict.get("finding") or verdict["claim"], (verdict.get("source") or {}).get("kind"))
        if key not in deciding or folder == verdict["folder"]:
            deciding[key] = verdict
    # Then a finding judged in two folders on the same runs, or on a subset, goes to the larger set.
    counted = Counted()
    order = sorted(deciding.items(), key=lambda item: (-_size(item[1].get("runs")), item[0][0]))
    for key, verdict in order:
        home = next((other for other in counted.findings if other[1:] == key[1:]
                     and _contains(counted.findings[other].get("runs"), verdict.get("runs"))), None)
        if home is None:
            counted.findings[key] = verdict
        else:
            counted.elsewhere[(key[0], verdict["claim"], key[0])] = home[0]
    for folder, verdict in shown:
        home = counted.elsewhere.get((verdict["folder"], verdict["claim"], verdict["folder"]))
        if home is not None:
            counted.elsewhere[(folder, verdict["claim"], verdict["folder"])] = home
    return counted


def multiplicity_lines(counted: Counted) -> list[str]:
    """How many decisions rest on an interval or a p-value, and which would change at 99%."""
    decided = [(key, v) for key, v in counted.findings.items() if (v.get("multiplicity") or {}).get("kind")]
    if not decided:
        return []
    flips = [(key, v) for key, v in decided if v["multiplicity"].get("status_at_99") not in (None, v["status"])]
    lines = ["**Multiplicity.** " + f"{len(decided)} of the counted findings are decided by a 95% interval or a test at "
             "p < 0.05; with that many, a few would be decided otherwise by chance alone. "
             + (f"{len(flips)} would change with a 99% interval (p < 0.01):" if flips else
                "None would change with a 99% interval (p < 0.01).")]
    lines += [f"- `{key[0]}`: **{v['claim']}**: {v['status']} at 95%, {v['multiplicity']['status_at_99']} at 99%."
              for key, v in flips]
    return lines + [""]
