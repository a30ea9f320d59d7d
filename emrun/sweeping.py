"""What ``emrun sweep`` does once its config is loaded and checked: open the results folder
(recording the criteria the config will be judged on before any row), run the plan's rounds,
close the sweep's record, and tell the user what happened and what to run next. The command's
options and its dry run stay in :mod:`emrun.cli`."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from emrun.invocation import program

# Failures that are a plug-in's wrong output (emrun.algorithms, emrun.experiments): deterministic.
PLUGIN_FAULTS = ("PluginOutputError", "algorithm '")


def fail(message: str, code: int = 2) -> None:
    """One line on stderr, and the exit status (emrun.cli's statuses)."""
    click.echo(f"emrun: error: {message}", err=True)
    sys.exit(code)


def run_sweep(config, results_root: str, workers: int, replace: bool, quiet: bool, executor: str,
               scheduler: str | None, security, recorded: dict, batch_timeout: float | None = None):
    from emrun import plugins
    from emrun.batch import ExecutorError
    from emrun.kinds import tasks_for
    from emrun.runner import describe, run_until_stable
    from emrun.store import ResultStore, StoreError, StoreWriteError, provenance

    sweep = {**provenance(sys.argv), "workers": workers, "executor": executor, "scheduler": scheduler, **recorded}
    try:
        with ResultStore.opened(Path(results_root), config.values, config.hash, sweep, replace,
                                config.kind.batch_check(config.values), record_criteria(config)) as store:
            for plugin in (*config.plugins, *config.claim_plugins):  # a copy travels with the results, for report and replay
                store.keep_file(plugins.copy_name(plugin.label, plugin.sha256), plugin.source)
            try:
                summary = run_until_stable(lambda: tasks_for(config, store), store, workers, config.kind.adaptive,
                                           progress=not quiet, label=config.name, executor=executor,
                                           scheduler=scheduler, security=security, batch_timeout=batch_timeout)
            except ExecutorError as error:
                store.finish_sweep({}, "could not start")
                fail(str(error))
            except KeyboardInterrupt:  # while a round was planned: the manifest must not say running
                store.finish_sweep({}, "interrupted")
                raise
            state = ("interrupted" if summary.interrupted else "stopped" if summary.write_error else
                     "failed" if summary.failed else "finished")
            if not summary.write_error:
                store.finish_sweep(describe(summary), state)
            stored = store.stored_batches()
            failed_trials = {batch: runs for batch, runs in stored.items() if runs}
            # A batch written in this sweep can still be refused when it is read back (its rows
            # outside the kind's schema): it was set aside, so the folder is not complete.
            # (After a failed batch an adaptive plan may hold blocks never run: those are not refused.)
            unstored = [] if summary.interrupted or summary.write_error or summary.failed else sorted(
                {task.task_id for task in tasks_for(config, store)} - set(stored))
    except StoreWriteError as error:
        fail(str(error), code=1)
    except StoreError as error:
        fail(str(error))
    return summary, store, failed_trials, unstored


def record_criteria(config):
    """What a sweep records before any row is written: the criterion of every claim the config will
    be judged on (emrun.criteria.record)."""
    from emrun.criteria import record

    declared = config.kind.declared_claims(config.values)

    def note(manifest: dict, rows_stored: bool) -> None:
        found = record.of(manifest)
        # Rows existed if any are stored, or if an earlier sweep stored some (removed since, e.g. by make
        # clean: the same config gives the same rows).
        # Or if the folder held rows of an earlier version of the config, replaced (--replace) since.
        rows_exist = rows_stored or any(sweep.get("batches_completed") for sweep in manifest["sweeps"][:-1]) \
            or any(replaced.get("had_rows") for replaced in found.get("replaced", []))
        first = len(manifest["sweeps"]) == 1 and not rows_exist
        if record.note_declared(found, declared, record.now(), rows_exist, first):
            manifest["criteria"] = found

    return note


def tell(config, summary, store, failed_trials: dict, unstored: list[str], resume: str) -> None:
    """What the sweep did, and what to run next."""
    done = summary.skipped + summary.completed - len(unstored)
    click.echo(f"{config.name}: {done} of {summary.total} batches stored in {store.folder} "
               f"({summary.completed} run now in {summary.seconds:.1f} s, {summary.skipped} already there)")
    if summary.lost_workers:
        click.echo(f"Workers lost during the sweep: {', '.join(summary.lost_workers)}; their batches ran again "
                   "(each batch is stored once)", err=True)
    if summary.write_error:
        fail(summary.write_error, code=1)
    if summary.interrupted:
        how = "" if summary.stop_signal == signal.SIGINT else f" by {signal.Signals(summary.stop_signal).name}"
        click.echo(f"Interrupted{how}: {summary.total - done} batches left. Resume with the same command: {resume}",
                   err=True)
        sys.exit(128 + summary.stop_signal)
    for task_id, error in summary.failed.items():
        click.echo(f"  failed batch: {task_id}: {error}", err=True)
    errors = list(summary.failed.values())
    if failed_trials:
        errors += _print_failed_trials(store.folder, config)
    if unstored:
        fail(f"{len(unstored)} batches were written but refused when read back (set aside, see above), e.g. "
              f"{unstored[0]}; this is a fault in emrun or a plug-in, not in the config: running again repeats it",
              code=1)
    if summary.failed or failed_trials:
        counts = f"{len(summary.failed)} batches and {sum(map(len, failed_trials.values()))} trials failed"
        if errors and all(error.startswith(PLUGIN_FAULTS) for error in errors):  # retrying repeats them
            fail(f"{counts}: a plug-in's output is wrong (above), which running again repeats; fix the plug-in", code=1)
        fail(f"{counts}; run the same command again to retry only those: {resume}", code=1)


def _print_failed_trials(folder: Path, config) -> list[str]:
    """Print the failed trials (the first ten); return every one's error."""
    from emrun.batch import FAILED
    from emrun.results import stored

    rows = stored(folder, config=config).rows
    failed = rows[rows["status"] == FAILED]
    for row in failed.head(10).itertuples():
        click.echo(f"  failed trial: {row.batch_id}/{row.run_index} (init seed {row.init_seed}): {row.error}", err=True)
    if len(failed) > 10:
        click.echo(f"  ... and {len(failed) - 10} more ({program()} status)", err=True)
    return [str(error) for error in failed["error"]]
