"""The real CLI end to end on tiny configs: sweep, report, resume, workers, refusals."""

import json
import shlex
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import emrun as emrun_package
from emrun import experiments
from emrun.config import load
from emrun.results import load_results
from emrun.selection import first_k_cluster_run, truths_needed
from emrun.store import TIMING_COLUMNS
from tests.conftest import FIRST_K, emrun


def rows_of(folder):
    return load_results(folder).drop(columns=list(TIMING_COLUMNS))


def test_sweep_then_report(tiny_config):
    cwd = tiny_config.parent
    result = emrun("sweep", str(tiny_config), "--workers", "1", cwd=cwd)
    assert "8 of 8 batches stored" in result.stdout
    rows = emrun_package.load_results(cwd / "results" / "tiny")  # the public API
    assert len(rows) == 8 * 6
    assert set(rows["status"]) <= {"converged", "capped", "diverged"}
    assert rows["likelihood_ratio"].between(0, 1).all()
    # EM and GD start from the same inits (a paired comparison).
    em = rows[rows["algorithm"] == "em"].sort_values(["m", "D", "run_index"])
    gd = rows[rows["algorithm"] == "gd"].sort_values(["m", "D", "run_index"])
    assert list(em["init_seed"]) == list(gd["init_seed"])
    assert [list(x) for x in em["init_mu"]] == [list(x) for x in gd["init_mu"]]

    again = emrun("sweep", str(tiny_config), cwd=cwd)
    assert "0 run now" in again.stdout and "8 already there" in again.stdout

    # A folder with a manifest but no rows (as in a fresh clone) keeps its report untouched.
    ghost = cwd / "results" / "ghost"
    ghost.mkdir()
    (ghost / "manifest.json").write_text((cwd / "results" / "tiny" / "manifest.json").read_text())
    (ghost / "report.md").write_text("# kept\n")
    reported = emrun("report", cwd=cwd)
    assert "results/ghost: no trial rows here" in reported.stderr
    assert (ghost / "report.md").read_text() == "# kept\n"
    report = (cwd / "results" / "tiny" / "report.md").read_text()
    assert "## Verdicts on the config's claims" in report and "declares no claims" in report
    assert "Deviations from the paper" not in report and "published" not in report  # no paper sections without compare_to
    assert "## k-cluster rate per algorithm" in report and "## Each algorithm against" not in report
    assert "emrun sweep" in report and "emrun report" in report
    assert "nan" not in (cwd / "results" / "tiny" / "cells.csv").read_text().lower()
    assert "[tiny](tiny/report.md)" in (cwd / "results" / "REPORT.md").read_text()
    history = json.loads((cwd / "results" / "tiny" / "sweeps.json").read_text())["sweeps"]
    assert history[0]["packages"]["numpy"] and "sweep" in history[0]["command"]
    assert "sweeps" not in json.loads((cwd / "results" / "tiny" / "manifest.json").read_text())
    produced = json.loads((cwd / "results" / "tiny" / "provenance.json").read_text())["sweeps"]
    assert produced == history[:1], "the report records the sweep that produced the rows, not the one that found them"


def test_rows_do_not_depend_on_the_number_of_workers(tiny_config):
    cwd = tiny_config.parent
    emrun("sweep", str(tiny_config), "--workers", "1", "--results", "one", "--quiet", cwd=cwd)
    emrun("sweep", str(tiny_config), "--workers", "2", "--results", "two", "--quiet", cwd=cwd)
    pd.testing.assert_frame_equal(rows_of(cwd / "one" / "tiny"), rows_of(cwd / "two" / "tiny"))


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_killed_sweep_resumes_to_the_same_rows(tiny_config, workers):
    cwd = tiny_config.parent
    emrun("sweep", str(tiny_config), "--workers", workers, "--results", "whole", "--quiet", cwd=cwd)
    for kill_after in ("1", "3"):  # SIGKILL after 1, then after 3 more batch writes
        killed = emrun("sweep", str(tiny_config), "--workers", workers, "--results", "cut", "--quiet", cwd=cwd,
                       env={"EMRUN_TEST_KILL_AT": f"batch_written:{kill_after}"}, check=False)
        assert killed.returncode == -9
    assert len(list((cwd / "cut" / "tiny" / "batches").glob("*.parquet"))) == 4
    assert not list((cwd / "cut" / "tiny" / "batches").glob(".*"))  # no temp file left behind
    emrun("sweep", str(tiny_config), "--workers", workers, "--results", "cut", "--quiet", cwd=cwd)
    cut = rows_of(cwd / "cut" / "tiny")
    assert not cut.duplicated(["batch_id", "run_index"]).any()
    pd.testing.assert_frame_equal(rows_of(cwd / "whole" / "tiny"), cut)


@pytest.mark.slow
def test_changed_config_is_refused_then_replaced(tiny_config):
    cwd = tiny_config.parent
    emrun("sweep", str(tiny_config), "--quiet", "--set", "runs=2", cwd=cwd)
    refused = emrun("sweep", str(tiny_config), "--quiet", "--set", "runs=3", cwd=cwd, check=False)
    assert refused.returncode == 2 and "another version of config 'tiny'" in refused.stderr
    assert "--replace" in refused.stderr and "Traceback" not in refused.stderr
    emrun("sweep", str(tiny_config), "--quiet", "--set", "runs=3", "--replace", cwd=cwd)
    assert set(load_results(cwd / "results" / "tiny")["run_index"]) == {0, 1, 2}


@pytest.mark.slow
def test_corrupt_batch_file_is_set_aside_and_rerun(tiny_config):
    cwd = tiny_config.parent
    emrun("sweep", str(tiny_config), "--quiet", cwd=cwd)
    before = rows_of(cwd / "results" / "tiny")
    victim = sorted((cwd / "results" / "tiny" / "batches").glob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[:100])  # truncated
    result = emrun("sweep", str(tiny_config), "--quiet", cwd=cwd)
    assert "set_aside" in result.stderr and "1 run now" in result.stdout
    pd.testing.assert_frame_equal(before, rows_of(cwd / "results" / "tiny"))


@pytest.mark.slow
def test_diverged_run_is_an_outcome_counted_in_the_report(tmp_path):
    # A given truth that rarely shows x = 1, and a given init that a large GD step clips to 0.
    config = tmp_path / "div.yaml"
    config.write_text("""\
name: div
seed: 1
grid: {m: [2], D: [1], algorithm: [em, gd], step: [1.0], init: [given]}
truths: [{pi: [0.5, 0.5], mu: [[0.001], [0.001]]}]
runs: 2
init_options:
  given: [{pi: [0.5, 0.5], mu: [[0.01], [0.01]]}, {pi: [0.5, 0.5], mu: [[0.001], [0.001]]}]
""")
    emrun("sweep", str(config), "--quiet", cwd=tmp_path)
    rows = load_results(tmp_path / "results" / "div")
    gd = rows[rows["algorithm"] == "gd"].set_index("run_index")
    assert gd.loc[0, "status"] == "diverged" and gd.loc[0, "loss"] == np.inf
    assert gd.loc[0, "likelihood_ratio"] == 0.0 and not gd.loc[0, "k_cluster"]
    assert (rows[rows["algorithm"] == "em"]["status"] != "diverged").all()
    emrun("report", cwd=tmp_path)
    report = (tmp_path / "results" / "div" / "report.md").read_text()
    assert "Diverged runs: em 0, gd 1." in report
    assert "nan" not in (tmp_path / "results" / "div" / "cells.csv").read_text().lower()


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_stops_with_a_resume_message(tiny_config, workers):
    cwd = tiny_config.parent
    # SIGINT's default handler, as in a terminal (a shell's background job would ignore it).
    command = ["sweep", str(tiny_config), "--workers", workers, "--quiet", "--results", "out", "--set", "grid.m=[2, 3]"]
    stopped = emrun(*command, cwd=cwd, env={"EMRUN_TEST_KILL_AT": "batch_written:2:INT"}, check=False,
                    restore_sigint=True)
    assert stopped.returncode == 130, stopped.stderr
    assert "Interrupted" in stopped.stderr and "Traceback" not in stopped.stderr
    # The exact command as it was run, quoted for the shell, so that pasting it resumes this folder
    # and no other.
    program = [sys.executable, "-m", "emrun.cli"]
    assert f"Resume with the same command: {shlex.join([*program, *command])}" in stopped.stderr
    stored = len(list((cwd / "out" / "tiny" / "batches").glob("*.parquet")))
    assert 2 <= stored < 8
    printed = stopped.stderr.split("Resume with the same command: ")[1].splitlines()[0]
    resumed = subprocess.run(printed, shell=True, cwd=cwd, capture_output=True, text=True, check=True)
    assert f"{stored} already there" in resumed.stdout
    assert len(load_results(cwd / "out" / "tiny")) == 8 * 6


@pytest.mark.slow
def test_first_k_cluster_sweep_draws_truths_until_enough_and_reports(tmp_path):
    config = tmp_path / "fk.yaml"
    config.write_text(FIRST_K + "claims: [ratio_falls_with_D]\n")
    emrun("sweep", str(config), "--quiet", "--workers", "1", cwd=tmp_path)
    rows = load_results(tmp_path / "results" / "fk")
    firsts = first_k_cluster_run(rows)
    for D in (3, 4):
        mine = firsts[firsts["D"] == D]
        drawn = rows[rows["D"] == D].groupby("algorithm")["truth_index"].nunique()
        # Whole blocks of 2, stopping at the first block that completes 3 truths with a k-cluster
        # point (or at 12 truths), for EM and GD alike.
        assert drawn["em"] == drawn["gd"] == truths_needed(mine, 3, 2, 12)
        hits = (mine["first_run"] >= 0).cumsum().to_numpy()
        assert drawn["gd"] == 12 or (hits[drawn["gd"] - 1] >= 3 and (drawn["gd"] == 2 or hits[drawn["gd"] - 3] < 3))
    assert (rows[rows["algorithm"] == "em"].groupby("D")["run_index"].max() == 0).all()
    again = emrun("sweep", str(config), "--quiet", cwd=tmp_path)
    assert "0 run now" in again.stdout  # the plan is complete: nothing more to draw
    emrun("report", cwd=tmp_path)
    report = (tmp_path / "results" / "fk" / "report.md").read_text()
    assert "## Table 3: mean likelihood ratio" in report and "tried" in report
    assert "get worse as D grows" in report


@pytest.mark.slow
def test_each_em_update_is_paired_with_every_other_in_its_report(tiny_config):
    cwd = tiny_config.parent
    configs = [tiny_config]
    for rule, other in (("authors", "ecm"), ("ecm", "authors")):
        configs.append(cwd / f"{rule}.yaml")
        declared = f"companions: {{simultaneous: tiny, {other}: tiny_{other}}}"  # the runs to pair with
        configs[-1].write_text(tiny_config.read_text().replace("name: tiny", f"name: tiny_{rule}\nem_update: {rule}\n"
                                                                             f"{declared}")
                               .replace("algorithm: [em, gd]", "algorithm: [em]"))
    for config in configs:
        emrun("sweep", str(config), "--quiet", "--workers", "1", cwd=cwd)
    standard = load_results(cwd / "results" / "tiny")
    standard = standard[standard["algorithm"] == "em"]
    emrun("report", cwd=cwd)
    for rule, other in (("authors", "ecm"), ("ecm", "authors")):
        rows = load_results(cwd / "results" / f"tiny_{rule}")
        assert set(rows["em_update"]) == {rule} and set(rows["algorithm"]) == {"em"}
        paired = rows.merge(standard, on=["m", "D", "init_seed"], suffixes=("", "_standard"))
        assert len(paired) == len(rows) == 4 * 6
        assert (paired["loss"] != paired["loss_standard"]).any()  # a different update, run for run
        report = (cwd / "results" / f"tiny_{rule}" / "report.md").read_text()
        assert report.count(f"of {len(rows)} paired runs change outcome") == 2 and "`tiny`" in report
        assert f"`tiny_{other}`" in report
        for paired_with in ("simultaneous", other):
            assert (cwd / "results" / f"tiny_{rule}" / f"em_update_vs_{paired_with}.png").exists()


@pytest.mark.slow
def test_sensitivity_grid_over_step_and_cap_reports_each_setting(tmp_path):
    config = tmp_path / "sens.yaml"
    config.write_text("""\
name: sens
seed: 4
grid: {m: [2, 3], D: [3], algorithm: [gd], step: [0.05, 0.2], gd_max_iter: [40, 400]}
runs: 5
stopping: {gd: {tol: 1.0e-7}}
""")
    emrun("sweep", str(config), "--quiet", "--workers", "1", cwd=tmp_path)
    rows = load_results(tmp_path / "results" / "sens")
    assert len(rows) == 2 * 2 * 2 * 5 and set(rows["max_iter"]) == {40, 400}
    assert (rows["iterations"] <= rows["max_iter"]).all()
    short, long = (rows[rows["max_iter"] == cap].sort_values(["m", "step", "run_index"]).reset_index() for cap in (40, 400))
    # A run capped at 40 is the first 40 iterations of the run capped at 400.
    assert (long["iterations"][short["status"] == "capped"] >= 40).all()
    done = short["status"] == "converged"
    assert (short["iterations"][done] == long["iterations"][done]).all()
    assert [list(x) for x in short["mu"][done]] == [list(x) for x in long["mu"][done]]
    emrun("report", cwd=tmp_path)
    report = (tmp_path / "results" / "sens" / "report.md").read_text()
    assert "## Cap 40: GD k-cluster rate" in report and "## Cap 400: GD k-cluster rate" in report
    assert "at every step size and cap" in report
    assert (tmp_path / "results" / "sens" / "sensitivity.png").exists()


FIGURE2_TINY = """\
name: fig2
model: gaussian
compare_to: uai2019_figure2
seed: 11
grid: {m: [2], D: [2], algorithm: [em, gd], step: [0.01], init: [near_one_cluster]}
data: {samples: 400}
truths: 3
runs: 1
stopping: {em: {max_iter: 30, tol: 1.0e-12}, gd: {max_iter: 30, tol: 1.0e-12}}
init_options: {epsilon: 1.0e-4, at_data_mean: [gd]}
record: {quantities: [pi, mu, loss], every: 1}
"""


@pytest.mark.slow
def test_gaussian_escape_sweep_traces_report_and_replay(tmp_path):
    config = tmp_path / "fig2.yaml"
    config.write_text(FIGURE2_TINY)
    emrun("sweep", str(config), "--quiet", "--workers", "2", cwd=tmp_path)
    folder = tmp_path / "results" / "fig2"
    rows, traces = load_results(folder), emrun_package.load_traces(folder)
    assert len(rows) == 6 and set(rows["model"]) == {"gaussian"}
    # Same truths and first means for both; GD's second mean starts at the sample mean, EM's as drawn.
    values = load(config).values
    for t in range(3):
        em, gd = (rows[(rows["algorithm"] == a) & (rows["truth_index"] == t)].iloc[0] for a in ("em", "gd"))
        data = experiments.make_data(values, 2, 2, t, np.asarray(gd["truth_pi"]), np.asarray(gd["truth_mu"]).reshape(2, 2))
        assert list(gd["init_mu"][:2]) == list(em["init_mu"][:2]) and gd["init_pi"][0] == pytest.approx(1e-4)
        np.testing.assert_allclose(gd["init_mu"][2:], data.mean, rtol=1e-12)
        assert not np.allclose(em["init_mu"][2:], data.mean)
    # Long form: one row per (run, iteration, quantity, component, feature); 31 iterates each.
    assert set(traces["quantity"]) == {"pi", "mu", "loss"}
    per_run = traces.groupby("batch_id")["iteration"].nunique()
    assert (per_run == 31).all()
    last = traces[(traces["iteration"] == 30) & (traces["quantity"] == "pi") & (traces["component"] == 0)]
    merged = last.merge(rows, on=["batch_id", "run_index"])
    assert np.allclose(merged["value"], [p[0] for p in merged["pi"]], rtol=0, atol=0)

    emrun("report", cwd=tmp_path)
    report = (folder / "report.md").read_text()
    assert "EM escapes the one-cluster region" in report and "GD grows pi_1 linearly" in report
    assert "0.0015" in report and (folder / "figure2.png").exists()

    trial = f"fig2/{rows['batch_id'].iloc[0]}/0"
    replayed = emrun("replay", trial, "--plot", str(tmp_path / "trace.png"), cwd=tmp_path)
    assert "reproduces the stored row exactly" in replayed.stdout and (tmp_path / "trace.png").exists()
    missing = emrun("replay", "fig2/nothing/0", cwd=tmp_path, check=False)
    assert missing.returncode == 2 and "no stored trial" in missing.stderr and "Traceback" not in missing.stderr


def test_replay_of_an_untraced_bernoulli_trial_reproduces_its_row(tiny_config):
    cwd = tiny_config.parent
    emrun("sweep", str(tiny_config), "--quiet", "--workers", "1", cwd=cwd)
    rows = load_results(cwd / "results" / "tiny")
    row = rows[rows["algorithm"] == "gd"].iloc[3]
    replayed = emrun("replay", f"tiny/{row['batch_id']}/{row['run_index']}", "--every", "50", cwd=cwd)
    assert "reproduces the stored row exactly" in replayed.stdout and "second run with tracing" in replayed.stdout
    final = replayed.stdout.strip().splitlines()[-1].split()
    assert int(final[0]) == row["iterations"] and float(final[1]) == pytest.approx(row["loss"], rel=1e-5)  # printed to 6 digits


def _git(*args: str, cwd) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
def test_a_sweep_leaves_the_committed_results_as_they_were(tiny_config):
    """Sweep history is this machine's (git-ignored sweeps.json); only a report rewrites tracked files."""
    from pathlib import Path

    cwd = tiny_config.parent
    (cwd / ".gitignore").write_text((Path(__file__).parents[1] / ".gitignore").read_text())
    emrun("sweep", str(tiny_config), "--quiet", "--workers", "1", cwd=cwd)
    emrun("report", cwd=cwd)
    _git("init", "-q", cwd=cwd)
    _git("add", "-A", cwd=cwd)
    _git("commit", "-q", "-m", "results", cwd=cwd)
    folder = cwd / "results" / "tiny"
    assert {"manifest.json", "provenance.json", "report.md"} <= set(_git("ls-files", cwd=folder).split())
    assert "sweeps.json" not in _git("ls-files", cwd=folder)

    emrun("sweep", str(tiny_config), "--quiet", cwd=cwd)  # every batch already stored
    assert _git("status", "--porcelain", cwd=cwd) == ""
    for batch in (folder / "batches").glob("*.parquet"):  # as on a fresh clone: no rows, no history
        batch.unlink()
    (folder / "sweeps.json").unlink()
    status = emrun("status", "--configs", str(cwd), cwd=cwd).stdout
    assert "0 stored, 8 pending" in status and "report.md is there without its rows" in status
    emrun("sweep", str(tiny_config), "--quiet", "--workers", "2", cwd=cwd)
    assert _git("status", "--porcelain", cwd=cwd) == ""
    assert len(json.loads((folder / "sweeps.json").read_text())["sweeps"]) == 2, "the committed provenance, then this"


@pytest.mark.slow
def test_the_index_lists_the_projects_configs_and_names_scratch_studies_apart(tmp_path):
    from tests.conftest import TINY

    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "tiny.yaml").write_text(TINY)
    (tmp_path / "scratch.yaml").write_text(TINY.replace("name: tiny", "name: scratch"))
    emrun("sweep", "configs/tiny.yaml", "--quiet", cwd=tmp_path)
    emrun("sweep", "scratch.yaml", "--quiet", cwd=tmp_path)
    emrun("report", cwd=tmp_path)
    index = (tmp_path / "results" / "REPORT.md").read_text()
    assert "## [tiny](tiny/report.md)" in index and "## [scratch]" not in index
    assert "`scratch`" in index.split("## Not indexed")[1], "a scratch study is named, outside the project's counts"
    assert (tmp_path / "results" / "scratch" / "report.md").exists(), "its own report is written as usual"
