"""Reports from stored results only: one report per results folder, its verdicts as JSON, and an index.

Each folder's experiment kind writes its report (:class:`ReportContext` in, :class:`ReportResult`
out). Beside report.md goes ``verdicts.json``: every verdict with its claim, status, criterion,
the folder whose rows decided it, the interval method, and whether that folder was complete.
``REPORT.md`` is built from those files alone, so it can be rebuilt on a clone that holds no rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import pandas as pd

from emrun.report.verdicts import FAILS, HOLDS, UNTESTABLE, Verdict
from emrun.store import has_rows, load_traces, read_manifest, result_folders

matplotlib.use("Agg")  # reports draw to files; set before any report module imports pyplot
INDEX = "REPORT.md"
VERDICTS = "verdicts.json"


@dataclass
class ReportResult:
    """What a report writer returns: the report's path, its verdicts, and headline lines for the
    index (each naming its criterion and the folder it comes from)."""

    path: Path
    verdicts: list[Verdict]
    headlines: list[str] = field(default_factory=list)


@dataclass
class Completeness:
    planned: int
    stored: int
    failed: pd.DataFrame

    @property
    def complete(self) -> bool:
        return self.stored >= self.planned


class ReportContext:
    """What a report writer may read: its folder's manifest and rows (failed trials apart), its
    traces, the rows of other folders under the same root (companions), and the command."""

    def __init__(self, folder: Path, root: Path, command: str, loaded: dict):
        self.folder, self.root, self.command = Path(folder), Path(root), command
        self._loaded = loaded  # folder -> (rows without failed, completeness): shared by all reports of a run
        self.manifest = read_manifest(folder)
        self.rows, self.completeness = self.rows_and_completeness(self.folder)

    @property
    def config(self) -> dict:
        return self.manifest["config"]

    @property
    def failed(self) -> pd.DataFrame:
        return self.completeness.failed

    def traces(self) -> pd.DataFrame:
        return load_traces(self.folder)

    def rows_of(self, folder: Path) -> pd.DataFrame:
        """Another folder's rows, failed trials left out (a companion of this report)."""
        return self.rows_and_completeness(Path(folder))[0]

    def rows_and_completeness(self, folder: Path) -> tuple[pd.DataFrame, Completeness]:
        if folder not in self._loaded:
            from emrun.config import from_manifest
            from emrun.store import read_rows

            config = from_manifest(read_manifest(folder)["config"], folder)
            kind = config.kind
            rows = kind.postprocess(read_rows(folder))
            failed = kind.failed_rows(rows)
            planned = {spec.batch_id for spec in kind.plan(config, rows if kind.adaptive else None)}
            stored = planned & set(rows["batch_id"].dropna())
            self._loaded[folder] = (rows[~failed].reset_index(drop=True),
                                    Completeness(len(planned), len(stored), rows[failed]))
        return self._loaded[folder]


def write_reports(folders: list[Path], root: Path, command: str) -> list[Path]:
    """Write each folder's report and verdicts, then the index ``root/REPORT.md``; return the paths."""
    from emrun.results import kind_of

    loaded: dict = {}
    written = []
    for folder in folders:
        ctx = ReportContext(folder, root, command, loaded)
        result = kind_of(folder).write_report(ctx)
        with result.path.open("a") as report:
            report.write("\n".join(completeness_lines(ctx.completeness)) + "\n")
        verdicts = [v.located(Path(folder).name, _complete(ctx, v.folder)) for v in result.verdicts]
        _write_verdicts(Path(folder), ctx, verdicts, result.headlines, result.path)
        written.append(result.path)
    written.append(write_index(root, command))
    return written


def _complete(ctx: ReportContext, name: str | None) -> bool:
    folder = ctx.folder if name in (None, ctx.folder.name) else ctx.root / name
    return ctx.rows_and_completeness(folder)[1].complete if has_rows(folder) else False


def _write_verdicts(folder: Path, ctx: ReportContext, verdicts: list[Verdict], headlines: list[str], report: Path) -> None:
    title = report.read_text().splitlines()[0].lstrip("# ")
    payload = {"folder": folder.name, "title": title, "config_hash": ctx.manifest["config_hash"],
               "complete": ctx.completeness.complete, "stored_batches": ctx.completeness.stored,
               "planned_batches": ctx.completeness.planned, "failed_trials": len(ctx.failed),
               "headlines": headlines, "verdicts": [v.as_dict() for v in verdicts]}
    (folder / VERDICTS).write_text(json.dumps(payload, indent=1) + "\n")


def completeness_lines(state: Completeness) -> list[str]:
    """Whether every planned batch is stored, and the failed trials (excluded from every table)."""
    lines = ["## Completeness", ""]
    if not state.complete:
        lines.append(f"**Incomplete: {state.stored} of {state.planned} planned batches are stored**; run the sweep command "
                     "above again to complete them (tables use the stored batches only).")
    else:
        lines.append(f"All {state.stored} planned batches are stored.")
    failed = state.failed
    if len(failed):
        shown = ", ".join(f"{r.batch_id}/{r.run_index}" for r in failed.head(5).itertuples())
        lines.append(f"**{len(failed)} failed trials** (an error or a NaN state; excluded from every table, counted "
                     f"here): {shown}{' ...' if len(failed) > 5 else ''}. Run the sweep again to retry only those.")
    else:
        lines.append("No failed trials.")
    return lines + [""]


def write_index(root: Path, command: str) -> Path:
    """``root/REPORT.md``: every folder's verdicts and headlines, read from its verdicts.json."""
    entries = []
    for folder in result_folders(root):
        path = folder / VERDICTS
        if path.exists():
            entries.append(json.loads(path.read_text()))
    counts = {status: sum(v["status"] == status for e in entries for v in e["verdicts"]) for status in (HOLDS, FAILS, UNTESTABLE)}
    lines = ["# emrun results", "",
             f"Written by `{command}` from the `verdicts.json` of the {len(entries)} results folders below; each report "
             "names the sweep commands that produced its rows.", "",
             f"Verdicts: {counts[HOLDS]} hold, {counts[FAILS]} do not hold, {counts[UNTESTABLE]} are not testable on "
             "the stored rows.", ""]
    for entry in entries:
        lines += [f"## [{entry['folder']}]({entry['folder']}/report.md)", "", entry["title"], ""]
        if not entry["complete"]:
            lines += [f"**Incomplete: {entry['stored_batches']} of {entry['planned_batches']} planned batches stored.**", ""]
        for verdict in entry["verdicts"]:
            where = "" if verdict["folder"] == entry["folder"] else f" (rows of `{verdict['folder']}`)"
            lines.append(f"- **{verdict['claim']}**: {verdict['status']}{where}.")
        lines += ["", *entry["headlines"]] if entry["headlines"] else []
        lines.append("")
    path = Path(root) / INDEX
    path.write_text("\n".join(lines))
    return path
