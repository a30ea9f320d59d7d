"""The model of convergence behind the expected time: how long runs like a config's ran, read
from the rows other configs' reports committed (``cells.csv``, ``summary.csv``).

- trial grids: each (m, D, algorithm) cell's median iterations and share of capped runs, keyed by
  what decides them (model, algorithm, data, tolerance, step, update rule);
- adaptive plans (first_k_cluster): per (m, D), the share of truths with a k-cluster point, from
  which the truths a sweep draws follow (whole blocks until ``until_k_cluster`` of them have one);
- dynamics studies that stop at a tolerance: per study, algorithm, (m, D) and sample size N, the
  median iterations.

:func:`rows_of` extracts these from a results folder (for ``emrun/calibration.json``);
:class:`Convergence` answers from the rows of the configs it is given. A question nothing stored
answers is answered with the cap: the bound's own assumption.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from emrun.batch import Cell

LINEAR = 1e-9  # paper C: EM on theta converges linearly when the weights' smallest DFT coefficient is above 0


def _data_key(data: dict) -> str:
    return {"samples": f"samples:{data.get('n')}", "dataset": f"dataset:{data.get('name')}"}.get(data["kind"], data["kind"])


def _variant(values: dict, algorithm: str) -> str:
    return str(values.get("em_update") if algorithm == "em" else values.get("gd_boundary") if algorithm == "gd" else "")


def rows_of(config: Any, folder: Path) -> dict:
    """What ``folder``'s committed tables say about convergence ({} when nothing): {"cells": [...],
    "blocks": [...], "series": [...]} (see the module docstring)."""
    import pandas as pd

    values = config.values
    found: dict[str, list] = {}
    cells, summary = folder / "cells.csv", folder / "summary.csv"
    table = pd.read_csv(cells) if cells.is_file() else None
    if table is not None and "stopping" in values and not config.kind.adaptive:  # a grid's cells
        if {"median_iterations", "setting", "algorithm", "capped_fraction"} <= set(table.columns):
            steps = values["grid"]["step"]
            for row in table.itertuples():
                if row.setting != row.algorithm or row.algorithm not in values["stopping"]:
                    continue  # one setting per algorithm only: its cap and step are the config's
                stopping = values["stopping"][row.algorithm]
                found.setdefault("cells", []).append({
                    "model": values["model"], "algorithm": row.algorithm, "data": _data_key(values["data"]),
                    "tol": stopping["tol"], "cap": stopping["max_iter"], "variant": _variant(values, row.algorithm),
                    "step": steps[0] if row.algorithm == "gd" and len(steps) == 1 else None, "m": int(row.m),
                    "D": int(row.D), "iterations": float(row.median_iterations), "capped": float(row.capped_fraction),
                    "rate": float(row.k_cluster / row.runs) if row.runs else 0.0})
    if table is not None and config.kind.adaptive:  # an adaptive plan's truths per (m, D)
        if {"tried", "found"} <= set(table.columns):
            found["blocks"] = [{"model": values["model"], "m": int(r.m), "D": int(r.D), "tried": int(r.tried),
                                "found": int(r.found)} for r in table.itertuples() if r.tried > 0]
    if "study" in values and summary.is_file():  # a dynamics study's runs
        table = pd.read_csv(summary)
        if "iteration" in table.columns and ("n_samples" in table.columns):
            cap = values["options"].get("max_iter")
            found["series"] = [{"study": values["study"], "algorithm": values["grid"]["algorithm"][0], "m": int(r.m),
                                "D": int(r.D), "n": int(r.n_samples), "cap": cap, "iterations": float(r.iteration),
                                "linear": bool(getattr(r, "dft_min", 0.0) > LINEAR)}
                               for r in table.itertuples() if r.iteration == r.iteration]
    return found


class Convergence:
    """Answers from the convergence rows of some configs ({name: rows_of(...)})."""

    def __init__(self, rows: dict[str, dict]):
        self.cells = [c for r in rows.values() for c in r.get("cells", [])]
        self.blocks = [b for r in rows.values() for b in r.get("blocks", [])]
        self.series = [s for r in rows.values() for s in r.get("series", [])]
        self._by_algorithm: dict[tuple, list[dict]] = {}
        for c in self.cells:
            self._by_algorithm.setdefault((c["model"], c["algorithm"]), []).append(c)

    def trial_iterations(self, values: dict, cell: Cell, cap: int) -> tuple[float, float]:
        """(mean iterations of a run, share of runs capped) in a trial cell: the stored cells of the
        same model and algorithm, those that share most of (tolerance, data, update rule, step) first,
        then the nearest in (m, D); their median iterations, the capped runs counted at the cap."""
        same = self._by_algorithm.get((values["model"], cell.algorithm), [])
        if not same:
            return float(cap), 1.0
        stopping = values["stopping"][cell.algorithm]
        wanted = {"tol": stopping["tol"], "data": _data_key(values["data"]), "variant": _variant(values, cell.algorithm),
                  "step": cell.step}

        def score(c: dict) -> tuple:
            shared = [c[key] == wanted[key] for key in ("tol", "data", "variant", "step")]
            return (-sum(shared), abs(c["m"] - cell.m) + abs(c["D"] - cell.D))

        best = min(score(c) for c in same)
        chosen = [c for c in same if score(c) == best]
        median = _median([min(c["iterations"], cap) for c in chosen])
        capped = _median([c["capped"] for c in chosen]) if median < cap else 1.0
        return (1 - capped) * median + capped * cap, capped

    def expected_truths(self, values: dict, cell: Cell) -> float:
        """Truths a first_k_cluster sweep draws for ``cell``: whole blocks until ``until_k_cluster``
        have a GD run ending at a k-cluster point. The share of truths with one: that stored by
        first_k_cluster sweeps of the same model for the nearest (m, D); else, from trial grids,
        1 - (1 - r)^runs with r the share of GD runs ending at one in the nearest stored cell; else
        every truth (the bound's assumption)."""
        rule = values["truths"]
        share = self._truth_share(values, cell)
        if share is None:
            return float(rule["max"])
        return expected_blocks(share, rule["until_k_cluster"], rule["block"], rule["max"])

    def _truth_share(self, values: dict, cell: Cell) -> float | None:
        def nearest(rows: list[dict]) -> list[dict]:
            best = min(abs(r["m"] - cell.m) + abs(r["D"] - cell.D) for r in rows)
            return [r for r in rows if abs(r["m"] - cell.m) + abs(r["D"] - cell.D) == best]

        same = [b for b in self.blocks if b["model"] == values["model"]]
        if same:
            chosen = nearest(same)
            return sum(b["found"] for b in chosen) / sum(b["tried"] for b in chosen)
        grid = [c for c in self.cells if c["model"] == values["model"] and c["algorithm"] == "gd" and "rate" in c]
        if not grid:
            return None
        rate = _median([c["rate"] for c in nearest(grid)])
        return 1 - (1 - rate) ** values["runs"]["gd"]

    def series_iterations(self, values: dict, cell: Cell, n: int, cap: int, linear: bool = False) -> float:
        """Iterations of a dynamics run on N points: the stored runs of the same study, algorithm and
        (paper C) convergence regime, the nearest (m, D) and then the nearest N (on a log scale), at
        most ``cap``."""
        algorithm = values["grid"]["algorithm"][0]
        same = [s for s in self.series if s["study"] == values["study"] and s["algorithm"] == algorithm
                and s.get("linear", False) == linear]
        if not same:
            return float(cap)

        def distance(s: dict) -> tuple:
            return (abs(s["m"] - cell.m) + abs(s["D"] - cell.D), abs(math.log(s["n"] / n)))

        best = min(distance(s) for s in same)
        return min(_median([s["iterations"] for s in same if distance(s) == best]), float(cap))


def expected_blocks(share: float, target: int, block: int, most: int) -> float:
    """The expected truths drawn in whole blocks until ``target`` have an event (each independently
    with probability ``share``), at most ``most``: block x the expected number of blocks."""
    share = min(max(share, 1e-9), 1.0)
    drawn, expected = min(block, most), float(min(block, most))
    for _ in range(10_000):
        if drawn >= most:
            return expected
        fewer = sum(math.comb(drawn, k) * share**k * (1 - share) ** (drawn - k) for k in range(min(target, drawn + 1)))
        if fewer < 1e-9:
            return expected
        step = min(block, most - drawn)
        expected += step * fewer  # the next block is drawn when fewer than target of those so far had one
        drawn += step
    return expected + (most - drawn) * fewer  # a plan of very many blocks: the rest at the last block's chance


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
