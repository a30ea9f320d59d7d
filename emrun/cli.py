"""Command line: ``emrun sweep CONFIG`` runs a config, ``emrun report`` writes the reports.

Exit statuses: 0 done; 1 something failed while running or reading (failed trials or batches, a
full disk, a damaged folder); 2 the command cannot start (a bad config or argument, a locked
folder, nothing to report); 130 interrupted (Ctrl-C; 143 SIGTERM, 129 SIGHUP: 128 + the signal, which
stops a command as Ctrl-C does); 141 the output's reader stopped (``| head``).
No input gives a traceback: an unexpected error is one line (``EMRUN_DEBUG=1`` shows where).
"""

from __future__ import annotations

from emrun import env

env.single_threaded()  # before anything imports numpy, on every path (--workers 1 included)

import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402

from emrun import faults, interrupts, listing, sweeping  # noqa: E402
from emrun.config import ConfigError, load  # noqa: E402
from emrun.invocation import command, program  # noqa: E402
from emrun.registry import RegistryError  # noqa: E402
from emrun.sweeping import fail  # noqa: E402

LONG_SWEEP_HOURS = 24  # a sweep whose cost model says more CPU-hours than this needs --allow-long


_fail = fail


def _say(text: str) -> None:
    click.echo(f"emrun: {text}", err=True)


# Reading results runs no code of theirs: a results folder is data. Running the plug-ins a folder
# keeps (plugins/) is the user's explicit choice, and each one is named as it runs.
_RUN_PLUGINS = click.option("--run-plugins", is_flag=True,
                            help="Import and run the plug-ins a results folder keeps (plugins/), each named as it runs; "
                                 "without it a folder run with plug-ins is only listed.")


def _load(config_path: str, overrides: tuple[str, ...] = (), run_plugins: bool = True):
    try:
        return load(config_path, overrides, run_plugins)
    except (ConfigError, RegistryError) as error:
        _fail(str(error))


class _Commands(click.Group):
    """Every command's unexpected error becomes one line and exit status 1; a stop signal, one
    line and 128 + the signal (click's own handling would say "Aborted!" and exit 1)."""

    def main(self, *args, **kwargs):
        interrupts.install()  # SIGTERM and SIGHUP stop a command as Ctrl-C does
        return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as error:
            click.echo("emrun: interrupted", err=True)
            sys.exit(interrupts.exit_status(error))
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except BrokenPipeError:  # the output went to a reader that stopped (emrun list | head): as a shell tool
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except Exception as error:
            if os.environ.get("EMRUN_DEBUG"):
                raise
            _fail(f"unexpected {type(error).__name__}: {error} (EMRUN_DEBUG=1 shows where)", code=1)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--dry-run", is_flag=True, help="Print the expanded cells, the trial count and the cost; run nothing.")
@click.option("--replace", is_flag=True, help="Discard stored rows of an earlier version of this config (its criterion "
              "record is kept: a criterion recorded after rows stays so).")
@click.option("--allow-long", is_flag=True, help=f"Run a sweep the cost model prices above {LONG_SWEEP_HOURS} CPU-hours.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--executor", type=click.Choice(("local", "dask")), default="local", show_default=True,
              help="Where batches run: this machine's process pool, or Dask.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler, e.g. tls://HOST:8786 (with --executor dask; without it a LocalCluster of --workers).")
@click.option("--tls-ca", type=click.Path(dir_okay=False, exists=True), default=None,
              help="With a tls:// scheduler: the CA certificate that signed the cluster's certificates.")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True), default=None,
              help="With a tls:// scheduler: this client's certificate.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), default=None,
              help="With a tls:// scheduler: this client's private key (if not in --tls-cert).")
@click.option("--batch-timeout", type=click.FloatRange(0, min_open=True), default=None, metavar="SECONDS",
              help="A batch running longer fails (its worker is stopped) [default: 50 times the cost model's "
                   "estimate of the batch, at least an hour].")
@click.option("--run-plugins", is_flag=True, help="With --dry-run: import the config's plug-ins to expand its plan "
              "(a dry run otherwise lists them by path and hash; a sweep always runs them).")
def sweep(config_path: str, overrides: tuple[str, ...], workers: int, results_root: str, dry_run: bool,
          replace: bool, allow_long: bool, quiet: bool, executor: str, scheduler: str | None, tls_ca: str | None,
          tls_cert: str | None, tls_key: str | None, batch_timeout: float | None, run_plugins: bool) -> None:
    """Run every batch of CONFIG that is not stored yet (so a rerun resumes)."""
    from emrun import plugins
    from emrun.config import MAX_BATCHES, planned_bound

    if dry_run and not run_plugins:
        try:
            config = load(config_path, overrides, run_plugins=False)
        except plugins.PluginsNotRun as error:  # a config is code only when swept
            click.echo(f"config {error.name}: lists plug-ins, not imported by a dry run (a sweep runs them; "
                       "--dry-run --run-plugins imports them to expand the plan):")
            for record in error.records:
                click.echo(f"  plug-in {plugins.describe_line(record)}")
            return
        except (ConfigError, RegistryError) as error:
            _fail(str(error))
    else:
        config = _load(config_path, overrides)
    faults.checkpoint("starting")
    for record in config.values.get("plugins", []):  # a config with plug-ins runs their code: say so
        name = record.get("file") or record.get("module") or f"entry point {record.get('entry_point')}"
        click.echo(f"emrun: plug-in {name} imported (sha256 {str(record.get('sha256'))[:16]})", err=True)
    for record in config.values.get("claim_plugins", []):
        name = record.get("file") or record.get("module")
        click.echo(f"emrun: claim plug-in {name} imported (sha256 {str(record.get('sha256'))[:16]}; judges the rows, "
                   "not part of the config hash)", err=True)
    batches = planned_bound(config)  # counted, not built: a plan is held in memory
    too_many = (f"{config.name}: the config plans up to {batches:,} batches, more than the {MAX_BATCHES:,} a sweep "
                "runs (fewer truths or grid values, or more runs per batch)")
    if dry_run:
        from emrun.estimate import cost_text

        described = config.kind.describe(config)
        lines = [*described[:1], f"time on {workers} worker{'s' if workers != 1 else ''}: {cost_text(config, workers)}",
                 *described[1:], *listing.stored_lines(config, Path(results_root))]
        for line in lines + ([f"a sweep would refuse it: {too_many}"] if batches > MAX_BATCHES else []):
            click.echo(line)
        return
    if batches > MAX_BATCHES:
        _fail(too_many)
    bound = config.kind.estimated_seconds(config.values)
    hours = 0.0 if bound is None else bound / 3600
    if hours > LONG_SWEEP_HOURS and not allow_long:
        _fail(f"{config.name}: the cost model estimated up to {hours:,.0f} CPU-hours (every run to its cap; "
              f"README, 'Cost'); check the config, or run it anyway with --allow-long")
    security = _security(scheduler, tls_ca, tls_cert, tls_key)
    config.kind.prepare(config.values, lambda text: click.echo(f"emrun: {text}", err=True))
    resume = command(*sys.argv[1:])  # the exact command, as it was run, quoted for the shell
    recorded = {"config_file": config_path, "overrides": list(overrides), "results_root": results_root}
    try:
        summary, store, failed_trials, unstored = sweeping.run_sweep(config, results_root, workers, replace, quiet, executor,
                                                             scheduler, security, recorded, batch_timeout)
    except KeyboardInterrupt as error:  # before or between the rounds of batches
        click.echo(f"Interrupted. Resume with the same command: {resume}", err=True)
        sys.exit(interrupts.exit_status(error))
    sweeping.tell(config, summary, store, failed_trials, unstored, resume)


def _security(scheduler: str | None, ca: str | None, cert: str | None, key: str | None):
    """Dask's Security for a tls:// scheduler (certificates may also come from Dask's own config)."""
    if not any((ca, cert, key)):
        return None
    if scheduler is None or not scheduler.startswith("tls://"):
        _fail("--tls-ca, --tls-cert and --tls-key go with --executor dask --scheduler tls://HOST:PORT")
    from distributed.security import Security

    return Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, require_encryption=True)


@main.command()
@click.argument("folders", nargs=-1, type=click.Path(file_okay=False))
@click.option("--results", "results_root", type=click.Path(file_okay=False), default="results", show_default=True,
              help="Root folder of results; without FOLDERS every experiment under it is reported.")
@_RUN_PLUGINS
def report(folders: tuple[str, ...], results_root: str, run_plugins: bool) -> None:
    """Write the report of each results folder and the index RESULTS/REPORT.md."""
    from emrun.report import write_reports
    from emrun.store import has_rows, result_folders

    root = Path(results_root)
    for folder in folders:
        if not Path(folder).is_dir():
            _fail(f"{folder} does not exist")
        if not (Path(folder) / "manifest.json").exists():
            _fail(f"{folder} is not a results folder (no manifest.json; run '{program()} sweep CONFIG' first)")
    chosen = [Path(f) for f in folders]
    if not chosen:
        # Every folder with rows; a folder whose rows were never generated here (a fresh clone
        # holds only the committed reports) keeps its report as it is.
        for folder in result_folders(root):
            if not has_rows(folder):
                click.echo(f"{folder}: no trial rows here; its report is left as it is", err=True)
            elif not run_plugins and listing.folder_plugins(folder):
                click.echo(f"{folder}: run with plug-ins ({'; '.join(listing.folder_plugins(folder))}), which a report runs only "
                           "when asked; its report is left as it is "
                           f"('{command('report', '--run-plugins', str(folder))}' runs them and writes it)", err=True)
            else:
                chosen.append(folder)
    if not chosen and not result_folders(root):
        _fail(f"no results under {root}/ (run '{program()} sweep CONFIG' first)")
    # With no rows anywhere (a fresh clone) only the index is rebuilt, from the verdict files. A
    # folder that cannot be reported is one line; the others are still written.
    written, problems, notices = write_reports(chosen, root, command=" ".join(["emrun report", *sys.argv[2:]]),
                                               run_plugins=run_plugins, say=_say)
    for path in written:
        click.echo(f"wrote {path}")
    for notice in notices:
        click.echo(f"emrun: {notice}", err=True)
    for folder, problem in problems:
        click.echo(f"emrun: error: {folder}: {problem}", err=True)
    if problems:
        sys.exit(1)


@main.command()
@click.argument("paths", nargs=-1, metavar="[FOLDERS]", type=click.Path(file_okay=False))
@click.option("--results", "results_root", type=click.Path(file_okay=False), default="results", show_default=True,
              help="Root folder of results; without FOLDERS every experiment under it is shown.")
@click.option("--configs", "configs_dir", type=click.Path(file_okay=False), default="configs", show_default=True,
              help="Where to look for each folder's config file (CONFIGS/<name>.yaml).")
@_RUN_PLUGINS
def status(paths: tuple[str, ...], results_root: str, configs_dir: str, run_plugins: bool) -> None:
    """Per results folder: batches stored and pending, rows by status, files left out, and whether
    the folder matches its config file. FOLDERS are results folders (results/bmm_table1) or roots
    holding them (results)."""
    from emrun.status import index_lines, status_lines
    from emrun.store import MANIFEST, StoreError, result_folders

    folders = []
    for path in map(Path, paths):
        if not path.is_dir():
            _fail(f"{path} does not exist")
        folders += [path] if (path / MANIFEST).exists() else result_folders(path)
    folders = folders if paths else result_folders(Path(results_root))
    if not folders:
        _fail(f"no results under {'/, '.join(paths or (results_root,))}/ (run '{program()} sweep CONFIG' first)")
    damaged = 0
    for folder in folders:
        try:
            for line in status_lines(folder, Path(configs_dir), run_plugins, _say):
                click.echo(line)
        except (StoreError, RegistryError, ConfigError) as error:
            click.echo(f"emrun: error: {error}", err=True)
            damaged += 1
    for line in index_lines(sorted({Path(folder).parent for folder in folders})):
        click.echo(line)
    if damaged:
        sys.exit(1)


@main.command("list")
@click.option("--configs", "configs_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of config files to list [default: configs, when there is one here].")
@click.option("--results", "results_root", type=click.Path(file_okay=False), default="results", show_default=True,
              help="Root folder of results, for what is stored.")
def list_command(configs_dir: str | None, results_root: str) -> None:
    """The configs (what each reproduces, its description, the cost model's estimate, what is
    stored) and every registered name (kinds, families, algorithms, init schemes, claims...) with
    where it comes from: built in, an installed entry point, or a plug-in file. Outside a checkout
    (no configs/ here), the registered names alone."""
    from emrun.registry import ALL

    width = min(shutil.get_terminal_size().columns, 120)
    if configs_dir is None and not Path("configs").is_dir():  # emrun installed, run from a folder of one's own
        click.echo("No configs/ folder here (give --configs DIR to list a folder of configs).")
    else:
        configs_dir = configs_dir or "configs"
        files = sorted(Path(configs_dir).glob("*.yaml"))
        if not files:
            _fail(f"no config files in {configs_dir}/ (give --configs DIR)")
        workers = os.cpu_count() or 1
        click.echo(f"Configs in {configs_dir}/ (time of a sweep on {workers} worker{'s' if workers != 1 else ''}, "
                   "as 'emrun sweep' runs it: expected, and at most if every run reached its cap; README 'Cost'):")
        for path in files:
            name, what, cost, description = listing.config_row(path, Path(results_root), workers)
            click.echo(f"  {name} ({what}; {cost})")
            click.echo(textwrap.fill(description, width, initial_indent=" " * 6, subsequent_indent=" " * 6))
    click.echo("")
    click.echo("Registered names (use them in a config):")
    for noun, registry in ALL.items():
        by_origin: dict[str, list[str]] = {}
        for name, entry in registry.items():
            by_origin.setdefault(entry.origin, []).append(name)
        text = "; ".join(f"{', '.join(names)} ({origin})" for origin, names in by_origin.items()) or "none registered"
        click.echo(textwrap.fill(f"{noun}: {text}", width, initial_indent="  ", subsequent_indent=" " * 6))


@main.command()
@click.argument("trial_id", metavar="TRIAL_ID")
@click.option("--results", "results_root", type=click.Path(file_okay=False), default="results", show_default=True)
@click.option("--every", type=click.IntRange(1), default=None, help="Print every K-th iteration of the trace.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="Also save the trace as a plot.")
@_RUN_PLUGINS
def replay(trial_id: str, results_root: str, every: int | None, plot_path: str | None, run_plugins: bool) -> None:
    """Re-run one stored trial from its seeds, check it reproduces its row, and show its trace.

    TRIAL_ID is CONFIG/BATCH_ID/RUN, e.g. gmm_figure2/m2-D2-em-near_one_cluster-truth3/0
    (the config name, and the batch_id and run_index columns of the row).
    """
    from emrun import replay as replaying
    from emrun.store import StoreError

    try:
        outcome = replaying.replay(Path(results_root), trial_id, every, run_plugins, _say)
    except (replaying.ReplayError, StoreError, RegistryError) as error:
        _fail(str(error))
    click.echo(outcome.text)
    if plot_path:
        replaying.plot(outcome.trace, Path(plot_path), trial_id)
        click.echo(f"wrote {plot_path}")
    if not outcome.reproduced:
        _fail("the re-run does not reproduce the stored row", code=1)


@main.command("check-plugin")
@click.argument("plugin_path", metavar="FILE", type=click.Path(dir_okay=False))
def check_plugin(plugin_path: str) -> None:
    """Check a plug-in file against emrun's contract, each thing it registers on its own: a
    family's draws (shapes, domains, its generator only), EM never lowering the likelihood,
    gradients matching finite differences, no NaN at zero weights or boundary means; an init
    scheme's shapes and domain, one generator per run; an algorithm's trials independent of their
    batch. Each line names the part at fault. Exit status 1 if any check fails."""
    from emrun.contract import check_file

    try:
        results = check_file(plugin_path)
    except RegistryError as error:
        _fail(str(error))
    for result in results:
        mark = "skip" if result.skipped else "ok  " if result.passed else "FAIL"
        click.echo(f"{mark} {result.subject}: {result.check}" + (f" ({result.detail})" if result.detail else ""))
    run = [r for r in results if not r.skipped]
    failed = [r for r in run if not r.passed]
    click.echo(f"{len(run) - len(failed)} of {len(run)} checks passed" + (f", {len(results) - len(run)} not run (a part "
                                                                          "they need failed)" if len(run) < len(results)
                                                                          else ""))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
