"""A plug-in's output is checked (shapes, finite losses): a bad one is a failed trial or batch naming
the plug-in, with advice that does not promise a retry will help; a plug-in that exits at import
or never returns cannot end or hang a command silently (issue 28)."""

import hashlib
import json

import pytest

from emrun.config import config_hash
from emrun.results import load_results
from tests.conftest import emrun

GD_LIKE = """\
import numpy as np
from emrun.plugins import register_algorithm


class Odd:
    name = "odd"
    requires = "gradient"
    hyperparameters = {"step": 0.02}
    stopping = {"max_iter": 50, "tol": 1e-7}

    def start(self, problem, pi, mu, params):
        return {}

    def update(self, problem, pi, mu, state, params):
        grad_pi, grad_mu, loss = problem.gradient(pi, mu)
        new_pi, new_mu = problem.project(pi - params["step"] * grad_pi, mu - params["step"] * grad_mu)
        RETURN


register_algorithm(Odd())
"""

CONFIG = """\
name: odd
seed: 2
plugins: [odd.py]
grid: {m: [2], D: [2], algorithm: [odd], step: [0.05]}
runs: 3
stopping: {odd: {max_iter: 50}}
"""


def sweep(tmp_path, returned: str, config: str = CONFIG, *options: str):
    (tmp_path / "odd.py").write_text(GD_LIKE.replace("RETURN", returned))
    (tmp_path / "odd.yaml").write_text(config)
    return emrun("sweep", "odd.yaml", "--quiet", "--workers", "1", *options, cwd=tmp_path, check=False)


@pytest.mark.parametrize("loss", ["loss * np.nan", "loss + np.inf"])
def test_a_plugin_update_reporting_a_nan_or_infinite_loss_fails_its_trials_naming_the_plugin(tmp_path, loss):
    result = sweep(tmp_path, f"return new_pi, new_mu, {loss}, state")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    rows = load_results(tmp_path / "results" / "odd", run_plugins=True)
    assert (rows["status"] == "failed").all() and len(rows) == 3
    assert rows["error"].str.contains("algorithm 'odd' \\(plug-in odd.py").all()
    assert rows["error"].str.contains("its update's loss is wrong").all()
    assert "fix the plug-in" in result.stderr and "run the same command again" not in result.stderr


def test_a_plugin_returning_arrays_for_fewer_trials_fails_every_trial_instead_of_broadcasting(tmp_path):
    result = sweep(tmp_path, "return new_pi[:1], new_mu[:1], loss, state")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    rows = load_results(tmp_path / "results" / "odd", run_plugins=True)
    assert (rows["status"] == "failed").all() and len(rows) == 3
    assert rows["error"].str.contains("update\\(\\) returned pi of shape \\(1, 2\\), expected \\(3, 2\\)", regex=True).all()
    assert "fix the plug-in" in result.stderr


FLAT_INIT = """\
import numpy as np
from emrun.plugins import register_init_scheme


def flat(ctx):
    return np.full((ctx.runs, ctx.m), 1 / ctx.m), np.full((ctx.runs, ctx.m), 0.5)


register_init_scheme("flat", flat)
"""


def test_an_init_scheme_returning_mu_of_the_wrong_shape_fails_in_one_line_naming_it(tmp_path):
    (tmp_path / "flat.py").write_text(FLAT_INIT)
    (tmp_path / "flat.yaml").write_text("name: flat\nseed: 1\nplugins: [flat.py]\n"
                                        "grid: {m: [2], D: [3], algorithm: [em], init: [flat]}\nruns: 2\n")
    result = emrun("sweep", "flat.yaml", "--quiet", "--workers", "1", cwd=tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "init scheme 'flat' (plug-in flat.py" in result.stderr
    assert "returned mu of shape (2, 2), expected (2, 2, 3)" in result.stderr and "matmul" not in result.stderr
    assert "fix the plug-in" in result.stderr and "run the same command again" not in result.stderr


def test_a_plugin_raising_systemexit_at_import_is_an_error_not_a_silent_success(tmp_path):
    (tmp_path / "odd.py").write_text("raise SystemExit(0)\n")
    (tmp_path / "odd.yaml").write_text(CONFIG)
    for command in (("sweep", "odd.yaml", "--quiet"), ("sweep", "odd.yaml", "--dry-run", "--run-plugins"),
                    ("check-plugin", "odd.py")):
        result = emrun(*command, cwd=tmp_path, check=False)
        assert result.returncode == 2 and "failed to import (line 1): SystemExit: 0" in result.stderr, command
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()
    # A folder whose kept copy exits at import: its report and status say so, exit 1.
    (tmp_path / "odd.py").write_text(GD_LIKE.replace("RETURN", "return new_pi, new_mu, loss, state"))
    emrun("sweep", "odd.yaml", "--quiet", "--workers", "1", cwd=tmp_path)
    folder = tmp_path / "results" / "odd"
    manifest = json.loads((folder / "manifest.json").read_text())
    record = manifest["config"]["plugins"][0]
    record["sha256"] = hashlib.sha256(b"raise SystemExit(0)\n").hexdigest()
    manifest["config_hash"] = config_hash(manifest["config"])
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "plugins" / f"odd.{record['sha256'][:12]}.py").write_text("raise SystemExit(0)\n")
    for command in (("report", "--run-plugins", str(folder)), ("status", "--run-plugins", str(folder))):
        result = emrun(*command, cwd=tmp_path, check=False)
        assert result.returncode == 1 and "failed to import (line 1): SystemExit: 0" in result.stderr, command


NEVER_RETURNS = "import time\n        time.sleep(3600)\n        return new_pi, new_mu, loss, state"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_batch_that_never_returns_fails_at_its_timeout_instead_of_hanging(tmp_path, workers):
    (tmp_path / "odd.py").write_text(GD_LIKE.replace("RETURN", NEVER_RETURNS))
    (tmp_path / "odd.yaml").write_text(CONFIG.replace("D: [2]", "D: [2, 3]"))
    result = emrun("sweep", "odd.yaml", "--quiet", "--workers", workers, "--batch-timeout", "3", cwd=tmp_path,
                   check=False, timeout=240)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("ran longer than 3 s (--batch-timeout)") == 2
    assert "0 of 2 batches stored" in result.stdout
