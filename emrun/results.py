"""Stored results as tidy tables: the store's files, read and prepared by the folder's experiment
kind (its row order, its derived columns such as the likelihood ratio of trial rows)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from emrun.store import load_traces, read_manifest, read_rows

__all__ = ["load_results", "load_traces", "kind_of"]


def kind_of(folder: str | Path):
    """The experiment kind of a results folder (its manifest's config), with the folder's plug-ins
    imported so that a plug-in kind, family or claim is known."""
    from emrun.config import from_manifest

    manifest = read_manifest(folder)
    return from_manifest(manifest["config"], Path(folder)).kind


def load_results(path: str | Path) -> pd.DataFrame:
    """All rows of a results folder as one tidy DataFrame (for trials: one row per run).

    A batch file that cannot be read, or that another config wrote, is set aside with a message
    (its batch runs again at the next sweep), never read."""
    return kind_of(path).postprocess(read_rows(path))
