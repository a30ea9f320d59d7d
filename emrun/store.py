"""Results on disk: one Parquet file per batch, a manifest with the config and its provenance.

Layout of ``<root>/<config name>/``:
  manifest.json        what defines the folder: the config as run, its hash and the criterion
                       record; rewritten only when one of them changes, so a sweep leaves the
                       committed file as it is (committed)
  sweeps.json          one entry per sweep on this machine (command, time, commit, machine,
                       packages, seconds), written when the sweep starts and when it ends
                       (ignored by git: running a sweep dirties no tracked file)
  provenance.json      the entries of the sweeps that produced the rows a report judged, written
                       by the report (committed: a fresh clone knows what produced its reports)
  batches/<id>.parquet the rows of one batch, written atomically (temp file + rename; ignored by
                       git), with page checksums so that bit rot inside a page is caught on read
  traces/<id>.parquet  the recorded iterates of that batch's runs, if the config records any;
                       written before the batch file, so a stored batch always has its traces
  plugins/             copies of the file plug-ins the config was run with (committed)
  set_aside/           batch files a sweep found damaged (re-run by it)

A batch file either exists whole or not at all, so the set of files is the index of finished
batches. A folder never mixes configs: a sweep with a different config hash is refused. The store
knows files only; whether a file's rows make sense is the caller's check (the experiment kind's).
Only a sweep moves files: reading never does, so a report is safe while a sweep runs.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emrun import faults
from emrun.batch import BatchResult
from emrun.files import (  # noqa: F401 (re-exported)
    WRITE_ADVICE,
    StoreError,
    StoreWriteError,
    refuse_links,
    write_atomically,
)
from emrun.locking import LOCK, locked  # noqa: F401 (LOCK re-exported)
from emrun.manifest import (  # noqa: F401 (re-exported: a folder's record is read through the store)
    HISTORY,
    MANIFEST,
    PROVENANCE,
    producing_entries,
    producing_sweeps,
    provenance,
    read_manifest,
    read_once,
    write_manifest,
)

BATCHES = "batches"
TRACES = "traces"
SET_ASIDE = "set_aside"
HASH_KEY = b"emrun.config_hash"
FAILED_KEY = b"emrun.failed_runs"  # run indices of the batch's failed trials, as JSON
CHECKSUM_KEY = b"emrun.page_checksums"  # present on files written with page checksums
TIMING_COLUMNS = ("batch_seconds", "worker")  # the only row values that differ between identical runs


@dataclass
class Scan:
    """The batch files of a folder: the readable tables of its config, the files excluded with why,
    and how many readable files were written without page checksums (read, but not verified)."""

    tables: dict[Path, pa.Table] = field(default_factory=dict)
    excluded: list[tuple[Path, str]] = field(default_factory=list)
    unverified: int = 0


def read_batch(path: Path, expected_hash: str | None, check: Callable[[pa.Table], str | None] | None = None):
    """(table, None) for a sound batch file of this config, or (None, why it is not)."""
    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as error:
        return None, f"unreadable ({str(error).splitlines()[0][:160]})"
    stored = (table.schema.metadata or {}).get(HASH_KEY, b"").decode()
    if expected_hash is not None and stored != expected_hash:
        return None, f"written by config hash {stored or 'unknown'}, not this folder's {expected_hash}"
    if "batch_id" in table.column_names:  # a file stored under another batch's name would count its rows twice
        others = {str(b) for b in table["batch_id"].to_pylist() if b is not None} - {path.stem}
        if others:
            return None, f"holds rows of batch {sorted(others)[0]}, not of its file name {path.stem}"
    problem = check(table) if check is not None else None
    return (None, problem) if problem else (table, None)


def scan(folder: str | Path, expected_hash: str | None, check: Callable[[pa.Table], str | None] | None = None) -> Scan:
    """Read and check every batch file of a folder; never moves one."""
    out = Scan()
    for path in sorted((Path(folder) / BATCHES).glob("*.parquet")):
        table, problem = read_batch(path, expected_hash, check)
        if problem:
            out.excluded.append((path, problem))
            continue
        out.tables[path] = table
        out.unverified += CHECKSUM_KEY not in (table.schema.metadata or {})
    return out


def rows_of(found: Scan) -> pd.DataFrame:
    """The scanned tables as one DataFrame ("permissive" unifies columns that are null in some)."""
    if not found.tables:
        return pd.DataFrame()
    return pa.concat_tables(list(found.tables.values()), promote_options="permissive").to_pandas()


def set_aside(folder: Path, path: Path, reason: str) -> None:
    """Move a batch file that cannot be trusted out of the way, saying so; its batch runs again
    (only a sweep calls this)."""
    aside = Path(folder) / SET_ASIDE
    aside.mkdir(exist_ok=True)
    os.replace(path, aside / path.name)
    print(f"emrun: {path}: {reason}; moved to {aside}/ and its batch runs again", file=sys.stderr)


def load_traces(path: str | Path) -> pd.DataFrame:
    """The recorded iterates of every stored batch of a results folder (long form: batch_id,
    run_index, iteration, quantity, component, feature, value)."""
    folder = Path(path)
    stored = {f.stem for f in (folder / BATCHES).glob("*.parquet")}
    files = sorted(f for f in (folder / TRACES).glob("*.parquet") if f.stem in stored)
    if not files:
        raise StoreError(f"{folder} holds no traces; add 'record:' to the config and run 'emrun sweep'")
    return pa.concat_tables([pq.read_table(f, page_checksum_verification=True) for f in files]).to_pandas()


def has_rows(folder: Path) -> bool:
    return any((Path(folder) / BATCHES).glob("*.parquet"))


def result_folders(root: Path) -> list[Path]:
    """Folders under ``root`` that hold a manifest."""
    return sorted(p.parent for p in Path(root).glob(f"*/{MANIFEST}"))


# --- a sweep's folder: lock, manifest, batch writes -----------------------------------------------

class ResultStore:
    """The results folder of one config, as a sweep uses it. ``check`` judges a batch file's rows
    (the kind's schema and value ranges); a file it refuses is set aside and its batch runs again."""

    def __init__(self, folder: Path, config_values: dict, config_hash: str,
                 check: Callable[[pa.Table], str | None] | None = None,
                 before_start: Callable[[dict, bool], None] | None = None):
        self.folder = Path(folder)
        self.before_start = before_start  # (manifest, rows already stored) -> None: may add to the manifest
        self.batches = self.folder / BATCHES
        self.config_values, self.config_hash, self.check = config_values, config_hash, check
        self.manifest: dict | None = None
        self._verified: dict[str, tuple] = {}  # file name -> (mtime_ns, size, failed runs) already read whole

    @classmethod
    @contextmanager
    def opened(cls, root: Path, config_values: dict, config_hash: str, sweep: dict, replace: bool = False,
               check: Callable[[pa.Table], str | None] | None = None,
               before_start: Callable[[dict, bool], None] | None = None):
        """The folder of a config, created if needed and locked for this sweep while in use; the
        sweep is recorded in the manifest as it starts, after ``before_start`` (manifest, whether
        rows are stored already) has added what the caller records before any row is written. A
        folder holding another config is refused (unless ``replace``)."""
        store = cls(Path(root) / config_values["name"], config_values, config_hash, check, before_start)
        folder = store.folder
        # A results folder may come from someone else: never write or delete through its links.
        refuse_links(folder, *(folder / sub for sub in (BATCHES, TRACES, SET_ASIDE, "plugins", "summaries")))
        try:
            store.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreWriteError(f"cannot create {store.folder} ({error.strerror or error}); {WRITE_ADVICE}") from None
        with locked(store.folder, sweep["command"]):
            store._prepare(replace)
            store._start_sweep(sweep)
            yield store

    def _prepare(self, replace: bool) -> None:
        try:
            manifest = read_manifest(self.folder) if (self.folder / MANIFEST).exists() else None
        except StoreError as damage:
            manifest = self._rebuilt_manifest(damage)
        kept = {}
        if manifest is not None and manifest["config_hash"] != self.config_hash:
            if not replace:
                old, new = manifest.get("config", {}), self.config_values
                keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                differ = f"; they differ in {', '.join(keys)}" if keys else ""
                raise StoreError(
                    f"{self.folder} holds results of another version of config '{self.config_values['name']}' "
                    f"(hash {manifest['config_hash']}, this one is {self.config_hash}{differ}). Rows of two configs are "
                    "never mixed: run with --replace to discard the old rows, or give --results another folder.")
            for old in [*self.batches.glob("*.parquet"), *(self.folder / TRACES).glob("*.parquet")]:
                old.unlink()
            # The rows go, the criterion record stays: a criterion recorded once rows existed was chosen
            # having seen rows, and replacing them must not make it look recorded before any.
            if isinstance(manifest.get("criteria"), dict):
                replaced = {"config_hash": manifest["config_hash"],
                            "had_rows": any(sweep.get("batches_completed") for sweep in manifest.get("sweeps", []))}
                kept = {"criteria": {**manifest["criteria"],
                                     "replaced": [*manifest["criteria"].get("replaced", []), replaced]}}
            manifest = None
        self.batches.mkdir(parents=True, exist_ok=True)
        # Temporary files of a process killed mid-write (we hold the lock: nobody else is writing).
        for leftover in [*self.folder.glob(".*.tmp"), *self.batches.glob(".*.tmp"), *(self.folder / TRACES).glob(".*.tmp")]:
            leftover.unlink(missing_ok=True)
        self.manifest = manifest or {"config_hash": self.config_hash, "config": self.config_values, "sweeps": [], **kept}
        self.manifest["config"] = self.config_values  # same hash; the keys the report reads may have changed

    def _rebuilt_manifest(self, damage: StoreError) -> dict | None:
        """A damaged manifest: rebuilt from this config when every batch file was written by it;
        else the sweep stops (its rows may be another config's)."""
        hashes = set()
        for path in self.batches.glob("*.parquet"):
            try:
                hashes.add((pq.read_schema(path).metadata or {}).get(HASH_KEY, b"").decode())
            except (OSError, pa.ArrowException):
                continue  # an unreadable file is set aside later
        if hashes - {self.config_hash}:
            raise StoreError(f"{damage}; its batch files were written by config hash {', '.join(sorted(hashes))}, so "
                             "it cannot be rebuilt from this config: move the folder aside or use --replace")
        print(f"emrun: {damage}; rebuilt it from this config (every batch file carries its hash "
              f"{self.config_hash}); earlier sweep records are lost", file=sys.stderr)
        return None

    def _start_sweep(self, sweep: dict) -> None:
        for earlier in self.manifest["sweeps"]:  # we hold the lock: an earlier one still "running" was killed
            if earlier.get("state") == "running":
                earlier["state"] = "killed"
        self.manifest["sweeps"].append({**sweep, "state": "running"})
        if self.before_start is not None:
            self.before_start(self.manifest, has_rows(self.folder))
        write_manifest(self.folder, self.manifest)

    def finish_sweep(self, summary: dict, state: str) -> None:
        """Record how the sweep ended; the manifest and history are rewritten from memory, so either
        deleted during the sweep comes back whole."""
        self.manifest["sweeps"][-1].update({**summary, "state": state})
        write_manifest(self.folder, self.manifest)

    def keep_file(self, relative: str, text: str) -> None:
        """Keep a small text file in the folder (a plug-in's copy), written atomically once."""
        path = self.folder / relative
        if not path.exists():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomically(path, lambda p: p.write_text(text))
            except OSError as error:
                raise StoreWriteError(f"cannot write {path} ({error.strerror or error}); {WRITE_ADVICE}") from None

    def finished_batches(self) -> set[str]:
        """Ids of the batches stored whole, sound, with no failed trial, for this config."""
        return {batch for batch, failed in self.stored_batches().items() if not failed}

    def stored_batches(self) -> dict[str, list[int]]:
        """Every sound stored batch of this config with the run indices of its failed trials. Each
        file is read whole once (page checksums verified, rows checked); a damaged file, one of
        another config, or one whose rows the check refuses is set aside, and its batch runs again."""
        stored = {}
        for path in sorted(self.batches.glob("*.parquet")):
            stat = path.stat()
            known = self._verified.get(path.name)
            if known is not None and known[:2] == (stat.st_mtime_ns, stat.st_size):
                stored[path.stem] = known[2]
                continue
            table, problem = read_batch(path, self.config_hash, self.check)
            if problem:
                set_aside(self.folder, path, problem)
                continue
            failed = json.loads((table.schema.metadata or {}).get(FAILED_KEY, b"[]"))
            self._verified[path.name] = (stat.st_mtime_ns, stat.st_size, failed)
            stored[path.stem] = failed
        return stored

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
            faults.oserror("batch")
            if traces is not None:
                (self.folder / TRACES).mkdir(exist_ok=True)
                trace_table = self._stamped(pa.Table.from_pandas(traces, preserve_index=False))
                write_atomically(self.folder / TRACES / path.name, lambda p: _write_parquet(trace_table, p))
                faults.checkpoint("trace_written")
            table = pa.Table.from_pandas(rows, preserve_index=False)
            for column, type_name in result.column_types.items():  # typed even when every value is missing
                if column in table.column_names:
                    table = table.set_column(table.column_names.index(column), column,
                                             table[column].cast(_arrow_type(type_name)))
            table = self._stamped(table, sorted(int(r) for r in failed))
            write_atomically(path, lambda p: _write_parquet(table, p), "batch_temp")
        except OSError as error:
            raise StoreWriteError(f"cannot write {path} ({error.strerror or error}); the batch is not stored. "
                                  f"Batches stored before it are intact: {WRITE_ADVICE}.") from None
        faults.checkpoint("batch_written", self.folder / MANIFEST)

    def _stamped(self, table: pa.Table, failed: list[int] | None = None) -> pa.Table:
        metadata = {**(table.schema.metadata or {}), HASH_KEY: self.config_hash.encode(), CHECKSUM_KEY: b"crc32"}
        if failed is not None:
            metadata[FAILED_KEY] = json.dumps(failed).encode()
        return table.replace_schema_metadata(metadata)


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, write_page_checksum=True)


def _arrow_type(name: str) -> pa.DataType:
    """"double", "string", ..., or "list<double>"."""
    if name.startswith("list<") and name.endswith(">"):
        return pa.list_(_arrow_type(name[5:-1]))
    return pa.type_for_alias(name)
