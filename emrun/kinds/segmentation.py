"""The ``segmentation`` kind: the lecture's image segmentation, k-means against a full-covariance
Gaussian mixture fitted by EM, on RGB pixels.

Written to the kind protocol alone (:mod:`emrun.kinds.protocol`), not on the EM/GD trial grid: a
config names the numbers of clusters and the seeds, and one batch is one (K, seed)::

    experiment: segmentation
    K: [2, 3, 4, 5]
    seeds: 10
    options: {size: 128, iterations: 300, tol: 1.0e-6, kmeans_starts: 10}   # the defaults

The options are stored as the config gives them (so a default is not part of the hash) and filled
in with their defaults where they are used. The computation is :mod:`emrun.segmentation`'s, the
report :mod:`emrun.report.segmentation`'s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emrun import seeds
from emrun.batch import BatchResult, BatchSpec, Cell
from emrun.config import Checker
from emrun.segmentation import OPTIONS
from emrun.settings import EMPTY, Settings, thaw

if TYPE_CHECKING:  # pandas is imported where rows are tabled: a worker running a batch never needs it
    import pandas as pd

D = 3  # a pixel is an RGB point
_BATCH = re.compile(r"K(\d+)-seed(\d+)")


def batch_of(batch_id: str) -> tuple[int, int]:
    """(K, seed index) of a batch id such as ``K3-seed7``."""
    found = _BATCH.fullmatch(batch_id)
    if found is None:
        raise KeyError(batch_id)
    return int(found.group(1)), int(found.group(2))


@dataclass(frozen=True)
class SegmentationSettings(Settings):
    """A segmentation config typed: the numbers of clusters, seeds per K and the options the config
    gives (stored as given); ``options`` adds the defaults for the rest."""

    K: tuple[int, ...] = ()
    seeds: int = 1
    given_options: Mapping[str, Any] = field(default_factory=lambda: EMPTY, metadata={"key": "options"})

    @property
    def options(self) -> dict[str, Any]:
        return {**OPTIONS, **thaw(self.given_options)}


class Segmentation:
    name = "segmentation"
    keys = {"K": True, "seeds": True, "options": False}
    row_noun = "segmentation rows"

    def validate(self, raw: dict, check: Checker, out: dict) -> None:
        given = check.mapping(raw.get("options", {}), "options", {key: False for key in OPTIONS})
        for key, value in given.items():
            check.typed(value, f"options.{key}", OPTIONS[key])
        size = {**OPTIONS, **given}["size"]
        if size < 4:
            check.fail("options.size", f"'options.size' must be at least 4, got {size}")
        out["K"] = [check.integer(K, "K", 2) for K in check.nonempty_list(raw["K"], "K")]
        if max(out["K"]) > size * size:
            check.fail("K", f"'K': K = {max(out['K'])} clusters is more than the {size * size} pixels of a {size} x {size} "
                            "image")
        out["seeds"] = check.integer(raw["seeds"], "seeds", 1)
        if given:
            out["options"] = given

    def settings(self, values: dict) -> SegmentationSettings:
        return SegmentationSettings.from_values(values)

    def names_used(self, values: dict) -> set[str]:
        return {self.name, "gaussian_full"}

    def plan(self, config: Any, stored: Any = None) -> list[BatchSpec]:
        """One batch per (K, seed), K first."""
        settings = config.settings
        return [BatchSpec(f"K{K}-seed{seed}", None, seed) for K in settings.K for seed in range(settings.seeds)]

    def run_batch(self, values: dict, config_hash: str, spec: BatchSpec, retry: list[int] | None = None) -> BatchResult:
        from emrun.segmentation import segment_images

        K, seed = batch_of(spec.batch_id)
        # The k-means seeds' generator: the key a (K, seed) batch had as a theory check (m = K, D = 3).
        rng = seeds.generator(values["seed"], seeds.truth_key(K, D, seed))
        rows = segment_images(values["seed"], K, seed, rng, self.settings(values).options)
        return BatchResult([{"config": values["name"], "batch_id": spec.batch_id, **row, "config_hash": config_hash}
                            for row in rows])

    # --- the expected time (emrun.work counts a batch's work per cell: here one cell per K) --------

    def cells(self, values: dict) -> list[Cell]:
        return [Cell(K, D, "em", None, "kmeans") for K in self.settings(values).K]

    def n_truths(self, values: dict) -> int:
        return self.settings(values).seeds

    def counting(self, values: dict) -> str:
        return "emrun.work.checks:segmentation"

    def estimated_seconds(self, values: dict) -> float:
        """CPU seconds at most: 15 s per batch at the default options (13 measured, 2026-12-03),
        scaled by the pixels and the iteration cap."""
        settings = self.settings(values)
        options = settings.options
        scale = (options["size"] / OPTIONS["size"]) ** 2 * options["iterations"] / OPTIONS["iterations"]
        return 15.0 * scale * len(settings.K) * settings.seeds

    def runs_judged(self, values: dict, verdict: Any) -> dict:
        """The runs that decided a verdict (REPORT.md counts a finding judged on the same runs
        once): everything that makes them what they are, and the Ks and seeds run."""
        import hashlib
        import json

        settings = self.settings(values)
        identity = json.dumps({"experiment": self.name, "seed": settings.seed, "options": settings.options},
                              sort_keys=True)
        return {"identity": {"em": hashlib.sha256(identity.encode()).hexdigest()[:12]}, "m": list(settings.K),
                "D": [D], "truths": settings.seeds}

    # --- rows and report -------------------------------------------------------------------------

    def postprocess(self, rows: pd.DataFrame) -> pd.DataFrame:
        return rows.sort_values(["batch_id", "quantity", "index"], ignore_index=True)

    def declared_claims(self, values: dict) -> list:
        from emrun.criteria.lecture import segmentation_claims

        return segmentation_claims(values, self.settings(values).options)

    def write_report(self, ctx: Any) -> Any:
        from emrun.report.segmentation import write

        return write(ctx)


SEGMENTATION = Segmentation()
