"""Results on disk: one Parquet file per batch, a manifest with the config and its provenance.

Layout of ``<root>/<config name>/``:
  manifest.json        config as run, its hash, and one provenance entry per sweep (committed)
  batches/<id>.parquet the rows of one batch, written atomically (temp file + rename; ignored by git)
  traces/<id>.parquet  the recorded iterates of that batch's runs, if the config records any;
                       written before the batch file, so a stored batch always has its traces
  plugins/             copies of the file plug-ins the config was run with (committed)

A batch file either exists whole or not at all, so the set of files is the index of finished
batches. A folder never mixes configs: a sweep with a different config hash is refused. The store
knows files only: what the rows mean is the experiment kind's business (:mod:`emrun.results`).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emrun import faults
from emrun.batch import BatchResult

MANIFEST = "manifest.json"
LOCK = ".lock"
BATCHES = "batches"
TRACES = "traces"
HASH_KEY = b"emrun.config_hash"
FAILED_KEY = b"emrun.failed_runs"  # run indices of the batch's failed trials, as JSON
TIMING_COLUMNS = ("batch_seconds", "worker")  # the only row values that differ between identical runs


class StoreError(RuntimeError):
    """A results folder that cannot be used as asked; the message says why and what to do."""


class StoreWriteError(StoreError):
    """Writing a batch failed (a full disk, a read-only folder): the sweep must stop."""


def _write_atomically(path: Path, write, point: str | None = None) -> None:
    """Write to a temporary name, then rename: the file exists whole or not at all. A failed
    write (a full disk) removes its temporary file and raises."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if point:
        faults.checkpoint(point)
    os.replace(temporary, path)


def _write_json(path: Path, value: Any) -> None:
    _write_atomically(path, lambda p: p.write_text(json.dumps(value, indent=2, sort_keys=False) + "\n"),
                      "manifest_temp")


def provenance(command: list[str]) -> dict[str, Any]:
    """Who and what produced a result: versions, commit, machine and command line."""
    packages = {}
    for name in ("emrun", "numpy", "scipy", "pandas", "pyarrow", "pyyaml", "click", "matplotlib"):
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
        "command": " ".join(command),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit or None,
        "git_dirty": dirty,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "packages": packages,
    }


class ResultStore:
    """The results folder of one config."""

    def __init__(self, folder: Path, config_values: dict, config_hash: str):
        self.folder = Path(folder)
        self.batches = self.folder / BATCHES
        self.config_values, self.config_hash = config_values, config_hash

    @classmethod
    @contextmanager
    def opened(cls, root: Path, config_values: dict, config_hash: str, command: str, replace: bool = False):
        """The folder of a config, created if needed and locked for this sweep while in use;
        refuse one holding another config (unless ``replace``)."""
        store = cls(Path(root) / config_values["name"], config_values, config_hash)
        store.folder.mkdir(parents=True, exist_ok=True)
        with store.locked(command):
            store._prepare(replace)
            yield store

    def _prepare(self, replace: bool) -> None:
        manifest = self.read_manifest()
        if manifest is not None and manifest.get("config_hash") != self.config_hash:
            if not replace:
                raise StoreError(
                    f"{self.folder} holds results of another version of config '{self.config_values['name']}' "
                    f"(hash {manifest.get('config_hash')}, this one is {self.config_hash}). Rows of two configs are "
                    "never mixed: run with --replace to discard the old rows, or give --results another folder."
                )
            for old in [*self.batches.glob("*.parquet"), *(self.folder / TRACES).glob("*.parquet")]:
                old.unlink()
            manifest = None
        self.batches.mkdir(parents=True, exist_ok=True)
        # Temporary files of a process killed mid-write (we hold the lock: nobody else is writing).
        for leftover in [*self.folder.glob(".*.tmp"), *self.batches.glob(".*.tmp"), *(self.folder / TRACES).glob(".*.tmp")]:
            leftover.unlink(missing_ok=True)
        if manifest is None:
            manifest = {"config_hash": self.config_hash, "config": self.config_values, "sweeps": []}
        elif manifest.get("config") != self.config_values:
            # Same hash, other keys the report reads (description, claims, baseline): record them.
            manifest["config"] = self.config_values
        else:
            return
        _write_json(self.folder / MANIFEST, manifest)

    def keep_file(self, relative: str, text: str) -> None:
        """Keep a small text file in the folder (a plug-in's copy), written atomically once."""
        path = self.folder / relative
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(path, lambda p: p.write_text(text))

    @contextmanager
    def locked(self, command: str):
        """Hold the folder's lock file (owner's pid, host, time, command) while a sweep writes.

        A second sweep on the folder is refused with a message naming the owner; a lock left by a
        process that no longer exists on this host is taken over.
        """
        path = self.folder / LOCK
        owner = {"pid": os.getpid(), "host": platform.node(), "command": command,
                 "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        for _ in range(2):
            try:
                descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = _read_lock(path)
                if holder is None:  # perhaps being written this instant: look again
                    time.sleep(0.2)
                    holder = _read_lock(path)
                if holder is not None and _alive(holder):
                    raise StoreError(
                        f"{self.folder} is being written by another emrun sweep (pid {holder.get('pid')} on "
                        f"{holder.get('host')}, since {holder.get('since')}: {holder.get('command')}). Wait for it to "
                        f"finish; if that process is gone, delete {path}.") from None
                print(f"emrun: taking over the stale lock {path} (pid {holder.get('pid') if holder else '?'} "
                      "is not running)", file=sys.stderr)
                path.unlink(missing_ok=True)
                continue
            with os.fdopen(descriptor, "w") as handle:
                json.dump(owner, handle)
            break
        try:
            yield
        finally:
            if _read_lock(path) == owner:
                path.unlink(missing_ok=True)

    def read_manifest(self) -> dict | None:
        path = self.folder / MANIFEST
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            raise StoreError(f"{path} is not valid JSON; move it aside to start this folder afresh") from None

    def record_sweep(self, entry: dict) -> None:
        manifest = self.read_manifest() or {"config_hash": self.config_hash, "config": self.config_values, "sweeps": []}
        manifest["sweeps"].append(entry)
        _write_json(self.folder / MANIFEST, manifest)

    def finished_batches(self) -> set[str]:
        """Ids of the batches stored whole, with no failed trial, for this config; unreadable
        files and files of another config are set aside."""
        return {batch for batch, failed in self.stored_batches().items() if not failed}

    def stored_batches(self) -> dict[str, list[int]]:
        """Every stored batch of this config with the run indices of its failed trials."""
        stored = {}
        for path in sorted(self.batches.glob("*.parquet")):
            try:
                metadata = pq.read_schema(path).metadata or {}
            except (OSError, pa.ArrowInvalid) as error:
                self._set_aside(path, f"unreadable ({error})")
                continue
            stored_hash = metadata.get(HASH_KEY, b"").decode()
            if stored_hash != self.config_hash:
                self._set_aside(path, f"written by config hash {stored_hash or 'unknown'}")
                continue
            stored[path.stem] = json.loads(metadata.get(FAILED_KEY, b"[]"))
        return stored

    def _set_aside(self, path: Path, reason: str) -> None:
        set_aside(self.folder, path, reason)

    def write_batch(self, batch_id: str, result: BatchResult) -> None:
        """Store a batch's rows (and traces). Rows of a retry (``result.rows`` of some runs) replace
        the stored rows with the same ``run_index``; the file is rewritten whole, atomically. Raises
        StoreWriteError if the disk refuses."""
        rows = pd.DataFrame(result.rows)
        failed = set(result.failed_runs)
        traces = result.traces
        path = self.batches / f"{batch_id}.parquet"
        if path.exists():  # a retry of some runs: keep the others
            retried = rows["run_index"]
            failed |= set(self.stored_batches().get(batch_id, [])) - set(retried)
            old = pq.read_table(path).to_pandas()
            rows = pd.concat([old[~old["run_index"].isin(retried)], rows], ignore_index=True)
            rows = rows.sort_values("run_index", ignore_index=True)
            trace_path = self.folder / TRACES / path.name
            if traces is not None and trace_path.exists():
                old_traces = pq.read_table(trace_path).to_pandas()
                traces = pd.concat([old_traces[~old_traces["run_index"].isin(retried)], traces], ignore_index=True)
                traces = traces.sort_values(["run_index", "quantity", "iteration", "component", "feature"],
                                            ignore_index=True)
        try:
            faults.before_batch_write()
            if traces is not None:
                (self.folder / TRACES).mkdir(exist_ok=True)
                trace_table = self._stamped(pa.Table.from_pandas(traces, preserve_index=False))
                _write_atomically(self.folder / TRACES / path.name, lambda p: pq.write_table(trace_table, p))
                faults.checkpoint("trace_written")
            table = pa.Table.from_pandas(rows, preserve_index=False)
            for column, type_name in result.column_types.items():  # typed even when every value is missing
                if column in table.column_names:
                    table = table.set_column(table.column_names.index(column), column,
                                             table[column].cast(pa.type_for_alias(type_name)))
            table = self._stamped(table, sorted(int(r) for r in failed))
            _write_atomically(path, lambda p: pq.write_table(table, p), "batch_temp")
        except OSError as error:
            raise StoreWriteError(f"cannot write {path} ({error.strerror or error}); the batch is not stored. "
                                  "Batches stored before it are intact: free the space (or fix the folder) and "
                                  "run the same command to resume.") from None
        faults.checkpoint("batch_written")

    def _stamped(self, table: pa.Table, failed: list[int] | None = None) -> pa.Table:
        metadata = {**(table.schema.metadata or {}), HASH_KEY: self.config_hash.encode()}
        if failed is not None:
            metadata[FAILED_KEY] = json.dumps(failed).encode()
        return table.replace_schema_metadata(metadata)


def set_aside(folder: Path, path: Path, reason: str) -> None:
    """Move a batch file that cannot be trusted out of the way, saying so; its batch runs again
    at the next sweep (never silently read, never silently dropped)."""
    aside = Path(folder) / "set_aside"
    aside.mkdir(exist_ok=True)
    os.replace(path, aside / path.name)
    print(f"emrun: {path} is {reason}; moved to {aside}/ and its batch will run again at the next "
          f"'emrun sweep' of this config", file=sys.stderr)


def _read_lock(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _alive(holder: dict) -> bool:
    """Whether the lock's owner still runs (on another host we cannot tell, so assume it does)."""
    if holder.get("host") != platform.node():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError):
        return True
    return True


def read_rows(path: str | Path) -> pd.DataFrame:
    """Every stored row of a results folder as one DataFrame, in no particular order.

    A batch file that cannot be read, or that another config wrote, is set aside with a message
    (its batch runs again at the next sweep), never read."""
    folder = Path(path)
    expected = None
    if (folder / MANIFEST).exists():
        try:
            expected = json.loads((folder / MANIFEST).read_text()).get("config_hash")
        except json.JSONDecodeError:
            raise StoreError(f"{folder / MANIFEST} is not valid JSON; move it aside and run 'emrun sweep' again") from None
    tables = []
    for file in sorted((folder / BATCHES).glob("*.parquet")):
        try:
            table = pq.read_table(file)
        except (OSError, pa.ArrowInvalid) as error:
            set_aside(folder, file, f"unreadable ({error})")
            continue
        stored = (table.schema.metadata or {}).get(HASH_KEY, b"").decode()
        if expected is not None and stored != expected:
            set_aside(folder, file, f"written by config hash {stored or 'unknown'}, not this folder's {expected}")
            continue
        tables.append(table)
    if not tables:
        raise StoreError(f"{folder} holds no results (no readable {BATCHES}/*.parquet); run 'emrun sweep' first")
    # One conversion to pandas; "permissive" unifies columns that are null (a failed trial) in some batches.
    return pa.concat_tables(tables, promote_options="permissive").to_pandas()


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise StoreError(f"{folder} is not a results folder (no {MANIFEST})") from None
    except json.JSONDecodeError:
        raise StoreError(f"{path} is not valid JSON; move it aside and run 'emrun sweep' again") from None


def load_traces(path: str | Path) -> pd.DataFrame:
    """The recorded iterates of every stored batch of a results folder (long form: batch_id,
    run_index, iteration, quantity, component, feature, value)."""
    folder = Path(path)
    stored = {f.stem for f in (folder / BATCHES).glob("*.parquet")}
    files = sorted(f for f in (folder / TRACES).glob("*.parquet") if f.stem in stored)
    if not files:
        raise StoreError(f"{folder} holds no traces; add 'record:' to the config and run 'emrun sweep'")
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pandas()


def has_rows(folder: Path) -> bool:
    return any((Path(folder) / BATCHES).glob("*.parquet"))


def result_folders(root: Path) -> list[Path]:
    """Folders under ``root`` that hold a manifest."""
    return sorted(p.parent for p in Path(root).glob(f"*/{MANIFEST}"))
