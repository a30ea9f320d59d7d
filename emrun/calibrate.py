"""Writes ``emrun/calibration.json`` from the committed results: ``python -m emrun.calibrate``.

For each ``results/<name>/`` whose config (``configs/<name>.yaml``, else the file its sweeps name)
loads without plug-ins and still has the hash its manifest records, this keeps

- the measured sweep: the wall seconds of the sweeps that produced its rows (the producing
  sweeps of :func:`emrun.store.read_manifest`'s history: from the last sweep that started with
  nothing stored on), summed, with their workers and batches; only when together they ran every
  planned batch, none failed and none was interrupted. Wall seconds, not CPU-seconds: the model of
  :mod:`emrun.estimate` schedules the batches on the sweep's workers itself. With them, when each
  ran (:func:`interval`), so that the project's own sweeps running at the same time count as
  contention (:func:`emrun.estimate.contention`);
- the convergence rows of its committed tables (:func:`emrun.convergence.rows_of`);

and the prices :func:`emrun.estimate.fit` finds on all of them. Nothing is typed by hand: the file
is a function of the committed files, and ``tests/test_estimate.py`` checks that the committed
one is what this writes. Re-run it after results are regenerated.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from emrun.estimate import CALIBRATION, ROOT


def producing(sweeps: list[dict]) -> list[dict]:
    """The sweeps that wrote the rows now stored (:func:`emrun.store.producing_entries`)."""
    from emrun import store

    if hasattr(store, "producing_entries"):
        return store.producing_entries(sweeps)
    started = [i for i, s in enumerate(sweeps) if s.get("batches_skipped") == 0 and s.get("batches_completed") != 0]
    return [s for s in sweeps[max(started, default=0):] if s.get("batches_completed") != 0]


def measured_sweep(sweeps: list[dict]) -> dict | None:
    """{seconds, workers, batches} of the producing sweeps when together they ran a whole plan;
    None otherwise (cut short, failed batches, or no seconds recorded)."""
    entries = producing(sweeps)
    if not entries or any(s.get("interrupted") or s.get("batches_failed") or s.get("state") == "running"
                          or not isinstance(s.get("seconds"), (int, float)) for s in entries):
        return None
    last = entries[-1]
    if sum(int(s.get("batches_completed") or 0) for s in entries) < int(last.get("batches_total") or 0) \
            or entries[0].get("batches_skipped") != 0:
        return None
    workers = max(entries, key=lambda s: s.get("batches_completed") or 0).get("workers") or 1
    return {"seconds": round(sum(float(s["seconds"]) for s in entries), 2), "workers": int(workers),
            "batches": int(last["batches_total"]), "sweeps": len(entries)}


def interval(entry: dict) -> dict | None:
    """When a sweep ran and what it kept busy: {start (Unix seconds), seconds, busy (workers, at most
    one per batch it ran), cores, load (the load average it recorded at its start, if any)}."""
    from datetime import datetime

    try:
        start = datetime.fromisoformat(entry["time"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None
    load = entry.get("load_average")
    return {"start": start, "seconds": float(entry.get("seconds") or 0.0),
            "busy": max(1, min(int(entry.get("workers") or 1), int(entry.get("batches_completed") or 1))),
            "cores": max(1, int(entry.get("cpu_count") or 1)), "load": load if isinstance(load, (int, float)) else None}


def config_file(name: str, sweeps: list[dict], configs_dir: Path, root: Path) -> Path | None:
    """The config a results folder was swept from: configs/<name>.yaml, else the file its last sweep names."""
    if (configs_dir / f"{name}.yaml").is_file():
        return configs_dir / f"{name}.yaml"
    named = [s.get("config_file") for s in sweeps if s.get("config_file")]
    if not named:
        named = [shlex.split(s["command"])[2] for s in sweeps if len(shlex.split(s.get("command", ""))) > 2]
    candidates = [root / n for n in named[-1:]]
    return candidates[0] if candidates and candidates[0].is_file() else None


def measurements(results_root: Path = ROOT / "results", configs_dir: Path = ROOT / "configs") -> dict[str, dict]:
    """One record per results folder that can calibrate (module docstring), by config name."""
    from emrun import plugins
    from emrun.config import ConfigError, load
    from emrun.convergence import rows_of
    from emrun.registry import RegistryError
    from emrun.store import StoreError, read_manifest

    root = configs_dir.resolve().parent
    manifests = {}
    for folder in sorted(p.parent for p in results_root.glob("*/manifest.json")):
        try:
            manifests[folder] = read_manifest(folder)
        except StoreError:
            continue
        # Committed files only: this machine's own history (sweeps.json) would make the calibration
        # depend on what was last run here.
        provenance = folder / "provenance.json"
        if provenance.is_file():
            manifests[folder]["sweeps"] = json.loads(provenance.read_text()).get("sweeps", [])
    records = {}
    for folder, manifest in manifests.items():
        sweep = measured_sweep(manifest["sweeps"])
        source = config_file(folder.name, manifest["sweeps"], configs_dir, root)
        if sweep is None or source is None:
            continue
        try:
            config = load(source, run_plugins=False)
        except (ConfigError, RegistryError, plugins.PluginsNotRun):
            continue  # a plug-in's config: its code is not run to calibrate
        if config.hash != manifest.get("config_hash"):
            continue  # measured on another version of the config
        records[config.name] = {"file": source.resolve().relative_to(root).as_posix(), "kind": config.kind.name,
                                **sweep, "intervals": [i for i in map(interval, producing(manifest["sweeps"])) if i],
                                "rows": rows_of(config, folder)}
    return records


def build(results_root: Path = ROOT / "results", configs_dir: Path = ROOT / "configs") -> dict:
    """The whole calibration: the measured records, and the prices fitted on all of them."""
    from emrun import estimate

    records = measurements(results_root, configs_dir)
    prices, _ = estimate.fit_without(records)
    return {"written_by": "python -m emrun.calibrate; do not edit",
            "measured": "wall seconds of the sweeps that produced each folder's rows (emrun.store.read_manifest)",
            "prices": prices, "configs": records}


def text(calibration: dict) -> str:
    """The file's text (sorted keys, so that a re-run on the same results changes nothing)."""
    return json.dumps(calibration, indent=1, sort_keys=True) + "\n"


def main() -> None:
    calibration = build()
    CALIBRATION.write_text(text(calibration))
    prices = ", ".join(f"{k} {v:.3g}" for k, v in calibration["prices"].items())
    print(f"wrote {CALIBRATION} from {len(calibration['configs'])} measured sweeps (prices: {prices})")


if __name__ == "__main__":
    main()
