"""REPORT.md, the index of every results folder's verdicts: built from the folders'
``verdicts.json`` files alone (so a clone that holds no rows rebuilds it), each finding counted
once (:mod:`emrun.report.counting`)."""

from __future__ import annotations

import json
from pathlib import Path

from emrun.files import write_text
from emrun.store import StoreError, read_manifest, result_folders

INDEX = "REPORT.md"
VERDICTS = "verdicts.json"


def _judges_current_config(folder: Path, entry: object) -> bool:
    """Whether a verdicts.json was written for the config the folder holds now (a sweep --replace
    that stopped before its first batch leaves the replaced config's verdicts beside the new manifest)."""
    try:
        return isinstance(entry, dict) and entry.get("config_hash") == read_manifest(folder)["config_hash"]
    except StoreError:
        return False


def index_is_current(root: Path) -> bool:
    """Whether ``root/REPORT.md`` says what the folders' verdicts.json files say now (a report
    stopped after writing a folder's files, before the index, leaves it behind them)."""
    path = Path(root) / INDEX
    return not path.is_file() or path.read_text() == index_text(root)


def write_index(root: Path) -> Path:
    """Write ``root/REPORT.md`` (:func:`index_text`), atomically."""
    path = Path(root) / INDEX
    write_text(path, index_text(root))
    return path


def index_text(root: Path) -> str:
    """``root/REPORT.md``: every folder's verdicts and headlines, read from its verdicts.json, and
    the counts by source (paper claims, extensions, checks), each finding once."""
    from emrun.criteria import KIND_NAMES
    from emrun.report.counting import count_findings, multiplicity_lines

    entries, stale, scratch = [], [], []
    project = project_config_names(Path(root))
    for folder in result_folders(root):
        if project is not None and folder.name not in project:
            scratch.append(folder.name)
            continue
        path = folder / VERDICTS
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # no report yet, or a damaged verdict file: the folder is not indexed
        if not _judges_current_config(folder, entry):
            stale.append(f"- `{folder.name}`: its `verdicts.json` judges config hash {entry.get('config_hash')}, not the "
                         "config its manifest now holds; 'emrun report' rewrites it once the sweep has stored rows.")
            continue
        entries.append(entry)
    counted = count_findings(entries)
    lines = ["# emrun results", "",
             f"The verdicts of the {len(entries)} results folder{'' if len(entries) == 1 else 's'} below, read from each "
             "folder's `verdicts.json` "
             "(`emrun report` rebuilds this index). Each folder's report gives every verdict's criterion, its source and "
             "its criterion record, and the commands that produced its rows.", ""]
    lines += counted.summary_lines() + multiplicity_lines(counted) + [""]
    for entry in entries:
        lines += [f"## [{entry['folder']}]({entry['folder']}/report.md)", "", entry["title"], ""]
        if not entry["complete"]:
            lines += [f"**Incomplete: {entry['stored_batches']} of {entry['planned_batches']} planned batches stored.**", ""]
        for verdict in entry["verdicts"]:
            where = "" if verdict["folder"] == entry["folder"] else f" (rows of `{verdict['folder']}`)"
            kind = KIND_NAMES.get((verdict.get("source") or {}).get("kind"), "source not recorded")
            changed = " **criterion changed after its rows**" if (verdict.get("record") or {}).get("changed_after_rows") \
                else ""
            lines.append(f"- **{verdict['claim']}**: {verdict['status']}{where}; {kind}{changed}"
                         f"{counted.note_for(entry['folder'], verdict)}.")
        lines += ["", *entry["headlines"]] if entry["headlines"] else []
        lines.append("")
    if stale:
        lines += ["## Not indexed: verdicts of another config", "", *stale, ""]
    if scratch:
        lines += ["## Not indexed: studies of configs outside the project", "",
                  f"These folders hold rows of configs not found under `configs/` or `examples/` (scratch studies); "
                  "each has its own report, and none is counted above: "
                  f"{', '.join(f'`{name}`' for name in scratch)}.", ""]
    return "\n".join(lines)


def project_config_names(root: Path) -> set[str] | None:
    """The config names of the project whose results ``root`` holds: the YAML files under
    ``configs/`` and ``examples/`` beside it. None when there is no ``configs/`` there (a results
    root of one's own), and every folder is indexed."""
    project = Path(root).resolve().parent
    if not (project / "configs").is_dir():
        return None
    return {path.stem for folder in ("configs", "examples") for path in (project / folder).rglob("*.yaml")}
