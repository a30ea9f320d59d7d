"""The experiment kind protocol: the members the rest of emrun calls on a kind, declared once.

A kind must give six members: ``name``, ``keys``, ``validate``, ``plan``, ``run_batch`` and
``write_report``. Every other member is optional; :class:`Kind` holds what a kind that leaves one
out gets. A kind is checked when it is registered (built in, by a plug-in or by an entry point):
a missing required member, a member that should be callable and is not, or a method that cannot
take the arguments emrun passes is refused then, with every problem named, rather than when a
sweep first calls it. The registry holds the checked :class:`Kind`, so no caller needs to ask
whether a member exists.
"""

from __future__ import annotations

import inspect
from typing import Any

from emrun.batch import BatchSpec

# name -> the arguments emrun passes (None: an attribute, not called). The six required first.
REQUIRED: dict[str, tuple[str, ...] | None] = {
    "name": None,
    "keys": None,  # its top-level config keys beyond the common ones: {key: required}
    "validate": ("raw", "check", "out"),  # raw config -> canonical values in ``out`` (errors through ``check``)
    "plan": ("config", "stored"),  # the batches, in a fixed order (``stored``: the rows so far, adaptive kinds)
    "run_batch": ("values", "config_hash", "spec", "retry"),  # one batch, in a worker -> emrun.batch.BatchResult
    "write_report": ("ctx",),  # emrun.report.ReportContext -> emrun.report.ReportResult
}
OPTIONAL: dict[str, tuple[str, ...] | None] = {
    "row_noun": None, "adaptive": None, "replayable": None, "prepares_kernels": None,
    "names_used": ("values",), "cells": ("values",), "n_truths": ("values",), "planned_bound": ("config",),
    "first_round": ("config",), "find_batch": ("config", "batch_id"), "estimated_cost": ("values", "spec"),
    "estimated_seconds": ("values",), "counting": ("values",), "prepare": ("values", "say"),
    "postprocess": ("rows",), "describe": ("config",), "status_lines": ("rows",), "batch_check": ("values",),
    "failed_rows": ("rows",), "declared_claims": ("values",), "runs_judged": ("values", "verdict"),
    "traced": ("values",), "settings": ("values",),
}
MEMBERS = {**REQUIRED, **OPTIONAL}
ATTRIBUTE_TYPES = {"name": str, "keys": dict, "row_noun": str, "adaptive": bool, "replayable": bool,
                   "prepares_kernels": bool}


class KindError(ValueError):
    """An object that does not follow the protocol; the message names every problem."""


def protocol_problems(implementation: Any) -> list[str]:
    """What keeps ``implementation`` from being a kind: each missing required member, each member
    of the wrong type, each method that cannot take the arguments emrun passes."""
    problems = [f"has no {name}" for name in REQUIRED if not hasattr(implementation, name)]
    for name, arguments in MEMBERS.items():
        if not hasattr(implementation, name):
            continue
        value = getattr(implementation, name)
        if arguments is None:
            wanted = ATTRIBUTE_TYPES[name]
            if not isinstance(value, wanted) or (name == "name" and not value):
                problems.append(f"{name} is {value!r}, not a{' non-empty' if name == 'name' else ''} {wanted.__name__}")
        elif not callable(value):
            problems.append(f"{name} is {type(value).__name__}, not a method")
        elif not _accepts(value, len(arguments)):
            problems.append(f"{name} cannot be called as {name}({', '.join(arguments)})")
    return problems


def _accepts(method: Any, count: int) -> bool:
    try:
        inspect.signature(method).bind(*([None] * count))
    except TypeError:
        return False
    except ValueError:  # no signature to read (a builtin): trust it
        return True
    return True


class Kind:
    """A registered experiment kind: the implementation's members, and for each optional member it
    leaves out, the default below. The implementation is composed, not inherited from: it may be
    any object (a class instance, a module) that has the required members."""

    row_noun = "rows"  # what its rows are called in messages ("trials", "check rows", ...)
    adaptive = False  # True if its plan grows with the rows stored so far
    replayable = False  # True if `emrun replay` can re-run one stored row (rows carry batch_id and run_index)
    prepares_kernels = False  # True if its prepare() always loads compiled code (the cost model counts the load)

    def __init__(self, implementation: Any):
        problems = protocol_problems(implementation)
        if problems:
            label = getattr(implementation, "name", type(implementation).__name__)
            raise KindError(f"experiment kind {label!r} does not follow the kind protocol (emrun.kinds.protocol): "
                            + "; ".join(problems))
        self.implementation = implementation
        for name in MEMBERS:
            if hasattr(implementation, name):
                setattr(self, name, getattr(implementation, name))

    def __repr__(self) -> str:
        return f"Kind({self.name!r})"

    # --- the defaults of the optional members ----------------------------------------------------

    def settings(self, values: dict) -> Any:
        """The canonical values, typed and frozen (emrun.settings): its ``hashed()`` must give them
        back exactly. By default the common keys typed and the kind's own kept as given."""
        from emrun.settings import Settings

        return Settings.from_values(values)

    def names_used(self, values: dict) -> set[str]:
        """The registered names that make the config's rows (an installed plug-in that registers
        one enters the config hash): by default the kind's own."""
        return {values["experiment"]}

    def cells(self, values: dict) -> list:
        """The grid cells (emrun.batch.Cell) its batches run, for the work count of an expected
        time (a kind without a grid: none)."""
        return []

    def n_truths(self, values: dict) -> int:
        """Truths per cell (at most, for an adaptive plan)."""
        return 1

    def planned_bound(self, config: Any) -> int:
        """At most how many batches the config plans; a sweep refuses more than emrun.config.MAX_BATCHES."""
        return len(self.plan(config, None))

    def first_round(self, config: Any) -> int:
        """How many batches the first round plans."""
        return self.planned_bound(config)

    def find_batch(self, config: Any, batch_id: str) -> BatchSpec:
        """The planned batch with this id (replay); KeyError if there is none."""
        for spec in self.plan(config, None):
            if spec.batch_id == batch_id:
                return spec
        raise KeyError(batch_id)

    def estimated_cost(self, values: dict, spec: BatchSpec) -> float:
        """A batch's relative cost: long ones start first, the progress bar weighs by it."""
        return 1.0

    def estimated_seconds(self, values: dict) -> float | None:
        """CPU seconds at most (every run to its cap); None: not known, and no long-sweep guard."""
        return None

    def counting(self, values: dict) -> Any:
        """The function (values, cell, convergence) -> emrun.work.Work counting one batch's work of
        a kind with cells, or its import string; None: no expected time."""
        return None

    def prepare(self, values: dict, say: Any = None) -> None:
        """Ready the process to run batches (compile kernels) before any is timed."""

    def postprocess(self, rows: Any) -> Any:
        """Rows as loaded from the store -> rows as readers use them."""
        return rows

    def describe(self, config: Any) -> list[str]:
        """What `emrun sweep --dry-run` prints (the CLI adds the expected time after the first line)."""
        return [f"config {config.name} (hash {config.hash}): experiment {self.name}, "
                f"{self.first_round(config)} batches in the first round"]

    def status_lines(self, rows: Any) -> list[str]:
        """What `emrun status` prints about the stored rows (None: no rows yet)."""
        return [f"  {self.row_noun}: {0 if rows is None else len(rows)}"]

    def batch_check(self, values: dict) -> Any:
        """A function (pyarrow Table) -> why a batch file's rows are unusable, or None."""
        def check(table: Any) -> str | None:
            return None if "batch_id" in table.column_names else "has no batch_id column"

        return check

    def failed_rows(self, rows: Any) -> Any:
        """A boolean Series: the rows that record a failure (reports count them, never average them)."""
        return rows["batch_id"].isna()

    def declared_claims(self, values: dict) -> list:
        """The claims (emrun.criteria.Declared) its report will judge, known from the config alone:
        a sweep records their criteria before any row. None declared: each verdict says its
        criterion was first recorded after its rows."""
        return []

    def runs_judged(self, values: dict, verdict: Any) -> dict | None:
        """Which runs decided a verdict (REPORT.md counts a finding judged twice on the same runs once)."""
        return None

    def traced(self, values: dict) -> dict | None:
        """The config values with per-iteration traces on (replay's second run when a row has no
        trace); None: the kind records no traces."""
        return None
