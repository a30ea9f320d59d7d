"""``emrun status``: per results folder, what is stored and pending, and whether the folder still
matches the config file it was swept from. Status reads; it runs no code of a results folder or a
config unless the user asks (``--run-plugins``): without it, plug-ins are shown by path and hash."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from emrun import plugins
from emrun.config import ConfigError, load
from emrun.invocation import command as printed
from emrun.invocation import program
from emrun.registry import RegistryError


def status_lines(folder: Path, configs_dir: Path, run_plugins: bool = False, say=None) -> list[str]:
    """What ``emrun status`` prints about one results folder."""
    from emrun.locking import describe as lock_state
    from emrun.results import folder_config, stored
    from emrun.store import BATCHES, SET_ASIDE, has_rows, read_manifest

    manifest = read_manifest(folder)
    values, stored_hash = manifest["config"], manifest["config_hash"]
    lines = [f"{Path(folder).name} (config hash {stored_hash}; MATCH)"]
    try:
        _, config = folder_config(folder, run_plugins, say)
    except plugins.PluginsNotRun as error:
        files = sum(1 for _ in (Path(folder) / BATCHES).glob("*.parquet"))
        lines += [f"  run with plug-ins, not run by status: {'; '.join(map(plugins.describe_line, error.records))}",
                  f"  batches: {files} file(s) stored (not read: '{program()} status --run-plugins' runs the plug-ins to "
                  "check them and count what is pending)"]
        config = None
    if config is not None:
        kind = config.kind
        found = stored(folder, config=config) if has_rows(folder) else None
        rows = found.rows if found is not None else None
        planned = kind.plan(config, rows if kind.adaptive else None)
        present = set(rows["batch_id"]) if rows is not None else set()
        pending = [spec.batch_id for spec in planned if spec.batch_id not in present]
        lines += [f"  batches: {len(present)} stored, {len(pending)} pending of {len(planned)} planned",
                  *kind.status_lines(rows)]
        if rows is None and (Path(folder) / "report.md").is_file():
            lines.append(f"  report: {Path(folder) / 'report.md'} is there without its rows (rows are not committed: "
                         "a fresh clone has the reports only); the sweep writes the same rows again")
        if found is not None:
            lines += [f"  left out: {path.name}: {why} (the next sweep sets it aside and runs it again)"
                      for path, why in found.scan.excluded]
            if found.scan.unverified:
                lines.append(f"  {found.scan.unverified} file(s) without page checksums (written by an older emrun: "
                             "read, but bit rot inside them would go unnoticed)")
    # The config file runs no code of its own: with --run-plugins it is compared by way of the
    # folder's kept copies when it lists the same files (a manifest may point anywhere).
    kept = (Path(folder), plugins.kept_records(values)) if run_plugins and config is not None else None
    lines[0] = lines[0].replace("MATCH", match_with_config_file(manifest, Path(folder),
                                                                configs_dir / f"{values['name']}.yaml", kept))
    aside = list((Path(folder) / SET_ASIDE).glob("*")) if (Path(folder) / SET_ASIDE).is_dir() else []
    lines.append(f"  set aside: {len(aside)} file(s); lock: {lock_state(folder)}")
    return lines


def index_lines(roots: list[Path]) -> list[str]:
    """A line for each root whose REPORT.md no longer says what its folders' verdicts.json say."""
    from emrun.report import INDEX, index_is_current

    return [f"{Path(root) / INDEX} is behind the folders' verdicts.json (a report stopped before it rebuilt the "
            f"index): '{printed('report', '--results', str(root))}' rebuilds it" for root in roots if not index_is_current(root)]


def sweep_folder(folder: Path, results_root: str | None) -> Path | None:
    """The folder a sweep ran in, from the results folder and the ``--results`` it was given: a
    relative config path in the manifest is relative to it, wherever status runs from."""
    if results_root is None:
        return None
    root = Path(results_root)
    if root.is_absolute():
        return None  # the sweep's own folder is not recorded: only an absolute config path is known
    if ".." in root.parts:
        return None
    here = Path(os.path.abspath(folder))
    if here.parent.parts[len(here.parent.parts) - len(root.parts):] != root.parts:
        return None
    return here.parents[len(root.parts)]


def match_with_config_file(manifest: dict, folder: Path, fallback: Path, kept: tuple | None = None) -> str:
    """Does the folder still match the config it was swept from (with the same --set overrides)?
    If not, the command that re-runs it: the last sweep's own, with --replace, from the folder it
    ran in. The config's plug-ins never run here: a config that lists plug-ins is compared by their
    hashes, and in full only through ``kept`` (the folder and its plug-in records, whose copies the
    user chose to run; see :func:`emrun.config.validate`)."""
    last = next((s for s in reversed(manifest["sweeps"]) if isinstance(s, dict) and s.get("config_file")), None)
    config_file, base = fallback, None
    if last is not None:
        recorded = Path(str(last["config_file"]))
        base = sweep_folder(folder, last.get("results_root"))
        candidate = recorded if recorded.is_absolute() else base / recorded if base is not None else None
        if candidate is not None and candidate.is_file():
            # Shown as the sweep was given it when status runs where the sweep ran.
            config_file = recorded if base is not None and base == Path(os.getcwd()) else candidate
    overrides = tuple(last.get("overrides", ())) if last else ()
    if not config_file.is_file():
        return f"no {config_file} to compare with"
    with_overrides = " with " + " ".join(f"--set {o}" for o in overrides) if overrides else ""
    command = shlex.split(str(last["command"]))[1:] if last else ["sweep", str(config_file)]
    rerun = printed(*command, *([] if "--replace" in command else ["--replace"]))
    where = f" (from {base})" if base is not None and base != Path(os.getcwd()) else ""
    try:
        current = load(config_file, overrides, run_plugins=False, kept=kept).hash
    except plugins.PluginsNotRun as error:
        changed, gone = _changed_files(manifest["config"], error.records, plugins.ROWS)
        if changed or gone:
            return (f"DIFFERS from {config_file}{with_overrides}: its plug-ins differ ({', '.join(changed) or 'listed'}): "
                    f"'{rerun}'{where} re-runs it")
        claims, gone = _changed_files(manifest["config"], error.records, plugins.CLAIMS_ONLY)
        if claims or gone:
            return (f"{config_file}{with_overrides} lists the same plug-ins for the rows, but its claim plug-ins changed "
                    f"({', '.join(claims) or 'listed'}; not part of the config hash): '{printed(*command)}'{where} records "
                    "them and runs nothing, then the report judges with them")
        return (f"{config_file}{with_overrides} lists the same plug-ins; the rest is not compared (the folder's copies "
                f"of them would have to run: '{program()} status --run-plugins' compares all)")
    except (ConfigError, RegistryError) as error:
        return f"{config_file} does not load: {error}"
    if current == manifest["config_hash"]:
        return f"matches {config_file}{with_overrides}"
    return f"DIFFERS from {config_file}{with_overrides} (hash {current}): '{rerun}'{where} re-runs it"


def _changed_files(stored_config: dict, listed: list[dict], key: str) -> tuple[list[str], set]:
    """The files a config file lists under ``key`` whose text differs from the folder's record, and
    the recorded files it no longer lists."""
    recorded = stored_config.get(key, [])
    stored = {r.get("file"): r.get("sha256") for r in recorded if isinstance(r, dict) and "file" in r} \
        if isinstance(recorded, list) else {}
    mine = [r for r in listed if r.get("key") == key and "file" in r]
    return [r["file"] for r in mine if stored.get(r["file"]) != r["sha256"]], set(stored) - {r["file"] for r in mine}
