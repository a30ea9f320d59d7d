"""Summaries: small tables derived from a results folder's rows, kept beside them and committed.

Trial rows are not committed, so a report that reads another folder (a companion: the many-truths
run beside the paper's one-truth protocol) would lose those sections on a fresh clone. Instead, the
report that reads a companion saves what it derives from the companion's rows (per-truth counts,
verdicts) in ``<folder>/summaries/<name>.json``, stamped with the folder's config hash and the
version of the verdict code (:data:`VERDICT_CODE`); where the rows are absent, that file is read
instead, and refused when its stamp differs (it was written for other rows, or by code that may
compute it differently). The package version is no such stamp: it stays the same across commits
that change verdicts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from emrun.files import StoreError, refuse_links, write_atomically
from emrun.store import read_manifest

SUMMARIES = "summaries"

# The version of the code that computes what summaries hold (counts per truth, verdicts): bump it
# whenever a module of VERDICT_MODULES changes what it computes. tests/test_summaries.py ties it
# to those modules' text, so a change to them fails the tests until the version is bumped (and
# the hash recorded there); summaries stamped with an older version are then refused.
VERDICT_CODE = 3
VERDICT_MODULES = ("report/verdicts.py", "report/claims.py", "report/row_claims.py", "report/published.py",
                   "report/gradem.py", "selection.py", "criteria/__init__.py", "criteria/uai2019.py", "criteria/xu2024.py")


class StaleSummary(StoreError):
    """A summary written for another config or by another version of the verdict code."""


def summary_path(folder: Path, name: str) -> Path:
    return Path(folder) / SUMMARIES / f"{name}.json"


def has_summaries(folder: Path) -> bool:
    return any((Path(folder) / SUMMARIES).glob("*.json"))


def _stamp(folder: Path) -> dict:
    return {"config_hash": read_manifest(folder)["config_hash"], "verdict_code": VERDICT_CODE}


def write_summary(folder: Path, name: str, table: pd.DataFrame, complete: bool) -> None:
    """Save ``table`` (plain values: numbers, strings, booleans, None) as the summary ``name`` of
    ``folder``, with the folder's stamp and whether its rows held every planned batch. One row per
    line, so that a change shows as a small diff."""
    header = {**_stamp(folder), "complete": bool(complete), "columns": [str(c) for c in table.columns]}
    values = table.astype(object).where(table.notna(), None).to_numpy().tolist()
    lines = [json.dumps(header)[:-1] + ', "rows": [', ",\n".join(json.dumps(row) for row in values), "]}", ""]
    path = summary_path(folder, name)
    refuse_links(Path(folder), path.parent)
    path.parent.mkdir(exist_ok=True)
    write_atomically(path, lambda p: p.write_text("\n".join(lines)))


def read_summary(folder: Path, name: str) -> tuple[pd.DataFrame, bool]:
    """The summary ``name`` of ``folder`` and whether it came from complete rows. Raises
    StoreError if it is missing or damaged, StaleSummary if its stamp is not the folder's now."""
    path = summary_path(folder, name)
    try:
        stored = json.loads(path.read_text())
        columns, rows = stored["columns"], stored["rows"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise StoreError(f"{path} cannot be read ({error}); run the sweep of {Path(folder).name} to rebuild it") from None
    expected = _stamp(folder)
    if any(stored.get(key) != value for key, value in expected.items()):
        raise StaleSummary(
            f"{path} was written for config hash {stored.get('config_hash')} by verdict code "
            f"{stored.get('verdict_code', 'of emrun ' + str(stored.get('emrun_version')))}, not for "
            f"{expected['config_hash']} by verdict code {expected['verdict_code']}: run "
            f"'emrun sweep configs/{Path(folder).name}.yaml' (or its make target) to rebuild it")
    return pd.DataFrame(rows, columns=columns), bool(stored.get("complete", False))
