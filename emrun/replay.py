"""Re-run one stored trial from its seeds: check it reproduces its row exactly, and show its trace.

The whole batch is re-run (a batch is one vectorised computation, and its rows are what was
stored), so the comparison is with the same arithmetic as the sweep. When the config recorded no
trace, a second run with tracing gives one; tracing takes the numpy loop, which agrees with the
compiled kernel to about 1e-10, and the text says so.
"""

from __future__ import annotations

import copy
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emrun.config import Config
from emrun.files import save_figure
from emrun.invocation import command
from emrun.results import folder_config, stored
from emrun.store import MANIFEST, TIMING_COLUMNS, has_rows, producing_sweeps


class ReplayError(ValueError):
    """A trial id that does not name a stored trial; the message says what exists."""


@dataclass(frozen=True)
class Replay:
    reproduced: bool
    trace: pd.DataFrame  # wide: iteration, loss, pi_0.., mu_0_0..
    text: str


def _stored_row(root: Path, trial_id: str, run_plugins: bool = False, say=None) -> tuple[dict, pd.Series, Config]:
    parts = trial_id.split("/")
    if len(parts) != 3 or not parts[2].isdigit():
        raise ReplayError(f"trial id {trial_id!r}: expected CONFIG/BATCH_ID/RUN, e.g. "
                          "gmm_figure2/m2-D2-em-near_one_cluster-truth3/0")
    name, batch_id, run = parts[0], parts[1], int(parts[2])
    folder = root / name
    if not (folder / MANIFEST).exists():
        raise ReplayError(f"no results folder {folder} (configs with results: "
                          f"{', '.join(sorted(p.parent.name for p in root.glob('*/' + MANIFEST))) or 'none'})")
    manifest, config = folder_config(folder, run_plugins, say)  # its plug-ins run only if the user asked
    if not config.kind.replayable:
        raise ReplayError(f"{folder} holds {config.kind.row_noun} of experiment {config.kind.name}, not trials: there is "
                          "no run to replay (run its sweep again: the rows are deterministic)")
    if not has_rows(folder):
        sweeps = producing_sweeps(manifest["sweeps"]) or [f"emrun sweep configs/{name}.yaml"]
        sweeps = [command(*shlex.split(sweep)[1:]) for sweep in sweeps]  # the program as replay was run
        raise ReplayError(f"{folder} holds no trial rows on this machine (rows are not committed: a fresh clone has the "
                          f"reports only). Run '{sweeps[0]}' first (or the make target that runs it, README), then "
                          "replay.")
    rows = stored(folder, config=config).rows
    match = rows[(rows["batch_id"] == batch_id) & (rows["run_index"] == run)]
    if match.empty:
        batches = rows["batch_id"].unique()
        raise ReplayError(f"no stored trial {batch_id}/{run} in {folder} ({len(batches)} batches, e.g. {batches[0]}; "
                          f"runs 0-{rows['run_index'].max()})")
    return manifest, match.iloc[0], config


def _wide(traces: pd.DataFrame, run: int) -> pd.DataFrame:
    mine = traces[traces["run_index"] == run].copy()
    mine["name"] = np.select([mine["quantity"] == "loss", mine["quantity"] == "pi"],
                             ["loss", "pi_" + mine["component"].astype(str)],
                             "mu_" + mine["component"].astype(str) + "_" + mine["feature"].astype(str))
    return mine.pivot_table(index="iteration", columns="name", values="value", sort=False).reset_index()


def replay(root: Path, trial_id: str, every: int | None = None, run_plugins: bool = False, say=None) -> Replay:
    """Re-run the trial, compare with its stored row, and return its trace and a text summary. A
    folder run with plug-ins is replayed only with ``run_plugins`` (their code runs)."""
    manifest, stored, config = _stored_row(root, trial_id, run_plugins, say)
    values, kind = config.values, config.kind
    try:
        spec = kind.find_batch(config, stored["batch_id"])
    except KeyError:
        raise ReplayError(f"batch {stored['batch_id']} is not a batch of config {values['name']}") from None
    run = int(stored["run_index"])
    result = kind.run_batch(values, manifest["config_hash"], spec, None)
    again = pd.Series(result.rows[run])
    # Rows stored by an older emrun may lack columns added since; those are listed, not compared.
    columns = [c for c in again.index if c not in TIMING_COLUMNS and c in stored.index]
    newer = [c for c in again.index if c not in stored.index]
    differing = [c for c in columns if not _same(again[c], stored[c])]
    lines = [*_described(trial_id, stored),
             f"re-run reproduces the stored row exactly ({len(columns)} columns)" if not differing else
             f"re-run DIFFERS from the stored row in: {', '.join(differing)}"]
    if newer:
        lines.append(f"(columns added to emrun after this row was stored, not compared: {', '.join(newer)})")

    traces = result.traces
    traced = kind.traced(copy.deepcopy(values)) if traces is None else None
    if traced is not None:
        traces = kind.run_batch(traced, manifest["config_hash"], spec, None).traces
        lines.append("trace from a second run with tracing on (the numpy loop, equal to the sweep's engine to ~1e-10)")
    if traces is None:  # a kind that records no traces
        return Replay(not differing, pd.DataFrame({"iteration": []}), "\n".join(lines + ["(this kind records no trace)"]))
    wide = _wide(traces, run)
    step = every or max(1, len(wide) // 20)
    shown = wide.iloc[sorted(set(range(0, len(wide), step)) | {len(wide) - 1})]
    lines += ["", *_fitted(shown, shutil.get_terminal_size().columns)]
    return Replay(not differing, wide, "\n".join(lines))


TRIAL_COLUMNS = ("algorithm", "m", "D", "truth_seed", "init_seed", "status", "iterations", "loss")


def _described(trial_id: str, stored: pd.Series) -> list[str]:
    """What the stored row is: a trial's algorithm, cell, seeds and ending; another kind's row, its values."""
    if all(column in stored.index for column in TRIAL_COLUMNS):
        return [f"trial {trial_id}: {stored['algorithm']} on m = {stored['m']}, D = {stored['D']}, truth seed "
                f"{stored['truth_seed']}, init seed {stored['init_seed']}",
                f"stored: status {stored['status']}, {stored['iterations']} iterations, loss {float(stored['loss'])!r}"]
    shown = ", ".join(f"{column} {stored[column]!r}" for column in stored.index[:8] if column not in TIMING_COLUMNS)
    return [f"row {trial_id}: {shown}"]


def _fitted(table: pd.DataFrame, width: int) -> list[str]:
    """The table as text within ``width`` columns: iteration, loss and the weights first, then as
    many means as fit; the others are named as left out (the plot shows every one)."""
    def render(columns):
        return table[columns].to_string(index=False, float_format=lambda v: f"{v:.6g}")

    columns = [c for c in table.columns if not c.startswith("mu_")]
    means = [c for c in table.columns if c.startswith("mu_")]
    while means and max(map(len, render([*columns, means[0]]).splitlines())) <= width:
        columns.append(means.pop(0))
    note = [f"({len(means)} columns of mu not shown, to fit {width} columns: --plot draws them all)"] if means else []
    return [render(columns), *note]


def _same(a, b) -> bool:
    if isinstance(a, (list, np.ndarray)) or isinstance(b, (list, np.ndarray)):
        return np.array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    if a is None or b is None or (isinstance(a, float) and np.isnan(a)):
        return (a is None or (isinstance(a, float) and np.isnan(a))) == (b is None or pd.isna(b))
    return a == b


def plot(trace: pd.DataFrame, path: Path, title: str) -> None:
    """Weights (log scale) and loss against the iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for column in [c for c in trace.columns if c.startswith("pi_")]:
        axes[0].plot(trace["iteration"], trace[column], label=column)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("iteration")
    axes[0].set_ylabel("weight")
    axes[0].legend(fontsize=7)
    if "loss" in trace:
        axes[1].plot(trace["iteration"], trace["loss"])
    axes[1].set_xlabel("iteration")
    axes[1].set_ylabel("loss (average negative log-likelihood)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)
