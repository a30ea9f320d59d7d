"""Stored results as tidy tables: the store's files, checked and prepared by the folder's
experiment kind (its schema and value ranges, its row order, its derived columns such as the
likelihood ratio of trial rows). Reading never moves a file: a batch file that fails its checks is
left in place, listed, and left out of the rows (the next sweep sets it aside and runs it again)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from emrun.store import Scan, StoreError, load_traces, read_manifest, rows_of, scan

__all__ = ["load_results", "load_traces", "kind_of", "Stored", "stored"]


def kind_of(folder: str | Path):
    """The experiment kind of a results folder (its manifest's config), with the folder's plug-ins
    imported so that a plug-in kind, family or claim is known."""
    from emrun.config import from_manifest

    manifest = read_manifest(folder)
    return from_manifest(manifest["config"], Path(folder)).kind


@dataclass
class Stored:
    """A folder's usable rows (prepared by its kind) and what its scan found."""

    rows: pd.DataFrame
    scan: Scan


def stored(path: str | Path) -> Stored:
    """The folder's rows and the files left out of them (with why). A folder whose every batch file
    is left out is a StoreError naming the first reason."""
    from emrun.config import from_manifest

    folder = Path(path)
    if not folder.is_dir():
        raise StoreError(f"{folder} does not exist")
    manifest = read_manifest(folder)
    kind = from_manifest(manifest["config"], folder).kind
    found = scan(folder, manifest["config_hash"], kind.batch_check(manifest["config"]))
    if not found.tables:
        if found.excluded:
            path, why = found.excluded[0]
            raise StoreError(f"every batch file of {folder} is left out ({len(found.excluded)}); {path.name}: {why}")
        raise StoreError(f"{folder} holds no rows yet (no batches/*.parquet); run 'emrun sweep' on its config")
    return Stored(kind.postprocess(rows_of(found)), found)


def load_results(path: str | Path) -> pd.DataFrame:
    """All rows of a results folder as one tidy DataFrame (for trials: one row per run). A batch
    file that fails its checks is left out, with a warning naming it."""
    result = stored(path)
    for file, why in result.scan.excluded:
        warnings.warn(f"{file} is left out: {why}", stacklevel=2)
    return result.rows
