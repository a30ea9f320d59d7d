"""The Dask executor on a LocalCluster (127.0.0.1): the same rows as the local pool, and a worker
killed mid-sweep loses and duplicates nothing."""

import pandas as pd
import pytest

from emrun.results import load_results
from emrun.store import TIMING_COLUMNS
from tests.conftest import emrun

pytest.importorskip("distributed", reason="the Dask executor needs 'pip install emrun[dask]'")


def rows_of(folder):
    return load_results(folder).drop(columns=list(TIMING_COLUMNS))


@pytest.mark.parametrize("workers", ["1", "3"])
def test_dask_rows_equal_the_local_pool(tiny_config, workers):
    cwd = tiny_config.parent
    emrun("sweep", str(tiny_config), "--quiet", "--results", "local", cwd=cwd)
    on_dask = emrun("sweep", str(tiny_config), "--quiet", "--results", "dask", "--executor", "dask",
                    "--workers", workers, cwd=cwd, timeout=180)
    assert "8 of 8 batches stored" in on_dask.stdout
    pd.testing.assert_frame_equal(rows_of(cwd / "local" / "tiny"), rows_of(cwd / "dask" / "tiny"))
    stored = load_results(cwd / "dask" / "tiny")
    assert stored["worker"].str.contains("numpy").all()  # each row says where it ran


def test_a_worker_killed_during_the_sweep_loses_and_duplicates_nothing(tiny_config):
    cwd = tiny_config.parent
    marker = cwd / "killed-once"
    batch = "m3-D3-gd-step0.05-uniform-truth0"
    emrun("sweep", str(tiny_config), "--quiet", "--results", "local", cwd=cwd)
    hit = emrun("sweep", str(tiny_config), "--quiet", "--results", "dask", "--executor", "dask", "--workers", "2",
                cwd=cwd, env={"EMRUN_TEST_KILL_WORKER": f"{batch}:{marker}"}, timeout=180)
    assert marker.exists()  # the worker that started this batch died
    assert "8 of 8 batches stored" in hit.stdout and "Dask workers lost during the sweep" in hit.stderr
    dask_rows = rows_of(cwd / "dask" / "tiny")
    assert not dask_rows.duplicated(["batch_id", "run_index"]).any()
    pd.testing.assert_frame_equal(rows_of(cwd / "local" / "tiny"), dask_rows)
