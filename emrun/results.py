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

__all__ = ["load_results", "load_traces", "kind_of", "Stored", "stored", "folder_config"]


def folder_config(folder: str | Path, run_plugins: bool = False, say=None, fresh: bool = True,
                  running: list[dict] | None = None):
    """(manifest, Config) of a results folder, read as data: its config must hash to the hash the
    manifest records and plan a bounded number of batches (a manifest is not validated like a
    config file, so a hand-edited one could ask for a billion truths), and its plug-ins are run
    only with ``run_plugins`` (see :func:`emrun.config.from_manifest`; ``running``: a companion's)."""
    from emrun.config import MAX_BATCHES, config_hash, from_manifest, planned_bound

    manifest = read_manifest(folder)
    path = Path(folder) / "manifest.json"
    try:
        same = config_hash(manifest["config"]) == manifest["config_hash"]
    except (TypeError, ValueError) as error:
        raise StoreError(f"{path} is damaged (its config cannot be hashed: {error})") from None
    if not same:
        raise StoreError(f"{path} is damaged (its config does not hash to its config hash {manifest['config_hash']}: "
                         "edited after the sweep?); run 'emrun sweep' on the config to rebuild the folder")
    config = from_manifest(manifest["config"], Path(folder), run_plugins, say, fresh, running)
    try:
        bound = planned_bound(config)
    except (TypeError, KeyError, ValueError, AttributeError) as error:
        raise StoreError(f"{path} is damaged (its config is not one emrun runs: {type(error).__name__}: {error})") from None
    if bound > MAX_BATCHES:
        raise StoreError(f"{path} is damaged (its config plans {bound:,} batches, more than the {MAX_BATCHES:,} a sweep "
                         "runs)")
    return manifest, config


def kind_of(folder: str | Path, run_plugins: bool = False):
    """The experiment kind of a results folder (its manifest's config); a folder run with plug-ins
    needs ``run_plugins`` (its plug-ins are then imported, so that their names are known)."""
    return folder_config(folder, run_plugins)[1].kind


@dataclass
class Stored:
    """A folder's usable rows (prepared by its kind) and what its scan found."""

    rows: pd.DataFrame
    scan: Scan


def stored(path: str | Path, run_plugins: bool = False, fresh: bool = True, config=None) -> Stored:
    """The folder's rows and the files left out of them (with why). A folder whose every batch file
    is left out is a StoreError naming the first reason. ``run_plugins``, ``fresh``: as for
    :func:`folder_config`; ``config``: the folder's config as already loaded (a sweep's, whose
    plug-ins it runs anyway), instead of reading it from the manifest."""
    folder = Path(path)
    if not folder.is_dir():
        raise StoreError(f"{folder} does not exist")
    if config is None:
        manifest, config = folder_config(folder, run_plugins, fresh=fresh)
    else:
        manifest = {"config": config.values, "config_hash": config.hash}
    kind = config.kind
    found = scan(folder, manifest["config_hash"], kind.batch_check(manifest["config"]))
    if not found.tables:
        if found.excluded:
            path, why = found.excluded[0]
            raise StoreError(f"every batch file of {folder} is left out ({len(found.excluded)}); {path.name}: {why}")
        raise StoreError(f"{folder} holds no rows yet (no batches/*.parquet); run 'emrun sweep' on its config")
    return Stored(kind.postprocess(rows_of(found)), found)


def load_results(path: str | Path, run_plugins: bool = False) -> pd.DataFrame:
    """All rows of a results folder as one tidy DataFrame (for trials: one row per run). A batch
    file that fails its checks is left out, with a warning naming it. A folder run with plug-ins
    is read only with ``run_plugins=True``, which imports the copies it keeps: its code runs."""
    result = stored(path, run_plugins)
    for file, why in result.scan.excluded:
        warnings.warn(f"{file} is left out: {why}", stacklevel=2)
    return result.rows
