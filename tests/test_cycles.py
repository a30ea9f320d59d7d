"""Projected GD can end in a cycle: the decision at the cap must not depend on the cap's parity.

The runs below are the ones where it did, before the cycle status: Table 3's m = 5, D = 10, truth 1,
run 0 (pi_2 alternating between 0 and about 0.0015), and Table 1's m = 4, D = 6 runs whose k-cluster
decision differed between caps 10000 and 10001 (period 2 and period 6, drifting slowly).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emrun import experiments
from emrun.algorithms import CYCLE_PERIODS, run_batch
from emrun.batch import CAPPED, CYCLING, BatchSpec
from emrun.config import load
from emrun.models import bernoulli

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _gd_rows(config: str, m: int, D: int, cap: int, truth: int, runs: list[int]) -> list[dict]:
    loaded = load(CONFIGS / config, [f"grid.m=[{m}]", f"grid.D=[{D}]", "grid.algorithm=[gd]", f"stopping.gd.max_iter={cap}"])
    (cell,) = loaded.cells()
    return experiments.run_batch(loaded.values, "h", BatchSpec("b", cell, truth), only_runs=runs).rows


@pytest.mark.parametrize(("config", "m", "D", "cap", "truth", "runs"), [
    ("bmm_table3.yaml", 5, 10, 4000, 1, [0]),
    ("bmm_table1_many_truths.yaml", 4, 6, 10000, 0, [5, 47, 54]),
    ("bmm_table1_many_truths.yaml", 4, 6, 10000, 10, [9, 28, 42, 47]),
])
def test_a_cycling_run_is_decided_the_same_at_cap_n_and_n_plus_1(config, m, D, cap, truth, runs):
    at_n, at_n1 = (_gd_rows(config, m, D, limit, truth, runs) for limit in (cap, cap + 1))
    for first, second in zip(at_n, at_n1, strict=True):
        assert first["status"] == second["status"] == CYCLING, (first["run_index"], first["status"], second["status"])
        assert first["k_cluster"] == second["k_cluster"] and first["k"] == second["k"]
        assert first["loss"] == pytest.approx(second["loss"], abs=1e-5)


def _table1_problem():
    pi = np.array([0.3, 0.7])
    mu = np.array([[0.2, 0.8, 0.6], [0.7, 0.3, 0.4]])
    return bernoulli.population_patterns(pi, mu)


def test_a_run_still_drifting_at_the_cap_stays_capped():
    data = _table1_problem()
    rng = np.random.default_rng(3)
    pi = rng.dirichlet(np.ones(3), size=4)
    mu = rng.uniform(0.1, 0.9, size=(4, 3, 3))
    outcome = run_batch("bernoulli", data, pi, mu, "gd", 5, 1e-12, step=0.02)
    # Five small steps of GD from random points: moving steadily, not cycling.
    assert set(outcome.status) == {CAPPED}


def test_a_period_two_map_is_cycling_and_settles_on_its_smallest_weight():
    """The rule on a map that swaps between two points (an algorithm of emrun.algorithms.Algorithm's shape)."""

    class Swap:
        name, requires, hyperparameters, stopping = "swap", "gradient", {}, {"max_iter": 10, "tol": 1e-6}

        def start(self, problem, pi, mu, params):
            return {}

        def update(self, problem, pi, mu, state, params):
            low = np.isclose(pi[:, 0], 0.001)
            new_pi = np.where(low[:, None], [[0.4, 0.6]], [[0.001, 0.999]])
            return new_pi, mu, problem.loss(pi, mu), state

    data = _table1_problem()
    mu = np.array([[[0.2, 0.8, 0.6], [0.7, 0.3, 0.4]]])
    for cap in (10, 11, 10 + CYCLE_PERIODS):
        outcome = run_batch("bernoulli", data, np.array([[0.4, 0.6]]), mu, Swap(), cap, 1e-6, fused=False)
        assert outcome.status[0] == CYCLING
        assert outcome.pi[0].tolist() == [0.001, 0.999]
