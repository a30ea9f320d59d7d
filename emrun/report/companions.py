"""Companion folders: other results under the same root that a report reads beside its own rows.

A config declares its companions by name (``companions: {label: config name}``, not hashed); no
report reads a folder its config does not name. The built-in layouts choose among the declared
ones by comparing configs, so that a companion named in error is not read as one: a one-truth
reproduction of Table 1 reads the declared many-truths run of the same protocol; an in-place EM
study reads the declared runs of the same protocol under the other updates. Such a folder counts
when it holds rows, or the summaries a report saved from its rows (emrun.summaries: committed, so
that a clone without rows finds the same companions).

A claim whose judge takes a ``companions`` parameter gets each declared companion's rows, read
through the report's own loader (:meth:`emrun.report.ReportContext.rows_and_completeness`), or is
not testable, saying which companion is missing or incomplete.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import is_dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from emrun.settings import settings_of
from emrun.store import StoreError, has_rows, read_manifest
from emrun.summaries import has_summaries

PROTOCOL_IGNORES = ("name", "description", "truths", "claims", "baseline", "report_sections", "companions")
KEY = "companions"
_LABEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,59}")
_FOLDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")  # a config name (emrun.config.validate)


def check_declared(raw: Any, check, own: Any) -> dict[str, str]:
    """A config's ``companions``: labels (letters, digits, '_', '-') naming other configs' results
    folders under the same results root (a config name; not this config's own)."""
    if not isinstance(raw, dict) or not raw:
        check.fail(KEY, f"'{KEY}' must map labels to config names, e.g. {{sep12: jin_sep12}}; got {raw!r}")
    for label, name in raw.items():
        path = f"{KEY}.{label}"
        if not isinstance(label, str) or not _LABEL.fullmatch(label):
            check.fail(path, f"'{path}': a label is letters, digits, '_' or '-' (at most 60); got {label!r}")
        if not isinstance(name, str) or not _FOLDER.fullmatch(name):
            check.fail(path, f"'{path}' must name a config (its results folder under the same results root); got {name!r}")
        if name == own:
            check.fail(path, f"'{path}' names this config itself; a companion is another config's folder")
    return dict(raw)


def declared_rows(ctx) -> dict[str, pd.DataFrame | str]:
    """For each companion the folder's config declares: its rows without failed trials (a copy), or
    one line saying why there are none to use (missing, unreadable, incomplete)."""
    out: dict[str, pd.DataFrame | str] = {}
    for label, name in declared(ctx.config).items():
        folder, where = ctx.root / name, f"companion {label} (results folder {name})"
        if not (folder / "manifest.json").is_file() or not has_rows(folder):
            out[label] = f"{where} holds no rows (sweep config {name} into the same results root)"
            continue
        other = _other_plugins(ctx.manifest["config"], config_of(folder) or {})
        if other:
            out[label] = (f"{where} was run with other plug-ins than this folder ({', '.join(other)}), whose code a "
                          "companion never runs")
            continue
        try:
            rows, completeness = ctx.rows_and_completeness(folder)
        except StoreError as error:
            out[label] = f"{where} cannot be read: {str(error).removeprefix(f'companion {name} cannot be read: ')}"
            continue
        if not completeness.complete:
            out[label] = (f"{where} is incomplete ({completeness.stored} of {completeness.planned} planned batches "
                          "stored)")
            continue
        out[label] = rows.copy()
    return out


def config_of(folder: Path) -> dict | None:
    """A folder's config, or None if its manifest is damaged (it is then nobody's companion)."""
    try:
        return read_manifest(folder)["config"]
    except StoreError:
        return None


def _summarised(folder: Path) -> bool:
    return has_rows(folder) or has_summaries(folder)


def _protocol(config: dict, ignore: tuple[str, ...] = ()) -> str:
    same = {k: v for k, v in config.items() if k not in (*PROTOCOL_IGNORES, *ignore)}
    if "grid.algorithm" in ignore:
        same["grid"] = {k: v for k, v in same["grid"].items() if k not in ("algorithm", "step")}
    import json

    return json.dumps(same, sort_keys=True)


def declared(config: dict) -> dict[str, str]:
    """A stored config's companions, label -> config name. A manifest is data from wherever the
    folder came from, so a name that is not a folder name (a path: '../x') is left out here too."""
    companions = config.get(KEY)
    return {label: name for label, name in companions.items() if isinstance(name, str) and _FOLDER.fullmatch(name)} \
        if isinstance(companions, dict) else {}


def declared_folders(config: dict, root: Path) -> list[Path]:
    """The results folders a config declares as companions (``companions:``) that exist under ``root``."""
    return [root / name for name in declared(config).values() if (root / name / "manifest.json").is_file()]


def most_truths(folder: Path, root: Path, ignore: tuple[str, ...] = (), differs: str | None = None,
                at_least: int = 2) -> Path | None:
    """The declared companion with the most random truths (``at_least`` or more) whose config equals
    this one's but for name, description, truths, report keys and ``ignore``; with ``differs``, that
    key must differ too."""
    config = config_of(folder)
    best, best_truths = None, at_least - 1
    for other in declared_folders(config, root):
        other_config = config_of(other)
        if other_config is None:
            continue
        truths = other_config.get("truths")
        if other == folder or not isinstance(truths, int) or truths <= best_truths or not _summarised(other):
            continue
        if differs is not None and other_config.get(differs) == config.get(differs):
            continue
        if _protocol(other_config, ignore) == _protocol(config, ignore):
            best, best_truths = other, truths
    return best


def many_truths(folder: Path, root: Path) -> Path | None:
    """The results folder of the same protocol with the most random truths (> 1), if any."""
    return most_truths(folder, root)


def other_gd_boundary(folder: Path, root: Path) -> Path | None:
    """A many-truths results folder of the same protocol run with the other GD boundary rule."""
    return most_truths(folder, root, ("gd_boundary",), "gd_boundary")


def other_em_updates(folder: Path, root: Path) -> list[Path]:
    """For each other EM update among the declared companions, the folder of the same protocol (but
    for the update and the algorithms run) with the most truths: the runs to pair this one's with."""
    config = config_of(folder)
    chosen: dict[str, tuple[int, Path]] = {}
    for other in declared_folders(config, root):
        theirs = config_of(other)
        if other == folder or theirs is None or not has_rows(other) or not isinstance(theirs.get("truths"), int):
            continue
        rule = getattr(settings_of(theirs), "em_update", None)  # None: not a grid kind's folder
        if rule is None or rule == settings_of(config).em_update or "em" not in theirs["grid"]["algorithm"]:
            continue
        if _protocol(theirs, ("em_update", "grid.algorithm")) == _protocol(config, ("em_update", "grid.algorithm")):
            if rule not in chosen or theirs["truths"] > chosen[rule][0]:
                chosen[rule] = (theirs["truths"], other)
    return [path for _, path in sorted(chosen.values(), key=lambda item: item[1].name)]


def other_dynamics_update(folder: Path, root: Path) -> Path | None:
    """A declared companion that is the same dynamics study on the same samples and initial points
    (same study, seed, estimator, m, D and sample sizes) run with the other update (EM's M-step vs
    gradient EM)."""
    config = config_of(folder)
    for other in declared_folders(config, root):
        theirs = config_of(other)
        if theirs is None:
            continue
        same = all(theirs.get(k) == config.get(k) for k in ("experiment", "study", "seed", "estimator"))
        if (other != folder and same and _summarised(other) and theirs["grid"]["m"] == config["grid"]["m"]
                and theirs["grid"]["D"] == config["grid"]["D"] and theirs["options"]["samples"] == config["options"]["samples"]
                and theirs["grid"]["algorithm"] != config["grid"]["algorithm"]):
            return other
    return None


def _other_plugins(mine: dict, theirs: dict) -> list[str]:
    """The row plug-ins (files and modules) a companion's config lists that this folder's does not
    (same label and hash): reading its rows would need their code."""
    same = {(r.get("file"), r.get("module"), r.get("sha256")) for r in mine.get("plugins", [])}
    return [f"{r.get('file') or r.get('module')} (sha256 {str(r.get('sha256'))[:12]})" for r in theirs.get("plugins", [])
            if ("file" in r or "module" in r) and (r.get("file"), r.get("module"), r.get("sha256")) not in same]


def wants_companions(claim) -> bool:
    """Whether a claim's judge takes the declared companions' rows (a parameter ``companions``)."""
    import inspect

    try:
        return "companions" in inspect.signature(claim.judge).parameters
    except (TypeError, ValueError):  # a callable without a signature (a builtin)
        return False


def call_judge(claim, rows: pd.DataFrame, config: dict, params: dict, companions: Callable[[], dict] | None,
               derived: dict):
    """``claim.judge`` on the rows; a claim asking for companions gets them (``companions()``),
    or is not testable, naming each that is missing or incomplete."""
    if not wants_companions(claim):
        return claim.judge(rows, config, **params)
    found = companions() if companions is not None else {}
    missing = [why for why in found.values() if isinstance(why, str)]
    if missing:  # a comparison with a folder that is not there (or not whole) decides nothing
        return claim.declared_spec().untestable(f"{'; '.join(missing)}.", **derived)
    verdict = claim.judge(rows, config, **params, companions=found)
    # The verdict rests on other folders' rows too: say which, so it can be audited.
    named = ", ".join(f"{label} (results folder {name})" for label, name in declared(config).items())
    evidence = str(getattr(verdict, "evidence", "") or "").rstrip(".")
    return replace(verdict, evidence=f"{evidence}; compared with companion {named}") if named and is_dataclass(verdict) \
        else verdict
