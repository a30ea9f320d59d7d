"""Checks of the config values that describe mixtures and inits (given truths, init_options),
shared by the kinds built on :class:`emrun.kinds.base.CellGrid`."""

from __future__ import annotations

import math
from typing import Any

from emrun.config import Checker
from emrun.inits import BUILT_IN_OPTIONS, declared_options
from emrun.registry import ALGORITHMS, INIT_SCHEMES


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_mixture(check: Checker, value: Any, path: str, mean_range: tuple[float, float] | None) -> dict:
    """A given mixture {pi: [m], mu: [m][D]} with pi on the simplex and mu in ``mean_range``."""
    check.mapping(value, path, {"pi": True, "mu": True})
    pi, mu = value["pi"], value["mu"]
    if not isinstance(pi, list) or not pi or not all(_is_number(p) and p >= 0 for p in pi):
        check.fail(f"{path}.pi", f"'{path}.pi' must be a list of non-negative numbers, got {pi!r}")
    if abs(sum(pi) - 1.0) > 1e-9:
        check.fail(f"{path}.pi", f"'{path}.pi' must sum to 1, sums to {sum(pi)!r}")
    if not isinstance(mu, list) or len(mu) != len(pi) or not all(isinstance(row, list) for row in mu):
        check.fail(f"{path}.mu", f"'{path}.mu' must be a list of {len(pi)} rows (one per weight)")
    low, high = mean_range if mean_range is not None else (-float("inf"), float("inf"))
    widths = {len(row) for row in mu}
    if len(widths) != 1 or not all(_is_number(x) and low <= x <= high for row in mu for x in row):
        inside = f" and entries in [{low:g}, {high:g}]" if mean_range is not None else " and numeric entries"
        check.fail(f"{path}.mu", f"'{path}.mu' rows must have equal length{inside}")
    return {"pi": [float(p) for p in pi], "mu": [[float(x) for x in row] for row in mu]}



def check_init_options(raw: dict, check: Checker, out: dict, family) -> None:
    """``init_options``: emrun's own keys (epsilon, given, at_data_mean) and those the grid's init
    schemes declare; any other key is refused with the allowed list."""
    declared = declared_init_options(check, out)
    options = check.mapping(raw.get("init_options", {}), "init_options",
                            {**{key: False for key in BUILT_IN_OPTIONS}, **{key: False for key in declared}})
    out["init_options"] = {"epsilon": check.number(options.get("epsilon", 1.0e-4), "init_options.epsilon",
                                                   below_one=True)}
    for key, default in declared.items():  # kept only when not the default: the scheme fills that in
        if key in options and (value := check.typed(options[key], f"init_options.{key}", default)) != default:
            out["init_options"][key] = value
    for name in out["grid"]["init"]:  # a scheme may name the families it is for (emrun check-plugin checks it on them)
        meant = getattr(INIT_SCHEMES.get(name), "families", None)
        if meant is not None and out["model"] not in meant:
            check.fail("grid.init", f"init scheme '{name}' is for model {' or '.join(meant)} (its 'families'), not "
                                    f"'{out['model']}'")
    if "given" in out["grid"]["init"]:
        given = options.get("given")
        needed = max(out["runs"].values())
        if not isinstance(given, list) or len(given) != needed:
            check.fail("init_options.given" if given is not None else "init_options",
                       f"init scheme 'given' needs 'init_options.given': a list of exactly {needed} mixtures "
                       "(one per run)")
        mean_range = family.mean_range if family is not None else None
        out["init_options"]["given"] = [check_mixture(check, g, f"init_options.given[{i}]", mean_range)
                                        for i, g in enumerate(given)]
        for i, g in enumerate(out["init_options"]["given"]):  # a run of another shape would be stored in the wrong cell
            shape = (len(g["pi"]), len(g["mu"][0]))
            for key, wanted in (("m", shape[0]), ("D", shape[1])):
                if out["grid"][key] != [wanted]:
                    check.fail(f"init_options.given[{i}]", f"'init_options.given[{i}]' has (m, D) = {shape}; grid.{key} "
                               f"must be [{wanted}], got {out['grid'][key]}")
    elif "given" in options:
        check.fail("init_options.given", "'init_options.given' is set but 'given' is not in grid.init")
    if "at_data_mean" in options:  # the algorithms whose components 2..m start at the data mean
        out["init_options"]["at_data_mean"] = [
            check.registered(a, "init_options.at_data_mean", ALGORITHMS)
            for a in check.nonempty_list(options["at_data_mean"], "init_options.at_data_mean")]

def declared_init_options(check: Checker, out: dict) -> dict:
    """The options the grid's init schemes declare (name -> default; the first scheme's default
    where two declare one name)."""
    declared: dict = {}
    for name in out["grid"]["init"]:
        for key, default in declared_options(INIT_SCHEMES.get(name)).items():
            if key in BUILT_IN_OPTIONS:
                check.fail("grid.init", f"init scheme '{name}' ({INIT_SCHEMES.origin(name)}) declares option "
                                        f"'{key}', which is emrun's own (init_options.{key}); rename it")
            declared.setdefault(key, default)
    return declared
