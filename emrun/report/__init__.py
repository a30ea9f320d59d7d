"""Reports from stored results only: one report per results folder, its verdicts as JSON, and an index.

Each folder's experiment kind writes its report (:class:`ReportContext` in, :class:`ReportResult`
out). Beside report.md goes ``verdicts.json``: every verdict with its claim, status, criterion,
the folder whose rows decided it, the interval method, and whether that folder was complete.
``REPORT.md`` is built from those files alone, so it can be rebuilt on a clone that holds no rows.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from emrun import faults
from emrun.files import write_text
from emrun.report.document import Document, as_document, render
from emrun.report.index import INDEX, VERDICTS, index_is_current, index_text, write_index  # noqa: F401 (the package's API)
from emrun.report.verdicts import Verdict
from emrun.store import StoreError, has_rows, load_traces, read_manifest, read_once
from emrun.summaries import read_summary, write_summary

os.environ.setdefault("MPLBACKEND", "Agg")  # reports draw to files (read when pyplot is first imported)


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
    excluded: list = field(default_factory=list)  # (path, why) of batch files left out of the rows

    @property
    def complete(self) -> bool:
        return self.stored >= self.planned


class ReportContext:
    """What a report writer may read: its folder's manifest and rows (failed trials apart), its
    traces, what it derives from other folders under the same root (companions), and the command."""

    def __init__(self, folder: Path, root: Path, command: str, loaded: dict, config=None):
        from emrun.results import folder_config

        self.folder, self.root, self.command = Path(folder), Path(root), command
        self._loaded = loaded  # folder -> (rows without failed, completeness): shared by all reports of a run
        if config is None:
            self.manifest, config = folder_config(folder)
        else:
            self.manifest = read_manifest(folder)
        self._config = config  # the folder's Config, its plug-ins (if the user let them run) imported
        self.rows, self.completeness = self.rows_and_completeness(self.folder)
        self.notices: list[str] = []  # printed by the command: a companion summary that could not be used
        self.companion_complete: dict[str, bool] = {}  # companion name -> were its rows complete
        self.judged: list[Verdict] = []  # the verdicts judged on this folder's own rows (recorded at the end)
        self.pending: dict[Path, Document | str] = {}  # what the writer handed over, written once, whole, at the end

    def write_report(self, path: Path, content: list | Document | str) -> None:
        """Hand over the report: its blocks (lines of Markdown and Verdicts, emrun.report.document),
        or a plug-in's finished text. It is rendered and written once, complete (notices,
        audited verdicts and Completeness in place) and atomically, after the writer returns."""
        self.pending[Path(path)] = as_document(content)

    def summary_of(self, folder: Path, name: str, summarise: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame | None:
        """``summarise(rows)`` of a companion folder. From its rows when they are stored, and then
        saved as its summary ``name`` (committed: a clone without rows reports the same); else
        from that saved summary. None, with a notice, when the summary is missing or stale."""
        folder = Path(folder)
        if has_rows(folder):
            rows, completeness = self.rows_and_completeness(folder)
            table, complete = summarise(rows), completeness.complete
            write_summary(folder, name, table, complete)
        else:
            try:
                table, complete = read_summary(folder, name)
            except StoreError as error:
                self.notices.append(f"{self.folder.name}: a companion section is left out: {error}")
                return None
        self.companion_complete[folder.name] = complete
        return table

    @property
    def config(self) -> dict:
        return self.manifest["config"]

    @property
    def settings(self):
        """The folder's config typed and frozen by its kind (:mod:`emrun.settings`), defaults filled in."""
        from emrun.settings import settings_of

        return settings_of(self.config)

    @property
    def record(self) -> dict:
        """The folder's criterion record (emrun.criteria.record)."""
        from emrun.criteria import record

        return record.of(self.manifest)

    def audit(self, verdicts: list[Verdict]) -> list[Verdict]:
        """Verdicts as a report shows them: each with the folder whose rows decided it, whether that
        folder was complete, its criterion record (recorded when, changed after the rows or not, the
        verdict under the recorded criterion) and the runs that decided it. Call it before rendering."""
        from emrun.criteria import record as criteria

        out = []
        for verdict in verdicts:
            located = verdict.located(self.folder.name, _complete(self, verdict.folder))
            own = located.folder == self.folder.name
            manifest = self.manifest if own else _manifest_of(self.root / located.folder)
            audited = criteria.audit(located, criteria.of(manifest or {}), self.judged_by_kept_copy if own else None)
            out.append(replace(audited, runs=_runs_of(manifest, audited)))
            if located.folder == self.folder.name:
                self.judged.append(audited)
        return out

    def judged_by_kept_copy(self, first: dict):
        """A claim plug-in's verdict under its recorded criterion: the copy of its file kept when the
        criterion was recorded, judging this folder's rows with the recorded params. Only when the
        folder's plug-ins were allowed to run (a report of a folder with claim plug-ins needs it)."""
        from emrun import plugins
        from emrun.report.claims import judged

        copy = first.get("copy")
        if not isinstance(copy, dict) or not self._config.plugins:
            return None
        try:
            kept = plugins.kept_copy(self.folder, copy)
            claim = plugins.claims_in(kept).get(copy.get("claim"))
        except plugins.PluginError as error:
            self.notices.append(f"{self.folder.name}: the recorded version of claim {copy.get('claim')} is not judged: {error}")
            return None
        if claim is None:
            return None
        self.notices.append(f"{self.folder.name}: claim {claim.name} judged under its recorded criterion by the kept copy "
                            f"{plugins.copy_name(kept.label, kept.sha256)}")
        from emrun.report.companions import declared_rows

        return judged(claim, self.rows, self.config, dict(copy.get("params") or {}), lambda: declared_rows(self))

    @property
    def failed(self) -> pd.DataFrame:
        return self.completeness.failed

    def traces(self) -> pd.DataFrame:
        return load_traces(self.folder)

    def rows_of(self, folder: Path) -> pd.DataFrame:
        """Another folder's rows, failed trials left out (a companion whose rows cannot be
        summarised: a report that needs them says so when they are not stored)."""
        return self.rows_and_completeness(Path(folder))[0]

    def rows_and_completeness(self, folder: Path) -> tuple[pd.DataFrame, Completeness]:
        if folder not in self._loaded:
            from emrun.registry import RegistryError
            from emrun.results import folder_config
            from emrun.results import stored as stored_rows

            try:  # a companion is read as data, in this folder's plug-in scope: its own plug-ins never run
                running = self.manifest["config"].get("plugins", []) if self._config.plugins else []
                config = self._config if folder == self.folder else folder_config(folder, fresh=False, running=running)[1]
            except RegistryError as error:
                raise StoreError(f"companion {folder.name} cannot be read: {error}") from None
            kind = config.kind
            found = stored_rows(folder, config=config)
            rows = found.rows
            failed = kind.failed_rows(rows)
            planned = {spec.batch_id for spec in kind.plan(config, rows if kind.adaptive else None)}
            stored = planned & set(rows["batch_id"].dropna())
            self._loaded[folder] = (rows[~failed].reset_index(drop=True),
                                    Completeness(len(planned), len(stored), rows[failed], found.scan.excluded))
        return self._loaded[folder]


def write_reports(folders: list[Path], root: Path, command: str, run_plugins: bool = False,
                  say: Callable[[str], object] | None = None) -> tuple[list[Path], list[tuple[Path, str]], list[str]]:
    """Write each folder's report and verdicts, then the index ``root/REPORT.md``. Each folder is
    reported in a plug-in scope of its own: the plug-ins of the folders before it are forgotten,
    and its own run only with ``run_plugins`` (``say`` tells which). Returns the paths written, the
    folders that could not be reported with why (the others are written anyway), and notices
    (batch files left out of a report)."""
    with read_once():  # each manifest read from disk once in this run
        return _write_reports(folders, root, command, run_plugins, say)


def _write_reports(folders: list[Path], root: Path, command: str, run_plugins: bool,
                   say: Callable[[str], object] | None) -> tuple[list[Path], list[tuple[Path, str]], list[str]]:
    from emrun.files import refuse_links
    from emrun.registry import RegistryError
    from emrun.results import folder_config
    from emrun.store import StoreError

    loaded: dict = {}
    written, problems, notices = [], [], []
    for folder in folders:
        started = time.perf_counter()
        try:
            refuse_links(Path(folder), Path(folder) / "summaries")
            _, config = folder_config(folder, run_plugins, say)  # forgets the previous folder's plug-ins
            loaded.pop(Path(folder), None)  # read as a companion before, in another folder's scope
            ctx = ReportContext(folder, root, command, loaded, config)
            result = config.kind.write_report(ctx) if len(ctx.rows) else _nothing_to_report(ctx)
        except (StoreError, RegistryError) as error:
            problems.append((Path(folder), str(error)))
            continue
        verdicts = [v if v.record is not None else ctx.audit([v])[0] for v in result.verdicts]
        notices += [f"{path} is left out of the report: {why}" for path, why in ctx.completeness.excluded] + ctx.notices
        notices += _record_judged(ctx)
        title = _finish_report(result, ctx, verdicts)
        _write_verdicts(Path(folder), ctx, verdicts, result.headlines, title)
        _write_provenance(Path(folder), ctx.manifest, {"command": command,
                                                      "seconds": round(time.perf_counter() - started, 2)})
        faults.checkpoint("report_written")
        written.append(result.path)
    written.append(write_index(root))
    return written, problems, notices


def _write_provenance(folder: Path, manifest: dict, report: dict) -> None:
    """provenance.json: the entries of the sweeps that produced the rows judged, and this report."""
    from emrun.store import PROVENANCE, producing_entries

    # The run's copy of the record stays: read from this file again (a clone without sweeps.json), its
    # sweeps would be the producing ones of those it holds, and the rest of the run reads only its hash.
    entries = producing_entries(manifest.get("sweeps", []))
    write_text(folder / PROVENANCE, json.dumps({"sweeps": entries, "report": report}, indent=2) + "\n")


def _finish_report(result: ReportResult, ctx: ReportContext, verdicts: list[Verdict]) -> str:
    """Completeness at the end; an incomplete folder says so under its title and in every verdict.
    The report is written here, once and whole; returns its title."""
    # A plug-in kind may have written its report itself (an older plug-in): read it back.
    content = ctx.pending.pop(result.path, None) or result.path.read_text()
    state = ctx.completeness
    notices = []
    overrides = _overrides(ctx.manifest)
    if overrides:  # the title's description is the config file's, which the --set values may contradict
        notices.append(f"Swept with {', '.join(f'`--set {o}`' for o in overrides)}: the settings stated below are what "
                       "ran, whatever the description in the title (the config file's) says.")
    if not state.complete:
        notices.append(f"**Incomplete: {state.stored} of {state.planned} planned batches are stored**; every table "
                       "and verdict below uses the stored batches only (see Completeness at the end).")
    text = render(content, result.verdicts, verdicts, notices)
    write_text(result.path, text.rstrip("\n") + "\n\n" + "\n".join(completeness_lines(state)))
    return text.splitlines()[0].lstrip("# ")


def _overrides(manifest: dict) -> list[str]:
    """The ``--set`` values of the sweeps that produced the rows, each once."""
    from emrun.store import producing_entries

    found: list[str] = []
    for sweep in producing_entries(manifest.get("sweeps", [])):
        found += [str(o) for o in sweep.get("overrides") or () if str(o) not in found]
    return found


def _manifest_of(folder: Path) -> dict | None:
    try:
        return read_manifest(folder)
    except StoreError:
        return None


def _runs_of(manifest: dict | None, verdict: Verdict) -> dict | None:
    """Which runs decided a verdict, from the deciding folder's config (not its name or bytes): the
    kind's identity of the runs of each algorithm the claim judges, and the cells and truths."""
    if manifest is None:
        return None
    from emrun.registry import KINDS

    values = manifest["config"]
    name = values.get("experiment", "grid")
    return KINDS.get(name).runs_judged(values, verdict) if name in KINDS else None


def _record_judged(ctx: ReportContext) -> list[str]:
    """Record in the folder's manifest the criterion of every verdict judged on its rows that has
    no record yet, and every change since the last record (dated today). A sweep holding the folder
    keeps the record as it is; the report says so."""
    from emrun.criteria import record as criteria
    from emrun.locking import locked
    from emrun.store import write_manifest

    if not len(ctx.rows):
        return []
    try:
        with locked(ctx.folder, ctx.command):
            manifest = read_manifest(ctx.folder, fresh=True)  # under the lock: what a sweep may have written since
            record = criteria.of(manifest)
            if criteria.note_judged(record, ctx.judged, criteria.now()):
                manifest["criteria"] = record
                write_manifest(ctx.folder, manifest)
    except StoreError as error:
        return [f"{ctx.folder.name}: the criterion record is not updated ({error})"]
    return []


def _nothing_to_report(ctx: ReportContext) -> ReportResult:
    """A folder whose every stored row is a failure: no table can be drawn, and no claim tested."""
    from emrun.report.common import header, provenance_section

    verdicts = [Verdict.untestable(spec["claim"], "no stored row is a finished run.")
                for spec in ctx.config.get("claims", [])]
    lines = header(ctx.config) + ["Every stored row records a failure, so there is nothing to tabulate yet; the failed "
                                  "trials are listed below.", "", *verdicts, ""]
    path = ctx.folder / "report.md"
    ctx.write_report(path, lines + provenance_section(ctx.manifest, [], ctx.command))
    return ReportResult(path, verdicts)


def _complete(ctx: ReportContext, name: str | None) -> bool:
    if name in (None, ctx.folder.name):
        return ctx.completeness.complete
    if name in ctx.companion_complete:
        return ctx.companion_complete[name]
    folder = ctx.root / name
    return ctx.rows_and_completeness(folder)[1].complete if has_rows(folder) else False


def _write_verdicts(folder: Path, ctx: ReportContext, verdicts: list[Verdict], headlines: list[str], title: str) -> None:
    payload = {"folder": folder.name, "title": title, "config_hash": ctx.manifest["config_hash"],
               "complete": ctx.completeness.complete, "stored_batches": ctx.completeness.stored,
               "planned_batches": ctx.completeness.planned, "failed_trials": len(ctx.failed),
               "headlines": headlines, "verdicts": [v.as_dict() for v in verdicts]}
    write_text(folder / VERDICTS, json.dumps(payload, indent=1) + "\n")


def completeness_lines(state: Completeness) -> list[str]:
    """Whether every planned batch is stored, and the failed trials (excluded from every table)."""
    lines = ["## Completeness", ""]
    if not state.complete:
        lines.append(f"**Incomplete: {state.stored} of {state.planned} planned batches are stored**; run the sweep command "
                     "above again to complete them (tables use the stored batches only).")
    else:
        lines.append(f"All {state.stored} planned batches are stored.")
    for path, why in state.excluded:
        lines.append(f"Left out: `{path.name}` {why}; the next sweep sets it aside and runs its batch again.")
    failed = state.failed
    if len(failed):
        shown = ", ".join(f"{r.batch_id}/{r.run_index}" for r in failed.head(5).itertuples())
        lines.append(f"**{len(failed)} failed trials** (an error or a NaN state; excluded from every table, counted "
                     f"here): {shown}{' ...' if len(failed) > 5 else ''}. Run the sweep again to retry only those.")
    else:
        lines.append("No failed trials.")
    return lines + [""]
