"""Published values of the papers, with their source (kept in ``paper_values.yaml``)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd
import yaml


@cache
def _all() -> dict:
    return yaml.safe_load((Path(__file__).with_name("paper_values.yaml")).read_text())


def source(artefact: str) -> str:
    return _all()[artefact]["source"]


def grid(artefact: str) -> pd.DataFrame:
    """A published (m x D) table as a tidy frame with columns m, D, published."""
    entry = _all()[artefact]
    return pd.DataFrame(
        [(m, D, entry["values"][i][j]) for i, m in enumerate(entry["m"]) for j, D in enumerate(entry["D"])],
        columns=["m", "D", "published"],
    )


def value(artefact: str, key: str) -> float:
    """A single published number, e.g. value('uai2019_figure2', 'gd_pi1_after_100')."""
    return float(_all()[artefact][key])


def rounding(artefact: str) -> float:
    """Half the last printed digit of an artefact's values: a published value stands for every
    number within it of what is printed."""
    return float(_all()[artefact]["rounding"])
