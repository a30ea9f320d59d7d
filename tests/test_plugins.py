"""Plug-ins: an algorithm, a model family, an init scheme, a claim and an experiment kind defined in
a temporary folder outside the repository, run through the real CLI with no edit to emrun."""

import json
import textwrap

import pandas as pd
import pytest

from emrun.results import load_results
from emrun.store import TIMING_COLUMNS
from tests.conftest import emrun

HEAVY_BALL = """\
from emrun.plugins import register_algorithm


class HeavyBall:
    name = "heavy_ball"
    requires = "gradient"
    hyperparameters = {"step": 0.02, "momentum": 0.9}
    stopping = {"max_iter": 10000, "tol": 1e-7}

    def start(self, problem, pi, mu, params):
        return {"pi": pi.copy(), "mu": mu.copy()}

    def update(self, problem, pi, mu, state, params):
        grad_pi, grad_mu, loss = problem.gradient(pi, mu)
        step, beta = params["step"], params["momentum"]
        new_pi, new_mu = problem.project(pi - step * grad_pi + beta * (pi - state["pi"]),
                                         mu - step * grad_mu + beta * (mu - state["mu"]))
        return new_pi, new_mu, loss, {"pi": pi, "mu": mu}


register_algorithm(HeavyBall())
"""

CONFIG = """\
name: hb
seed: 3
plugins: [plugin/heavy_ball.py]
grid: {m: [2, 3], D: [2, 3], algorithm: [gd, heavy_ball], step: [0.05], momentum: [0.5]}
runs: 5
stopping: {gd: {max_iter: 200}, heavy_ball: {max_iter: 200}}
baseline: gd
claims: [{claim: ends_at_k_cluster_less_often, algorithm: heavy_ball, than: gd}]
"""


def setup(tmp_path, plugin=HEAVY_BALL, config=CONFIG):
    (tmp_path / "plugin").mkdir(exist_ok=True)
    (tmp_path / "plugin" / "heavy_ball.py").write_text(plugin)
    (tmp_path / "hb.yaml").write_text(config)
    return tmp_path / "hb.yaml"


def rows_of(folder):
    return load_results(folder, run_plugins=True).drop(columns=list(TIMING_COLUMNS))


def test_an_algorithm_plugin_runs_sweep_report_replay_and_status_with_no_edit_to_emrun(tmp_path):
    config = setup(tmp_path)
    swept = emrun("sweep", str(config), "--workers", "2", "--quiet", cwd=tmp_path)
    assert "plug-in plugin/heavy_ball.py imported (sha256" in swept.stderr and "8 of 8 batches stored" in swept.stdout
    rows = load_results(tmp_path / "results" / "hb", run_plugins=True)
    hb = rows[rows["algorithm"] == "heavy_ball"]
    assert len(hb) == 20 and set(hb["momentum"]) == {0.5} and hb["batch_id"].str.contains("-momentum0.5-").all()
    assert rows[rows["algorithm"] == "gd"]["momentum"].isna().all()
    # The same inits for both algorithms: a paired comparison.
    gd = rows[rows["algorithm"] == "gd"].sort_values(["m", "D", "run_index"])
    assert list(gd["init_seed"]) == list(hb.sort_values(["m", "D", "run_index"])["init_seed"])
    copies = list((tmp_path / "results" / "hb" / "plugins").glob("heavy_ball.*.py"))
    assert len(copies) == 1 and copies[0].read_text() == HEAVY_BALL

    emrun("report", "--run-plugins", cwd=tmp_path)
    report = (tmp_path / "results" / "hb" / "report.md").read_text()
    assert "### heavy_ball" in report and "## Each algorithm against `gd`" in report
    assert "Plug-in `plugin/heavy_ball.py`" in report and "Deviations from the paper" not in report
    verdicts = json.loads((tmp_path / "results" / "hb" / "verdicts.json").read_text())
    claim = verdicts["verdicts"][0]
    assert claim["status"] in ("holds", "does not hold", "not testable") and "interval over truths" in claim["criterion"]
    assert claim["folder"] == "hb" and claim["complete"] is True

    trial = f"hb/{hb['batch_id'].iloc[0]}/{int(hb['run_index'].iloc[0])}"
    assert "reproduces the stored row exactly" in emrun("replay", "--run-plugins", trial, cwd=tmp_path).stdout
    status = emrun("status", "--run-plugins", "--configs", str(tmp_path), cwd=tmp_path).stdout
    assert "8 stored, 0 pending of 8 planned" in status and "matches" in status


@pytest.mark.slow
def test_an_algorithm_plugin_gives_the_same_rows_on_dask_as_on_the_local_pool(tmp_path):
    pytest.importorskip("distributed")
    config = setup(tmp_path)
    emrun("sweep", str(config), "--workers", "2", "--quiet", "--results", "local", cwd=tmp_path)
    emrun("sweep", str(config), "--workers", "2", "--quiet", "--results", "dask", "--executor", "dask", cwd=tmp_path,
          timeout=180)
    pd.testing.assert_frame_equal(rows_of(tmp_path / "local" / "hb"), rows_of(tmp_path / "dask" / "hb"))
    emrun("report", "--run-plugins", "--results", "dask", cwd=tmp_path)
    assert (tmp_path / "dask" / "hb" / "verdicts.json").exists()


def test_a_changed_plugin_changes_the_config_hash_so_rows_never_mix(tmp_path):
    config = setup(tmp_path)
    before = emrun("sweep", str(config), "--dry-run", "--run-plugins", cwd=tmp_path).stdout
    setup(tmp_path, HEAVY_BALL.replace('"momentum": 0.9', '"momentum": 0.8'))
    after = emrun("sweep", str(config), "--dry-run", "--run-plugins", cwd=tmp_path).stdout
    assert before.split("(hash ")[1][:16] != after.split("(hash ")[1][:16]
    emrun("sweep", str(config), "--quiet", "--workers", "1", cwd=tmp_path)
    setup(tmp_path, HEAVY_BALL + "\n# edited\n")
    refused = emrun("sweep", str(config), "--quiet", cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "another version of config 'hb'" in refused.stderr
    assert "they differ in plugins" in refused.stderr  # says what changed: the plug-in, not the config file


@pytest.mark.parametrize("plugin,words", [
    ("import not_a_module_anyone_has\n", ["plug-in plugin/heavy_ball.py failed to import (line 1)", "ModuleNotFoundError"]),
    (HEAVY_BALL + "register_algorithm(HeavyBall())\n", ["algorithm 'heavy_ball' is registered twice"]),
    (HEAVY_BALL.replace('name = "heavy_ball"', 'name = "gd"'), ["algorithm 'gd' is registered twice: built in"]),
    ("def broken(:\n", ["failed to import (line 1)", "SyntaxError"]),
])
def test_a_broken_plugin_is_one_line_exit_2_and_nothing_written(tmp_path, plugin, words):
    config = setup(tmp_path, plugin)
    result = emrun("sweep", str(config), cwd=tmp_path, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    for word in words:
        assert word in result.stderr
    assert not (tmp_path / "results").exists()


def test_an_exception_inside_a_plugin_update_makes_failed_trials_not_a_crash(tmp_path):
    raising = HEAVY_BALL.replace("        grad_pi, grad_mu, loss = problem.gradient(pi, mu)",
                                 "        if (pi[:, 0] > 0.5).any():\n            raise FloatingPointError('a bad step')\n"
                                 "        grad_pi, grad_mu, loss = problem.gradient(pi, mu)")
    config = setup(tmp_path, raising)
    result = emrun("sweep", str(config), "--quiet", "--workers", "1", cwd=tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "FloatingPointError: a bad step" in result.stderr and "trials failed" in result.stderr
    rows = load_results(tmp_path / "results" / "hb", run_plugins=True)
    failed = rows[rows["status"] == "failed"]
    assert len(failed) > 0 and (failed["algorithm"] == "heavy_ball").all()
    assert (rows[rows["algorithm"] == "gd"]["status"] != "failed").all()


@pytest.mark.slow
def test_a_plugin_update_that_leaves_the_model_domain_makes_failed_trials_and_exit_1(tmp_path):
    # No projection: heavy-ball steps that overshoot leave the means outside [0, 1]. Such rows
    # were written, then set aside as unusable by the store, and the sweep said all was stored.
    unprojected = HEAVY_BALL.replace("new_pi, new_mu = problem.project(", "new_pi, new_mu = (").replace(
        '"momentum": 0.9', '"momentum": 0.9, "overshoot": 30.0').replace(
        "mu - step * grad_mu", "mu - params['overshoot'] * step * grad_mu")
    config = setup(tmp_path, unprojected)
    for _ in range(2):  # the same command again retries the failed trials, which fail again: no loop
        result = emrun("sweep", str(config), "--quiet", "--workers", "1", cwd=tmp_path, check=False, timeout=120)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr and "RuntimeWarning" not in result.stderr
        assert "left the model's domain" in result.stderr and "trials failed" in result.stderr
        assert not (tmp_path / "results" / "hb" / "set_aside").exists()
    rows = load_results(tmp_path / "results" / "hb", run_plugins=True)
    failed = rows[rows["status"] == "failed"]
    assert len(failed) > 0 and (failed["algorithm"] == "heavy_ball").all()
    report = emrun("report", "--run-plugins", cwd=tmp_path, check=False)
    assert "Traceback" not in report.stderr
    assert "failed" in (tmp_path / "results" / "hb" / "report.md").read_text()


def test_an_init_scheme_that_gives_means_outside_the_domain_fails_its_batches_in_one_line(tmp_path):
    (tmp_path / "plugin").mkdir()
    (tmp_path / "plugin" / "far.py").write_text(
        "import numpy as np\nfrom emrun.plugins import register_init_scheme\n\n\n"
        "def too_far(ctx):\n    return np.full((ctx.runs, ctx.m), 1.0 / ctx.m), np.full((ctx.runs, ctx.m, ctx.D), 1.5)\n\n\n"
        "register_init_scheme('too_far', too_far)\n")
    (tmp_path / "far.yaml").write_text("name: far\nseed: 1\nplugins: [plugin/far.py]\ndata: population\n"
                                       "grid: {m: [2], D: [2], algorithm: [em], init: [too_far]}\nruns: 3\n")
    result = emrun("sweep", "far.yaml", "--quiet", "--workers", "1", cwd=tmp_path, check=False, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "init scheme 'too_far'" in result.stderr and "outside [0, 1]" in result.stderr
    assert not (tmp_path / "results" / "far" / "set_aside").exists()


EM_ONLY_GAUSSIAN = """\
class EmOnlyGaussian:
    # The Gaussian family with its gradient withheld: an EM-only family, as a full-covariance one would be.
    name = "gaussian_em_only"
    capabilities = frozenset({"em"})
    data_kinds, em_updates, boundary_rules, mean_range = ("samples",), ("simultaneous",), ("exact",), None

    def __getattr__(self, attribute):
        return getattr(gaussian, attribute)
"""

FAMILY_INIT = """\
import numpy as np

from emrun.models import gaussian
from emrun.plugins import register_family, register_init_scheme


""" + EM_ONLY_GAUSSIAN + """\


def spread_out(ctx):
    # Every run starts with equal weights and means drawn wide.
    means = np.array([rng.uniform(-3, 3, size=(ctx.m, ctx.D)) for rng in ctx.generators])
    return np.full((ctx.runs, ctx.m), 1.0 / ctx.m), means


register_family(EmOnlyGaussian())
register_init_scheme("spread_out", spread_out)
"""

# Claims go in a file of their own (claim_plugins: not part of the config hash).
CLAIM = """\
from emrun.plugins import register_claim
from emrun.report.claims import Claim
from emrun.report.verdicts import Verdict


def all_converged(rows, config, algorithm="em"):
    ok = (rows[rows["algorithm"] == algorithm]["status"] == "converged").all()
    return Verdict.judged(f"every {algorithm} run converges", bool(ok), f"{len(rows)} rows", "no capped run")


register_claim(Claim("all_converged", all_converged, {"algorithm": "em"}))
"""

FAMILY_CONFIG = """\
name: fam
seed: 5
plugins: [plugin/heavy_ball.py]
claim_plugins: [plugin/claims.py]
model: gaussian_em_only
grid: {m: [2], D: [2], algorithm: [em], init: [spread_out]}
data: {samples: 300}
runs: 4
stopping: {em: {max_iter: 500, tol: 1.0e-6}}
claims: [all_converged]
"""


def test_a_family_an_init_scheme_and_a_claim_from_a_plugin(tmp_path):
    config = setup(tmp_path, FAMILY_INIT, FAMILY_CONFIG)
    (tmp_path / "plugin" / "claims.py").write_text(CLAIM)
    refused = emrun("sweep", str(config), "--set", "grid.algorithm=[em, gd]", cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "algorithm 'gd' needs a family with 'gradient' steps" in refused.stderr
    assert "model 'gaussian_em_only' offers em" in refused.stderr and not (tmp_path / "results").exists()
    emrun("sweep", str(config), "--quiet", "--workers", "1", cwd=tmp_path)
    rows = load_results(tmp_path / "results" / "fam", run_plugins=True)
    assert set(rows["model"]) == {"gaussian_em_only"} and set(rows["init"]) == {"spread_out"}
    assert all(list(p) == [0.5, 0.5] for p in rows["init_pi"])
    emrun("report", "--run-plugins", cwd=tmp_path)
    assert "**every em run converges**" in (tmp_path / "results" / "fam" / "report.md").read_text()


def test_check_plugin_passes_a_sound_plugin_and_fails_a_wrong_gradient(tmp_path):
    setup(tmp_path)
    good = emrun("check-plugin", "plugin/heavy_ball.py", cwd=tmp_path)
    assert "FAIL" not in good.stdout and "a trial alone ends bit for bit as inside its batch" in good.stdout
    wrong = textwrap.dedent("""\
        from emrun.models import gaussian
        from emrun.plugins import register_family


        class WrongSign:
            name = "wrong_sign"
            capabilities = frozenset({"em", "gradient"})
            data_kinds, em_updates, boundary_rules, mean_range = ("samples",), ("simultaneous",), ("exact",), None

            def __getattr__(self, attribute):
                return getattr(gaussian, attribute)

            def gradient(self, data, pi, mu, boundary):
                grad_pi, grad_mu, loss = gaussian.gradient(data, pi, mu, boundary)
                return grad_pi, -grad_mu, loss


        register_family(WrongSign())
        """)
    (tmp_path / "wrong.py").write_text(wrong)
    bad = emrun("check-plugin", "wrong.py", cwd=tmp_path, check=False)
    assert bad.returncode == 1 and "FAIL family wrong_sign: gradient matches central finite differences" in bad.stdout
    assert "ok   family wrong_sign: EM never lowers the likelihood" in bad.stdout


THREADS = """\
import os

from emrun.inits import uniform
from emrun.plugins import register_init_scheme


def checked_uniform(ctx):
    from threadpoolctl import threadpool_info

    threads = {pool["internal_api"]: pool["num_threads"] for pool in threadpool_info()}
    if os.environ.get("OMP_NUM_THREADS") != "1" or any(n != 1 for n in threads.values()):
        raise RuntimeError(f"BLAS threads not limited: {threads}")
    return uniform(ctx)


register_init_scheme("checked_uniform", checked_uniform)
"""


PLAIN = """\
name: hb
seed: 3
grid: {m: [2, 3], D: [2, 3], algorithm: [gd], step: [0.05]}
runs: 5
stopping: {gd: {max_iter: 200}}
"""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_blas_threads_are_limited_before_numpy_on_every_path(tmp_path, workers):
    config = setup(tmp_path, THREADS,
                   "plugins: [plugin/heavy_ball.py]\n" + PLAIN.replace("[gd],", "[gd], init: [checked_uniform],"))
    env = {name: None for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    result = emrun("sweep", str(config), "--quiet", "--workers", workers, cwd=tmp_path, env=env, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_an_entry_point_plugin_enters_the_hash_only_when_a_config_uses_its_names(tmp_path):
    site = tmp_path / "site"
    (site / "emrun_extra-1.0.dist-info").mkdir(parents=True)
    (site / "emrun_extra.py").write_text(HEAVY_BALL.replace('"heavy_ball"', '"installed_ball"'))
    (site / "emrun_extra-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: emrun-extra\nVersion: 1.0\n")
    (site / "emrun_extra-1.0.dist-info" / "entry_points.txt").write_text("[emrun.plugins]\nextra = emrun_extra\n")
    (site / "emrun_extra-1.0.dist-info" / "RECORD").write_text("emrun_extra.py,,\n")
    (tmp_path / "plain.yaml").write_text(PLAIN)
    (tmp_path / "uses.yaml").write_text(PLAIN.replace("[gd]", "[gd, installed_ball]"))
    env = {"PYTHONPATH": str(site)}
    without = emrun("sweep", "plain.yaml", "--dry-run", cwd=tmp_path).stdout
    with_site = emrun("sweep", "plain.yaml", "--dry-run", cwd=tmp_path, env=env).stdout
    assert without.split("(hash ")[1][:16] == with_site.split("(hash ")[1][:16]
    used = emrun("sweep", "uses.yaml", "--quiet", "--workers", "2", cwd=tmp_path, env=env)
    assert "entry point extra imported" in used.stderr
    manifest = json.loads((tmp_path / "results" / "hb" / "manifest.json").read_text())
    record = manifest["config"]["plugins"][0]
    assert record["entry_point"] == "extra" and record["distribution"] == "emrun-extra" and len(record["sha256"]) == 64


KIND = """\
import numpy as np

from emrun.batch import BatchResult
from emrun.kinds.base import SHARED_KEYS, CellGrid
from emrun.plugins import register_kind
from emrun.report import ReportResult
from emrun.report.verdicts import Verdict


class Coin(CellGrid):
    # A toy kind: each batch flips a seeded coin 'flips' times; the report checks the rate is near 1/2.
    name = "coin"
    keys = {**SHARED_KEYS, "flips": True}
    row_noun = "coin rows"
    default_algorithms = ("em",)

    def validate(self, raw, check, out):
        super().validate(raw, check, out)
        out["flips"] = check.integer(raw["flips"], "flips", 1)

    def run_batch(self, values, config_hash, spec, retry=None):
        rng = np.random.default_rng([values["seed"], spec.cell.m, spec.truth_index])
        heads = int((rng.random(values["flips"]) < 0.5).sum())
        return BatchResult([{"batch_id": spec.batch_id, "config_hash": config_hash, "heads": heads,
                             "flips": values["flips"]}])

    def write_report(self, ctx):
        rate = ctx.rows["heads"].sum() / ctx.rows["flips"].sum()
        verdict = Verdict.judged("the coin is fair", abs(rate - 0.5) < 0.1, f"rate {rate:.3f}", "|rate - 1/2| < 0.1")
        path = ctx.folder / "report.md"
        path.write_text(f"# {ctx.config['name']}: coins\\n\\n{verdict.markdown()}\\n")
        return ReportResult(path, [verdict])


register_kind(Coin())
"""


def test_an_experiment_kind_from_a_plugin(tmp_path):
    config = setup(tmp_path, KIND, "name: coins\nseed: 1\nplugins: [plugin/heavy_ball.py]\nexperiment: coin\n"
                                   "flips: 1000\ngrid: {m: [2, 3], D: [1]}\ntruths: 3\n")
    emrun("sweep", str(config), "--quiet", "--workers", "2", cwd=tmp_path)
    assert len(load_results(tmp_path / "results" / "coins", run_plugins=True)) == 6
    emrun("report", "--run-plugins", cwd=tmp_path)
    assert "**the coin is fair**: holds" in (tmp_path / "results" / "coins" / "report.md").read_text()
    status = emrun("status", "--run-plugins", "--configs", str(tmp_path), cwd=tmp_path).stdout
    assert "coin rows: 6" in status and "6 stored, 0 pending of 6 planned" in status
    refused = emrun("replay", "--run-plugins", "coins/whatever/0", cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "coin rows of experiment coin" in refused.stderr


def test_batches_refused_when_read_back_are_not_counted_as_stored_and_the_sweep_exits_1(tmp_path):
    # A kind whose schema check refuses its own rows: each batch is written, then set aside.
    refusing = KIND.replace("    def write_report(self, ctx):", "    def batch_check(self, values):\n"
                            "        return lambda table: 'has rows its kind refuses'\n\n    def write_report(self, ctx):")
    config = setup(tmp_path, refusing, "name: coins\nseed: 1\nplugins: [plugin/heavy_ball.py]\nexperiment: coin\n"
                                       "flips: 10\ngrid: {m: [2, 3], D: [1]}\ntruths: 3\n")
    result = emrun("sweep", str(config), "--quiet", "--workers", "1", cwd=tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "0 of 6 batches stored" in result.stdout
    assert "6 batches were written but refused when read back" in result.stderr


@pytest.mark.slow
def test_two_folders_run_with_two_versions_of_a_plugin_report_together_but_one_config_cannot_list_both(tmp_path):
    config = setup(tmp_path)
    emrun("sweep", str(config), "--quiet", "--workers", "1", "--set", "runs=2", cwd=tmp_path)
    (tmp_path / "plugin" / "other.py").write_text(HEAVY_BALL.replace('"momentum": 0.9', '"momentum": 0.7'))
    (tmp_path / "hb2.yaml").write_text(CONFIG.replace("name: hb", "name: hb2").replace("heavy_ball.py]", "other.py]"))
    emrun("sweep", "hb2.yaml", "--quiet", "--workers", "1", "--set", "runs=2", cwd=tmp_path)
    reported = emrun("report", "--run-plugins", cwd=tmp_path)
    assert "results/hb/report.md" in reported.stdout and "results/hb2/report.md" in reported.stdout
    (tmp_path / "both.yaml").write_text(CONFIG.replace("heavy_ball.py]", "heavy_ball.py, plugin/other.py]"))
    refused = emrun("sweep", "both.yaml", cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "algorithm 'heavy_ball' is registered twice" in refused.stderr
