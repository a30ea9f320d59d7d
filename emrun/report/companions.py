"""Companion folders: other results under the same root that a report reads beside its own rows,
found by comparing configs (never by name). A one-truth reproduction of Table 1 reads the
many-truths run of the same protocol; an in-place EM study reads the standard update's runs.
A folder is a companion when it holds rows, or the summaries a report saved from its rows
(emrun.summaries: committed, so that a clone without rows finds the same companions)."""

from __future__ import annotations

from pathlib import Path

from emrun.store import StoreError, has_rows, read_manifest, result_folders
from emrun.summaries import has_summaries

PROTOCOL_IGNORES = ("name", "description", "truths", "claims", "baseline")


def _config(folder: Path) -> dict | None:
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


def most_truths(folder: Path, root: Path, ignore: tuple[str, ...] = (), differs: str | None = None,
                at_least: int = 2) -> Path | None:
    """The stored folder with the most random truths (``at_least`` or more) whose config equals this
    one's but for name, description, truths, report keys and ``ignore``; with ``differs``, that key
    must differ too."""
    config = _config(folder)
    best, best_truths = None, at_least - 1
    for other in result_folders(root):
        other_config = _config(other)
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
    """For each other EM update stored under ``root``, the folder of the same protocol (but for the
    update and the algorithms run) with the most truths: the runs to pair this one's with."""
    config = _config(folder)
    chosen: dict[str, tuple[int, Path]] = {}
    for other in result_folders(root):
        theirs = _config(other)
        if other == folder or theirs is None or not has_rows(other) or not isinstance(theirs.get("truths"), int):
            continue
        rule = theirs.get("em_update", "simultaneous")
        if rule == config.get("em_update", "simultaneous") or "em" not in theirs["grid"]["algorithm"]:
            continue
        if _protocol(theirs, ("em_update", "grid.algorithm")) == _protocol(config, ("em_update", "grid.algorithm")):
            if rule not in chosen or theirs["truths"] > chosen[rule][0]:
                chosen[rule] = (theirs["truths"], other)
    return [path for _, path in sorted(chosen.values(), key=lambda item: item[1].name)]


def other_dynamics_update(folder: Path, root: Path) -> Path | None:
    """A stored dynamics study on the same samples and initial points (same study, seed, estimator,
    m, D and sample sizes) run with the other update (EM's M-step vs gradient EM)."""
    config = _config(folder)
    for other in result_folders(root):
        theirs = _config(other)
        if theirs is None:
            continue
        same = all(theirs.get(k) == config.get(k) for k in ("experiment", "study", "seed", "estimator"))
        if (other != folder and same and _summarised(other) and theirs["grid"]["m"] == config["grid"]["m"]
                and theirs["grid"]["D"] == config["grid"]["D"] and theirs["options"]["samples"] == config["options"]["samples"]
                and theirs["grid"]["algorithm"] != config["grid"]["algorithm"]):
            return other
    return None
