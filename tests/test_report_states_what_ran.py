"""Smaller items of issue 31: a report states what ran (the --set values a sweep was given; the step
only for algorithms that take one), and a plug-in registered in Python before emrun.load_results
does not make the folder's kept copy fail as "registered twice"."""

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import TINY, emrun
from tests.test_plugins import CONFIG, HEAVY_BALL

SMALL = TINY.replace("name: tiny", 'name: tiny\ndescription: "EM and GD, 5 truths per cell"').replace(
    "m: [2, 3]", "m: [2]").replace("D: [2, 3]", "D: [2]").replace("runs: 6", "runs: 2")


def report_of(tmp_path, *overrides: str) -> str:
    (tmp_path / "tiny.yaml").write_text(SMALL)
    emrun("sweep", "tiny.yaml", "--quiet", "--workers", "1", "--replace", *overrides, cwd=tmp_path)
    emrun("report", cwd=tmp_path)
    return (tmp_path / "results" / "tiny" / "report.md").read_text()


@pytest.mark.slow
def test_a_report_states_the_set_values_it_ran_with_and_a_step_only_where_one_is_taken(tmp_path):
    em_only = report_of(tmp_path, "--set", "truths=2", "--set", "grid.algorithm=[em]")
    title, _, said = em_only.splitlines()[:3]
    assert title == "# tiny: EM and GD, 5 truths per cell"  # the config file's description, as written
    assert said.startswith("Swept with `--set truths=2`, `--set grid.algorithm=[em]`: the settings stated below are what ran")
    assert "2 random truth(s) per cell" in em_only and "algorithms ['em'];" in em_only and "step" not in em_only.split(
        "## Verdicts")[0]
    both = report_of(tmp_path)
    assert "Swept with" not in both and "algorithms ['em', 'gd'] (step [0.05] for gd); 1 random truth(s)" in both


def test_a_plugin_registered_in_python_before_load_results_is_kept_not_refused(tmp_path):
    (tmp_path / "plugin").mkdir()
    (tmp_path / "plugin" / "heavy_ball.py").write_text(HEAVY_BALL)
    (tmp_path / "hb.yaml").write_text(CONFIG)
    emrun("sweep", "hb.yaml", "--quiet", "--workers", "1", "--set", "runs=2", cwd=tmp_path)
    script = textwrap.dedent("""\
        import emrun
        from emrun.registry import ALGORITHMS

        exec(open("plugin/heavy_ball.py").read())  # registers heavy_ball in this process (at run time)
        rows = emrun.load_results("results/hb", run_plugins=True)
        print(len(rows), sorted(set(rows["algorithm"])), ALGORITHMS.origin("heavy_ball"))
        """)
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0 and "registered twice" not in result.stderr, result.stderr
    assert result.stdout.split() == ["16", "['gd',", "'heavy_ball']", "registered", "at", "run", "time"]
