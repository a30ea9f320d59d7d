"""A results folder's record: ``manifest.json`` (the config as run, its hash, the criterion
record), ``sweeps.json`` (this machine's sweep history) and ``provenance.json`` (the sweeps that
produced the rows a report judged). :mod:`emrun.store` re-exports what is public here; the
layout of the folder is described there.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from emrun import faults
from emrun.files import WRITE_ADVICE, StoreError, StoreWriteError, write_atomically
from emrun.machine import compute_environment

MANIFEST = "manifest.json"
HISTORY = "sweeps.json"
PROVENANCE = "provenance.json"


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False) + "\n"


def _write_json(path: Path, value: Any) -> None:
    def write(target: Path) -> None:
        faults.oserror("manifest")
        target.write_text(_json_text(value))

    try:
        write_atomically(path, write, "manifest_temp")
    except OSError as error:
        raise StoreWriteError(f"cannot write {path} ({error.strerror or error}); {WRITE_ADVICE}") from None


def write_manifest(folder: str | Path, manifest: dict) -> None:
    """Write a folder's manifest (atomically; the caller holds the folder's lock): its sweeps to
    sweeps.json, the rest to manifest.json, and that only when it changed, so that a tracked
    manifest stays untouched by a sweep that changes nothing it records."""
    folder = Path(folder)
    forget(folder)  # first: a write that fails half-way leaves nothing stale behind
    defining = {key: value for key, value in manifest.items() if key != "sweeps"}
    try:
        unchanged = (folder / MANIFEST).read_text() == _json_text(defining)
    except (OSError, UnicodeDecodeError):
        unchanged = False
    if not unchanged:
        _write_json(folder / MANIFEST, defining)
    _write_json(folder / HISTORY, {"sweeps": manifest.get("sweeps", [])})


def forget(folder: str | Path) -> None:
    """Within :func:`read_once`: the next read of this folder's record goes to the disk."""
    if _read_once is not None:
        _read_once.pop(os.path.abspath(folder), None)


def _json_or_none(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def provenance(command: list[str]) -> dict[str, Any]:
    """Who and what produced a result: versions, commit, machine and command line."""
    packages = {}
    for name in ("emrun", "numpy", "scipy", "pandas", "pyarrow", "pyyaml", "click", "matplotlib", "numba", "llvmlite"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    try:
        repo = Path(__file__).resolve().parent.parent
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", False
    return {
        "command": shlex.join(command),  # quoted: it can be pasted back into a shell
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit or None,
        "git_dirty": dirty,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2),  # other work on the machine slows the sweep: its seconds need it
        "compute": compute_environment(),
        "packages": packages,
    }


# --- the manifest ----------------------------------------------------------------------------------

_read_once: dict[str, dict | StoreError] | None = None  # within read_once(): folder -> its manifest as first read


@contextmanager
def read_once() -> Iterator[None]:
    """Within it (one report run), each folder's manifest is read from disk once; later reads get a
    copy of the first. The run changes a manifest only through :func:`write_manifest`, after which
    the next read goes to the disk again, as does a read under the folder's lock (``fresh=True``)."""
    global _read_once
    outer, _read_once = _read_once, ({} if _read_once is None else _read_once)
    try:
        yield
    finally:
        _read_once = outer


def read_manifest(folder: str | Path, fresh: bool = False) -> dict:
    """A folder's manifest, checked: a mapping with the config hash, the config (a mapping with a
    name) and a list of sweeps. Anything else is a StoreError naming the file.

    The sweeps are this machine's history (sweeps.json); on a fresh clone, which has none, the
    committed provenance.json's; in a folder written before the history had a file of its own,
    the manifest's. A damaged history is read as missing (the next sweep rewrites it)."""
    if _read_once is None:
        return _read_manifest_file(folder)
    key = os.path.abspath(folder)
    if fresh or key not in _read_once:
        try:
            _read_once[key] = _read_manifest_file(folder)
        except StoreError as error:
            _read_once[key] = error
    found = _read_once[key]
    if isinstance(found, StoreError):
        raise found
    return copy.deepcopy(found)


def _read_manifest_file(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise StoreError(f"{folder} is not a results folder (no {MANIFEST})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StoreError(f"{path} is damaged (not readable JSON: {error})") from None
    problem = None
    if not isinstance(manifest, dict):
        problem = f"a {type(manifest).__name__}, not a mapping"
    elif not isinstance(manifest.get("config_hash"), str):
        problem = "no config hash"
    elif not isinstance(manifest.get("config"), dict) or not isinstance(manifest["config"].get("name"), str):
        problem = "no config"
    elif not isinstance(manifest.get("sweeps", []), list):
        problem = "its sweeps are not a list"
    if problem:
        raise StoreError(f"{path} is damaged ({problem})")
    legacy = manifest.pop("sweeps", None)
    for recorded in (_json_or_none(Path(folder) / HISTORY), {"sweeps": legacy},
                     _json_or_none(Path(folder) / PROVENANCE)):
        sweeps = recorded.get("sweeps") if isinstance(recorded, dict) else None
        if isinstance(sweeps, list) and all(isinstance(sweep, dict) for sweep in sweeps):
            manifest["sweeps"] = sweeps
            break
    else:
        manifest["sweeps"] = []
    return manifest


def producing_entries(sweeps: list[dict]) -> list[dict]:
    """The sweeps that wrote the rows now stored: from the last sweep that found no batch stored
    (a first run, a --replace, a run after the rows were removed) on, each that ran a batch (or was
    cut short before it could say), in order."""
    started = [i for i, s in enumerate(sweeps) if s.get("batches_skipped") == 0 and s.get("batches_completed") != 0]
    return [sweep for sweep in sweeps[max(started, default=0):] if sweep.get("batches_completed") != 0]


def producing_sweeps(sweeps: list[dict]) -> list[str]:
    """The commands of :func:`producing_entries`, each once, as ``emrun ...``."""
    commands: list[str] = []
    for sweep in producing_entries(sweeps):
        command = shlex.join(["emrun", *shlex.split(sweep["command"])[1:]])
        if command not in commands:
            commands.append(command)
    return commands


# --- reading batch files ----------------------------------------------------------------------------
