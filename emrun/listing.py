"""What ``emrun list`` and a dry run say about configs and results folders without running them:
what is stored for a config, one line per config file, and a folder's plug-ins (never imported)."""

from __future__ import annotations

from pathlib import Path

from emrun.config import ConfigError, load
from emrun.registry import RegistryError


def folder_plugins(folder: Path) -> list[str]:
    """What a results folder's plug-ins are (the copies it keeps, the modules it names), unread."""
    from emrun.plugins import CLAIMS_ONLY, ROWS, copy_name
    from emrun.store import StoreError, read_manifest

    try:
        config = read_manifest(folder)["config"]
    except StoreError:
        return []  # reported as damaged by the report itself
    lists = [config.get(key) for key in (ROWS, CLAIMS_ONLY)]
    records = [r for found in lists if isinstance(found, list) for r in found if isinstance(r, dict)]
    return [f"{copy_name(str(r['file']), str(r.get('sha256')))}" if "file" in r else f"module {r['module']}"
            for r in records if "file" in r or "module" in r]


def stored_state(config, results_root: Path) -> tuple[str, int, int, str]:
    """(state, batches stored, batches of the first round, detail): state is 'none', 'this' (rows
    of this config), 'other' (another version of it) or 'damaged'."""
    from emrun.store import BATCHES, MANIFEST, StoreError, read_manifest

    folder, planned = results_root / config.name, config.kind.first_round(config)
    if not (folder / MANIFEST).exists():
        return "none", 0, planned, ""
    try:
        stored_hash = read_manifest(folder)["config_hash"]
    except StoreError as error:
        return "damaged", 0, planned, str(error)
    if stored_hash != config.hash:
        return "other", 0, planned, stored_hash
    return "this", sum(1 for _ in (folder / BATCHES).glob("*.parquet")), planned, ""


def stored_lines(config, results_root: Path) -> list[str]:
    """For a dry run: what is stored for this config already, and how many batches a sweep would run."""
    state, stored, planned, detail = stored_state(config, results_root)
    folder = results_root / config.name
    if state == "none":
        return [f"{folder}: 0 batches stored; a sweep would run {planned}"]
    if state == "damaged":
        return [f"{folder}: {detail}"]
    if state == "other":
        return [f"{folder} holds another version of this config (hash {detail}): a sweep would refuse; with "
                f"--replace it would discard those rows and run {planned} batches"]
    later = " (and later rounds, as the plan adapts to the rows)" if config.kind.adaptive else ""
    return [f"{folder}: {stored} batches stored; a sweep would run {max(planned - stored, 0)}{later}"]


def config_row(path: Path, results_root: Path, workers: int = 1) -> tuple[str, str, str, str]:
    """(name, what it reproduces, time on ``workers`` workers and what is stored, description) of one config file."""
    from emrun import plugins

    try:
        config = load(path, run_plugins=False)  # a config is code only when swept: list imports no plug-in
    except plugins.PluginsNotRun as error:
        listed = "; ".join(map(plugins.describe_line, error.records))
        return (str(error.name or path.stem), "lists plug-ins, not imported here", f"plug-ins {listed}; "
                f"'emrun sweep {path} --dry-run --run-plugins' prices it", "")
    except (ConfigError, RegistryError) as error:
        return path.stem, "does not load", str(error).split(": ", 1)[-1], ""
    values = config.values
    what = values.get("compare_to") or values.get("check") or values.get("study") or values["experiment"]
    from emrun.estimate import cost_text

    state, stored, planned, _ = stored_state(config, results_root)
    cost = f"{cost_text(config, workers)}; " + {"none": "nothing stored", "damaged": "damaged manifest",
                                        "other": "another version stored",
                                        "this": f"{stored} batches stored" if config.kind.adaptive else
                                        f"{stored} of {planned} batches stored"}[state]
    return config.name, what, cost, values.get("description") or ""
