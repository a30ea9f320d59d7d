"""Truth options: how a family draws the random truths of a trial grid (the config's ``truth:``
key, and the grid axes it opens).

A family that takes options declares ``truth_options``, a dict of option name ->
:class:`TruthOption` (its default, and its allowed names or numeric bounds); the Gaussian family
offers ``weights`` (random | equal), ``separation`` and ``spread``. A config may set them for every
truth (``truth: {weights: equal, separation: 6}``) or vary one along the grid (``grid:
{separation: [6, 12]}``: the cells, batch ids and rows then carry it). The family's
``random_mixture(m, D, rng, **options)`` receives only the options that differ from their
defaults, and only those enter the canonical config, so a config that sets none (or only
defaults) draws exactly the truths it drew before and keeps its hash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product
from typing import Any

from emrun.config import Checker
from emrun.registry import FAMILIES


@dataclass(frozen=True)
class TruthOption:
    """One option of a family's truths: ``default``; for a named option, the names allowed
    (``choices``, the default among them); for a numeric one, at least ``low`` (strictly above
    it with ``strict``)."""

    default: Any
    meaning: str = ""
    choices: tuple[str, ...] = ()
    low: float = 0.0
    strict: bool = False

    def checked(self, check: Checker, value: Any, path: str) -> Any:
        """The value, validated (an error names the file, line, key and what is allowed)."""
        if self.choices:
            return check.choice(value, path, self.choices)
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not is_number or not math.isfinite(value) or value < self.low or (self.strict and value == self.low):
            bound = f"{'>' if self.strict else '>='} {self.low:g}"
            check.fail(path, f"'{path}' must be a finite number {bound} ({self.meaning}), got {value!r}")
        return float(value)


def options_of(model: str) -> dict[str, TruthOption]:
    """The truth options of a registered family (none if it declares none or is unknown)."""
    return getattr(FAMILIES.get(model), "truth_options", {}) if model in FAMILIES else {}


def option_names() -> list[str]:
    """Every truth option a registered family declares: the row columns that may tell two truths
    of one (m, D, truth_index) apart."""
    return sorted({name for _, entry in FAMILIES.items() for name in getattr(entry.value, "truth_options", {})})


def truth_axes(values: dict) -> list[str]:
    """The truth options that the config's grid varies, in the family's order (not the grid's: a
    manifest read back may order its keys otherwise, and batch ids must not change)."""
    grid = values.get("grid", {})
    return [key for key in options_of(values.get("model", "")) if key in grid]


def check_constant_options(raw: dict, check: Checker, out: dict) -> None:
    """``truth:``: options set for every truth. Only values other than the default are kept."""
    axes = truth_axes(out)
    if isinstance(out.get("truths"), list) and ("truth" in raw or axes):
        check.fail("truth" if "truth" in raw else f"grid.{axes[0]}",
                   "truth options set how random truths are drawn; this config gives its truths ('truths' is a list)")
    if "truth" not in raw:
        return
    options = options_of(out["model"])
    if not options:
        check.fail("truth", f"model '{out['model']}' takes no truth options ('truth:' is for a family that "
                            "declares truth_options, such as gaussian)")
    given = check.mapping(raw["truth"], "truth", {name: False for name in options})
    kept = {}
    for name, value in given.items():
        value = options[name].checked(check, value, f"truth.{name}")
        if name in out["grid"]:
            check.fail(f"truth.{name}", f"'{name}' is set both in 'truth' and as a grid axis 'grid.{name}'; keep one")
        if value != options[name].default:
            kept[name] = value
    if kept:
        out["truth"] = kept


def check_grid_axis(check: Checker, out: dict, name: str, value: Any) -> list:
    """A truth option's grid axis: a non-empty list of valid values."""
    option = options_of(out["model"])[name]
    path = f"grid.{name}"
    return [option.checked(check, v, path) for v in check.nonempty_list(value, path)]


def settings(values: dict) -> list[tuple[tuple[str, Any], ...]]:
    """Every combination of the grid's truth axes, as (name, value) pairs ([()] without axes)."""
    axes = truth_axes(values)
    return [tuple(zip(axes, combo, strict=True)) for combo in product(*(values["grid"][a] for a in axes))]


def chosen(values: dict, cell_truth: tuple = ()) -> dict[str, Any]:
    """The options a truth of a cell is drawn with: the config's ``truth`` and the cell's axes,
    without those at their default (so the family's default draw is called exactly as before)."""
    options = options_of(values["model"])
    merged = {**values.get("truth", {}), **dict(cell_truth)}
    return {k: v for k, v in merged.items() if k not in options or v != options[k].default}


def columns(values: dict, cell_truth: tuple = ()) -> dict[str, Any]:
    """The row columns of the truth options a config sets (none for a config that sets none)."""
    return {**values.get("truth", {}), **dict(cell_truth)}


def check_drawable(check: Checker, out: dict, n_truths: int) -> None:
    """Draw every planned truth once: options that cannot be met (a separation too large for the
    spread, say) are a config error naming the key, not a failed batch in the middle of a sweep."""
    from emrun import seeds

    if "truth" not in out and not truth_axes(out):
        return
    family = FAMILIES.get(out["model"])
    for combo in settings(out):
        options = chosen(out, combo)
        for m, D, t in product(out["grid"]["m"], out["grid"]["D"], range(n_truths)):
            try:
                family.random_mixture(m, D, seeds.generator(out["seed"], seeds.truth_key(m, D, t)), **options)
            except ValueError as error:
                at = next((f"grid.{k}" for k, _ in combo), None) or next((f"truth.{k}" for k in out.get("truth", {})), "truth")
                check.fail(at, f"truth {t} of m = {m}, D = {D} cannot be drawn with {options}: {error}")
