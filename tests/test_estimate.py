"""The expected time of a sweep (issue 30, item 6): calibrated on the committed manifests and rows,
held leave-one-out against them. Reads committed files only: no sweep runs, nothing is timed."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest

from emrun import calibrate, estimate
from emrun.batch import Cell
from emrun.convergence import Convergence, expected_blocks
from emrun.work import studies

ROOT = Path(__file__).resolve().parents[1]


def paper_configs() -> list[str]:
    """The configs `make paper` sweeps: the Makefile's PAPER variable, expanded."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    variables = dict(re.findall(r"^([A-Z_]+) := (.*)$", text, flags=re.M))
    words = variables["PAPER"].split()
    while any(w.startswith("$(") for w in words):
        words = [x for w in words for x in (variables[w[2:-1]].split() if w.startswith("$(") else [w])]
    return words


@pytest.fixture(scope="module")
def records() -> dict:
    return calibrate.measurements(ROOT / "results", ROOT / "configs")


def test_the_committed_calibration_is_what_the_command_writes(records):
    built = calibrate.build(ROOT / "results", ROOT / "configs")
    assert calibrate.text(built) == calibrate.CALIBRATION.read_text(), "re-run: python -m emrun.calibrate"


@pytest.mark.parametrize("name", paper_configs())
def test_each_make_paper_config_is_estimated_within_2x_without_its_own_measurements(records, name):
    assert name in records, f"{name}: no complete producing sweep of this config version is committed"
    expected, measured = estimate.leave_one_out(records, name), records[name]["seconds"]
    assert expected is not None and measured / 2 <= expected <= 2 * measured, (name, expected, measured)


def test_leave_one_out_reads_neither_the_configs_seconds_nor_its_rows(records):
    name = "bmm_table3"  # its rows decide how many truths an adaptive plan draws
    slower = [{**i, "seconds": i["seconds"] * 100} for i in records[name]["intervals"]]
    changed = {**records, name: {**records[name], "seconds": records[name]["seconds"] * 100, "intervals": slower,
                                 "rows": {"blocks": [{**b, "found": 1} for b in records[name]["rows"]["blocks"]]}}}
    assert estimate.leave_one_out(changed, name) == pytest.approx(estimate.leave_one_out(records, name), rel=1e-9)


def test_durations_print_seconds_below_2_minutes_minutes_below_2_hours():
    assert [estimate.duration(s) for s in (0.00014, 0.44, 40.2, 119, 600, 5040, 3.5 * 3600, 3.5e9)] == [
        "0.00014 s", "0.44 s", "40 s", "119 s", "10 minutes", "84 minutes", "3.5 hours", "972,222 hours"]


def test_the_expected_time_comes_first_and_the_time_at_the_caps_second():
    from emrun.config import load

    text = estimate.cost_text(load(ROOT / "configs" / "bmm_table3.yaml", run_plugins=False), 2)
    found = re.fullmatch(r"expected about (.+) \(at most (.+) if every run reached its cap\)", text)
    assert found, text

    def seconds(shown: str) -> float:
        number, unit = shown.split(" ")
        return float(number) * {"s": 1, "minutes": 60, "hours": 3600}[unit]

    assert seconds(found.group(1)) < seconds(found.group(2))


def test_an_adaptive_plan_draws_whole_blocks_until_enough_truths_have_an_event():
    assert expected_blocks(1.0, 10, 10, 200) == 10  # every truth has one: the first block is enough
    assert expected_blocks(0.0, 10, 10, 200) == pytest.approx(200)  # none has one: every truth is drawn
    # one truth in two: the first block (10 truths) is enough with chance 2^-10, two blocks with chance
    # P(at least 10 of 20), and so on
    at_least_10 = [sum(math.comb(n, k) for k in range(10, n + 1)) / 2**n for n in (10, 20, 30, 40)]
    assert expected_blocks(0.5, 10, 10, 200) == pytest.approx(10 + sum(10 * (1 - p) for p in at_least_10), rel=1e-3)
    assert expected_blocks(0.5, 10, 10, 10**9) < 40  # and a huge cap is never walked block by block


def test_concurrent_sweeps_of_the_project_count_as_contention():
    def entry(start: str, seconds: float, workers: int, **more) -> dict:
        return calibrate.interval({"time": f"2026-12-03T04:{start}+00:00", "seconds": seconds, "workers": workers,
                                   "batches_completed": 20, "cpu_count": 2, **more})

    alone = entry("00:10", 60, 1)
    assert estimate.contention([alone], []) == 1.0
    assert estimate.contention([alone], [entry("00:00", 5, 2), entry("00:20", 60, 2)]) == 1.0  # ended, not started
    # two one-worker sweeps running when it started: 3 processes on 2 cores
    assert estimate.contention([alone], [entry("00:00", 600, 1), entry("00:05", 30, 1)]) == pytest.approx(1.5)
    # a load average recorded at the start stands for other work: 2 workers + 2 others on 2 cores
    assert estimate.contention([entry("00:00", 60, 2, load_average=2.0)], []) == pytest.approx(2.0)


def test_the_trap_of_theorem_7_lasts_as_long_as_its_gradient_flow_says():
    """gradnorm's expected steps come from the gradient at its initialisation alone (no stored rows):
    they match the committed runs' escape steps within 2 % (or two steps)."""
    from emrun.config import load

    config = load(ROOT / "configs" / "gradem_figure2_gradnorm.yaml", run_plugins=False)
    stored = pd.read_csv(ROOT / "results" / "gradem_figure2_gradnorm" / "summary.csv").dropna(subset=["trap_steps"])
    for row in stored.itertuples():
        cell = Cell(int(row.m), int(row.D), "gd", 0.7, None)
        assert studies.escape_steps(config.values, cell) == pytest.approx(row.trap_steps, rel=0.02, abs=2), (row.m, row.D)


def test_em_on_the_simplex_converges_at_the_rate_of_the_smallest_dft_coefficient():
    from emrun.dynamics import K_MEANS_RADIUS_3

    # weights (0.5, 0.3, 0.2): the Hessian at the truth has eigenvalue 0.07 = dft_min, so 1 - 0.07 per step
    steps = studies.linear_iterations([0.5, 0.3, 0.2], 2, K_MEANS_RADIUS_3, 1e-10)
    assert steps == pytest.approx(math.log(0.335 / 1e-10) / -math.log(0.93), rel=0.02)
    assert studies.linear_iterations([1 / 3, 1 / 3, 1 / 3], 2, K_MEANS_RADIUS_3, 1e-10) is None  # no linear rate


def test_a_question_nothing_stored_answers_is_answered_with_the_cap():
    from emrun.config import load

    config = load(ROOT / "configs" / "bmm_table1.yaml", run_plugins=False)
    cell = config.cells()[0]
    assert Convergence({}).trial_iterations(config.values, cell, 20000) == (20000.0, 1.0)


def test_sweeps_that_recorded_no_load_inform_the_prices_but_not_their_level(records):
    # Sweeps run beside unrecorded work (no load average) are slower by an unknown factor: one
    # fitted factor absorbs it, so copies of five measured sweeps made 3x slower than they would
    # have been alone, and stripped of their load, neither move the prices nor go unnoticed.
    known = {n: r for n, r in records.items() if r.get("intervals") and all(i.get("load") is not None
                                                                             for i in r["intervals"])}
    base, _ = estimate.fit_without(known)
    copies = {f"{n} again": {**r, "seconds": 3 * r["seconds"] / estimate.contention(r["intervals"], []),
                             "intervals": [{**i, "load": None, "start": i["start"] - 1e7} for i in r["intervals"]]}
              for n, r in list(known.items())[:5]}
    prices, _ = estimate.fit_without({**known, **copies})
    assert prices["unrecorded"] == pytest.approx(3.0, rel=0.2)
    for name in ("sweep", "kernel", "batch"):
        assert prices[name] == pytest.approx(base[name], rel=0.25), name


def test_a_kind_that_always_loads_kernels_has_the_load_counted():
    """The dynamics kind loads the Gaussian kernels in every worker (prepares_kernels); a kind
    that does not, on a model without accelerators, loads none."""
    from emrun import work

    assert work.loads_kernel({"experiment": "dynamics", "model": "gaussian", "grid": {"algorithm": ["gd"]}})
    assert not work.loads_kernel({"experiment": "theory", "model": "gaussian", "grid": {"algorithm": ["gd"]}})
    assert work.loads_kernel({"experiment": "grid", "model": "bernoulli", "grid": {"algorithm": ["em"]}})


def test_the_kernel_load_is_counted_once_in_process_and_per_round_on_a_pool():
    import numpy as np

    from emrun.estimate import PER_BATCH, _wall

    units, prices = np.zeros((1, len(PER_BATCH))), np.zeros(len(PER_BATCH))
    units[0, 0], prices[0] = 1.0, 1.0  # one second per batch
    assert _wall(units, np.array([1.0]), prices, 5.0, 0.5, 1, 2) == 0.5 + 1.0  # one batch: the sweep's own process
    assert _wall(units, np.array([4.0]), prices, 5.0, 0.5, 2, 2) == 2 * (5.0 + 0.5) + 2.0  # two rounds on a pool of 2
    assert _wall(units, np.array([4.0]), prices, 5.0, 0.5, 1, 1) == 0.5 + 4.0  # one worker: in process
