"""Results on disk: one Parquet file per batch, a manifest with the config and its provenance.

Layout of ``<root>/<config name>/``:
  manifest.json        config as run, its hash, and one provenance entry per sweep (committed)
  batches/<id>.parquet the rows of one batch, written atomically (temp file + rename; ignored by git)
  traces/<id>.parquet  the recorded iterates of that batch's runs, if the config records any;
                       written before the batch file, so a stored batch always has its traces

A batch file either exists whole or not at all, so the set of files is the index of finished
batches. A folder never mixes configs: a sweep with a different config hash is refused.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "manifest.json"
BATCHES = "batches"
TRACES = "traces"
HASH_KEY = b"emrun.config_hash"
TIMING_COLUMNS = ("batch_seconds",)  # the only row values that differ between identical runs


@dataclass
class BatchResult:
    """What one batch produces: its trial rows and, optionally, its traces (tidy long table)."""

    rows: list[dict]
    traces: pd.DataFrame | None = None


class StoreError(RuntimeError):
    """A results folder that cannot be used as asked; the message says why and what to do."""


def _write_atomically(path: Path, write) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(temporary)
    os.replace(temporary, path)


def _write_json(path: Path, value: Any) -> None:
    _write_atomically(path, lambda p: p.write_text(json.dumps(value, indent=2, sort_keys=False) + "\n"))


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
    def open(cls, root: Path, config_values: dict, config_hash: str, replace: bool = False) -> ResultStore:
        """Open (creating if needed) the folder of a config; refuse one holding another config."""
        store = cls(Path(root) / config_values["name"], config_values, config_hash)
        manifest = store.read_manifest()
        if manifest is not None and manifest.get("config_hash") != config_hash:
            if not replace:
                raise StoreError(
                    f"{store.folder} holds results of another version of config '{config_values['name']}' "
                    f"(hash {manifest.get('config_hash')}, this one is {config_hash}). Rows of two configs are "
                    "never mixed: run with --replace to discard the old rows, or give --results another folder."
                )
            for old in [*store.batches.glob("*.parquet"), *(store.folder / TRACES).glob("*.parquet")]:
                old.unlink()
            manifest = None
        store.batches.mkdir(parents=True, exist_ok=True)
        if manifest is None:
            _write_json(store.folder / MANIFEST, {"config_hash": config_hash, "config": config_values, "sweeps": []})
        return store

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
        """Ids of the batches stored whole for this config; unreadable files are set aside."""
        done = set()
        for path in sorted(self.batches.glob("*.parquet")):
            try:
                stored_hash = pq.read_schema(path).metadata.get(HASH_KEY, b"").decode()
            except (OSError, pa.ArrowInvalid, AttributeError) as error:
                self._set_aside(path, f"unreadable ({error})")
                continue
            if stored_hash != self.config_hash:
                self._set_aside(path, f"written by config hash {stored_hash or 'unknown'}")
                continue
            done.add(path.stem)
        return done

    def _set_aside(self, path: Path, reason: str) -> None:
        aside = self.folder / "set_aside"
        aside.mkdir(exist_ok=True)
        os.replace(path, aside / path.name)
        print(f"emrun: {path} is {reason}; moved to {aside}/ and its batch will run again", file=sys.stderr)

    def write_batch(self, batch_id: str, result: BatchResult | list[dict]) -> None:
        if not isinstance(result, BatchResult):
            result = BatchResult(result)
        if result.traces is not None:
            (self.folder / TRACES).mkdir(exist_ok=True)
            traces = self._stamped(pa.Table.from_pandas(result.traces, preserve_index=False))
            _write_atomically(self.folder / TRACES / f"{batch_id}.parquet", lambda p: pq.write_table(traces, p))
        table = self._stamped(pa.Table.from_pandas(pd.DataFrame(result.rows), preserve_index=False))
        _write_atomically(self.batches / f"{batch_id}.parquet", lambda p: pq.write_table(table, p))

    def _stamped(self, table: pa.Table) -> pa.Table:
        return table.replace_schema_metadata({**(table.schema.metadata or {}), HASH_KEY: self.config_hash.encode()})


def add_reference_columns(rows: pd.DataFrame) -> pd.DataFrame:
    """Add ``ref_loss`` and ``likelihood_ratio`` = exp(ref_loss - loss) to trial rows.

    Population data: the reference is the entropy of the truth, the exact optimum. Sample data:
    the lowest finite loss any run of the config reached on the same data set (same m, D, truth
    and sample size); the empirical entropy stays beside it in ``entropy``. A diverged run
    (infinite loss) gets ratio 0.
    """
    rows = rows.copy()
    population = rows["data"] == "population"
    keys = ["m", "D", "truth_index", "data", "n_samples"]
    finite_loss = rows["loss"].where(np.isfinite(rows["loss"]))
    best = finite_loss.groupby([rows[k].fillna(-1) for k in keys]).transform("min")
    rows["ref_loss"] = np.where(population, rows["entropy"].astype(float), best)
    with np.errstate(over="ignore"):
        rows["likelihood_ratio"] = np.exp(np.minimum(rows["ref_loss"] - rows["loss"], 0.0))
    return rows


def load_results(path: str | Path) -> pd.DataFrame:
    """All trial rows of a results folder as one tidy DataFrame (one row per run)."""
    folder = Path(path)
    files = sorted((folder / BATCHES).glob("*.parquet"))
    if not files:
        raise StoreError(f"{folder} holds no results (no {BATCHES}/*.parquet); run 'emrun sweep' first")
    # One conversion to pandas; 'promote' unifies columns that are all null in some batches.
    table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
    rows = table.to_pandas().sort_values(["batch_id", "run_index"], ignore_index=True)
    return add_reference_columns(rows)


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
