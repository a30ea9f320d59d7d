"""Command line: ``emrun sweep CONFIG`` runs a config, ``emrun report`` writes the reports."""

from __future__ import annotations

import json
import os
import sys

from emrun.runner import SINGLE_THREAD_ENV

# Parallelism is across processes; BLAS threads would only compete with them. This must happen
# before numpy is imported.
for _name, _value in SINGLE_THREAD_ENV.items():
    os.environ.setdefault(_name, _value)

from pathlib import Path  # noqa: E402

import click  # noqa: E402

from emrun import experiments  # noqa: E402
from emrun.config import ConfigError, load  # noqa: E402
from emrun.runner import EXECUTORS, Task, describe, run_tasks  # noqa: E402
from emrun.store import (  # noqa: E402
    FAILED,
    LOCK,
    MANIFEST,
    ResultStore,
    StoreError,
    has_rows,
    load_results,
    provenance,
    result_folders,
)


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"emrun: error: {message}", err=True)
    sys.exit(code)


@click.group()
@click.version_option(package_name="emrun")
def main() -> None:
    """Reproduce experiments on EM and gradient descent for mixture models."""


@main.command()
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key, e.g. --set runs=5 --set grid.m=[2,3]. Repeatable.")
@click.option("--workers", type=click.IntRange(1), default=os.cpu_count() or 1, show_default=True,
              help="Worker processes.")
@click.option("--results", "results_root", type=click.Path(file_okay=False), default="results", show_default=True,
              help="Root folder of results; rows go to RESULTS/<config name>/.")
@click.option("--dry-run", is_flag=True, help="Print the expanded cells and the trial count; run nothing.")
@click.option("--replace", is_flag=True, help="Discard stored rows of an earlier version of this config.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
              help="Where batches run: this machine's process pool, or Dask.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler, e.g. tcp://HOST:8786 (with --executor dask; without it a LocalCluster of --workers).")
def sweep(config_path: str, overrides: tuple[str, ...], workers: int, results_root: str, dry_run: bool,
          replace: bool, quiet: bool, executor: str, scheduler: str | None) -> None:
    """Run every batch of CONFIG that is not stored yet (so a rerun resumes)."""
    try:
        config = load(config_path, overrides)
    except ConfigError as error:
        _fail(str(error))
    adaptive = config.values["experiment"] == "first_k_cluster"
    if dry_run:
        cells, batches = config.cells(), experiments.plan(config)
        runs = config.values["runs"]
        truths = (f"truths in blocks of {config.values['truths']['block']} (at most {config.n_truths})" if adaptive
                  else f"{config.n_truths} truth(s)")
        click.echo(f"config {config.name} (hash {config.hash}): {len(cells)} cells x {truths} x "
                   f"{runs['gd']} GD / {runs['em']} EM runs; {len(batches)} batches in the first round "
                   f"(at most {config.trial_count()} trials)")
        for cell in cells:
            click.echo(f"  {cell.label}")
        return
    try:
        with ResultStore.opened(Path(results_root), config.values, config.hash, " ".join(sys.argv), replace) as store:
            summary = _sweep_rounds(config, store, workers, quiet, adaptive, executor, scheduler)
            failed_trials = {batch: runs for batch, runs in store.stored_batches().items() if runs}
    except StoreError as error:
        _fail(str(error))

    done = summary.skipped + summary.completed
    click.echo(f"{config.name}: {done} of {summary.total} batches stored in {store.folder} "
               f"({summary.completed} run now in {summary.seconds:.1f} s, {summary.skipped} already there)")
    resume = f"emrun sweep {config_path}" + "".join(f" --set {o}" for o in overrides)
    if summary.lost_workers:
        click.echo(f"Dask workers lost during the sweep: {', '.join(summary.lost_workers)}; the scheduler resubmitted "
                   "their batches (each batch is stored once)", err=True)
    if summary.write_error:
        _fail(summary.write_error, code=1)
    if summary.interrupted:
        click.echo(f"Interrupted: {summary.total - done} batches left. Resume with the same command: {resume}", err=True)
        sys.exit(130)
    for task_id, error in summary.failed.items():
        click.echo(f"  failed batch: {task_id}: {error}", err=True)
    if failed_trials:
        rows = load_results(store.folder)
        failed = rows[rows["status"] == FAILED]
        for row in failed.head(10).itertuples():
            click.echo(f"  failed trial: {row.batch_id}/{row.run_index} (init seed {row.init_seed}): {row.error}", err=True)
        if len(failed) > 10:
            click.echo(f"  ... and {len(failed) - 10} more (emrun status)", err=True)
    if summary.failed or failed_trials:
        _fail(f"{len(summary.failed)} batches and {sum(map(len, failed_trials.values()))} trials failed; "
              f"run the same command again to retry only those: {resume}", code=1)


def _sweep_rounds(config, store: ResultStore, workers: int, quiet: bool, adaptive: bool, executor: str,
                  scheduler: str | None):
    """Run the config's batches (re-planning a first_k_cluster experiment until its plan stops
    growing); a stored batch with failed trials is retried for those trials only."""
    started_by = provenance(sys.argv)  # the code and command as they were when the sweep started
    summary = None
    while True:
        stored = load_results(store.folder) if adaptive and has_rows(store.folder) else None
        failed_runs = store.stored_batches()
        tasks = []
        for spec in experiments.plan(config, stored):
            retry = failed_runs.get(spec.batch_id) or None
            tasks.append(Task(spec.batch_id, experiments.run_batch, (config.values, config.hash, spec, retry),
                              experiments.estimated_cost(config.values, spec)))
        result = run_tasks(tasks, store, workers, progress=not quiet, label=config.name, executor=executor,
                           scheduler=scheduler)
        summary = result if summary is None else summary.then(result)
        if not adaptive or result.completed == 0 or result.interrupted or result.failed or result.write_error:
            break
    store.record_sweep({**started_by, "workers": workers, "executor": executor, "scheduler": scheduler,
                        **describe(summary)})
    return summary


@main.command()
@click.argument("folders", nargs=-1, type=click.Path(file_okay=False))
@click.option("--results", "results_root", type=click.Path(file_okay=False), default="results", show_default=True,
              help="Root folder of results; without FOLDERS every experiment under it is reported.")
def report(folders: tuple[str, ...], results_root: str) -> None:
    """Write the report of each results folder and the index RESULTS/REPORT.md."""
    from emrun.report import write_reports

    root = Path(results_root)
    chosen = [Path(f) for f in folders]
    if not chosen:
        # Every folder with rows; a folder whose rows were never generated here (a fresh clone
        # holds only the committed reports) keeps its report as it is.
        for folder in result_folders(root):
            if has_rows(folder):
                chosen.append(folder)
            else:
                click.echo(f"{folder}: no trial rows here; its report is left as it is", err=True)
    if not chosen:
        _fail(f"no results under {root}/ (run 'emrun sweep CONFIG' first)")
    try:
        written = write_reports(chosen, root, command=" ".join(["emrun report", *sys.argv[2:]]))
    except StoreError as error:
        _fail(str(error))
    for path in written:
        click.echo(f"wrote {path}")


@main.command()
@click.argument("results_root", metavar="[RESULTS]", default="results", type=click.Path(file_okay=False))
@click.option("--configs", "configs_dir", type=click.Path(file_okay=False), default="configs", show_default=True,
              help="Where to look for each folder's config file (CONFIGS/<name>.yaml).")
def status(results_root: str, configs_dir: str) -> None:
    """Per results folder: batches stored and pending, trials by status, and whether the folder
    matches its config file."""
    from emrun.config import Config

    root = Path(results_root)
    folders = result_folders(root)
    if not folders:
        _fail(f"no results under {root}/ (run 'emrun sweep CONFIG' first)")
    for folder in folders:
        manifest = json.loads((folder / MANIFEST).read_text())
        values, stored_hash = manifest["config"], manifest["config_hash"]
        config_file = Path(configs_dir) / f"{values['name']}.yaml"
        if not config_file.exists():
            match = f"no {config_file} to compare with"
        else:
            try:
                current = load(config_file).hash
                match = (f"matches {config_file}" if current == stored_hash else
                         f"DIFFERS from {config_file} (hash {current}): 'emrun sweep {config_file} --replace' re-runs it")
            except ConfigError as error:
                match = f"{config_file} does not load: {error}"
        rows = load_results(folder) if has_rows(folder) else None
        config = Config(values, str(folder / MANIFEST))
        planned = experiments.plan(config, rows if values["experiment"] == "first_k_cluster" else None)
        stored = set(rows["batch_id"]) if rows is not None else set()
        pending = [spec.batch_id for spec in planned if spec.batch_id not in stored]
        counts = rows["status"].value_counts().to_dict() if rows is not None and "status" in rows else {}
        lock = folder / LOCK
        click.echo(f"{folder.name} (config hash {stored_hash}; {match})")
        click.echo(f"  batches: {len(stored)} stored, {len(pending)} pending of {len(planned)} planned"
                   + (" (a first_k_cluster plan grows as rows come in)" if values["experiment"] == "first_k_cluster" else ""))
        if values["experiment"] in ("theory", "dynamics"):
            kind = "check" if values["experiment"] == "theory" else "study"
            click.echo(f"  {kind} rows: {0 if rows is None else len(rows)}")
        else:
            click.echo(f"  trials: {sum(counts.values())} (" + ", ".join(
                f"{name} {counts.get(name, 0)}" for name in ("converged", "capped", "diverged", FAILED)) + ")")
        aside = list((folder / "set_aside").glob("*")) if (folder / "set_aside").exists() else []
        click.echo(f"  set aside: {len(aside)} file(s); lock: "
                   + (lock.read_text().strip() if lock.exists() else "none (no sweep running)"))


@main.command()
@click.argument("trial_id", metavar="TRIAL_ID")
@click.option("--results", "results_root", type=click.Path(file_okay=False), default="results", show_default=True)
@click.option("--every", type=click.IntRange(1), default=None, help="Print every K-th iteration of the trace.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="Also save the trace as a plot.")
def replay(trial_id: str, results_root: str, every: int | None, plot_path: str | None) -> None:
    """Re-run one stored trial from its seeds, check it reproduces its row, and show its trace.

    TRIAL_ID is CONFIG/BATCH_ID/RUN, e.g. gmm_figure2/m2-D2-em-near_one_cluster-truth3/0
    (the config name, and the batch_id and run_index columns of the row).
    """
    from emrun import replay as replaying

    try:
        outcome = replaying.replay(Path(results_root), trial_id, every)
    except (replaying.ReplayError, StoreError) as error:
        _fail(str(error))
    click.echo(outcome.text)
    if plot_path:
        replaying.plot(outcome.trace, Path(plot_path), trial_id)
        click.echo(f"wrote {plot_path}")
    if not outcome.reproduced:
        _fail("the re-run does not reproduce the stored row", code=1)


if __name__ == "__main__":
    main()
