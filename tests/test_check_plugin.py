"""emrun check-plugin checks each registered thing on its own and names the part at fault: an
init-only or family-only file passes, an init scheme of the wrong shape is refused naming it and the
shape, a family's bug is never blamed on an algorithm; at sweep time an init scheme's failure is
deterministic and not advised as a retry (issue 31)."""

import textwrap

import pytest

from tests.conftest import emrun
from tests.test_plugins import EM_ONLY_GAUSSIAN

INIT_ONLY = """\
import numpy as np
from emrun.plugins import register_init_scheme


def centres(ctx):
    pi = np.full((ctx.runs, ctx.m), 1.0 / ctx.m)
    mu = np.array([rng.uniform(0.2, 0.8, size=(ctx.m, ctx.D)) for rng in ctx.generators])
    return pi, mu


register_init_scheme("centres", centres)
"""

FAMILY_ONLY = """\
from emrun.models import gaussian
from emrun.plugins import register_family


""" + EM_ONLY_GAUSSIAN + """

register_family(EmOnlyGaussian())
"""


def check(tmp_path, name: str, text: str):
    (tmp_path / name).write_text(textwrap.dedent(text))
    return emrun("check-plugin", name, cwd=tmp_path, check=False)


def test_an_init_only_and_a_family_only_file_pass(tmp_path):
    init = check(tmp_path, "init_only.py", INIT_ONLY)
    assert init.returncode == 0 and "FAIL" not in init.stdout, init.stdout
    assert "ok   init scheme centres on bernoulli: returns pi [R, m] on the simplex and mu [R, m, D]" in init.stdout
    assert "ok   init scheme centres on gaussian: each run draws from its own generator only" in init.stdout
    family = check(tmp_path, "family_only.py", FAMILY_ONLY)
    assert family.returncode == 0 and "FAIL" not in family.stdout, family.stdout
    for part in ("random_mixture(m, D, rng) gives a truth", "random_init(m, D, rng) gives a start",
                 "random_mixture and random_init draw from the generator they are given only", "EM never lowers the likelihood"):
        assert f"ok   family gaussian_em_only: {part}" in family.stdout


def test_an_init_scheme_returning_mu_without_its_D_axis_is_refused_naming_it_and_the_shape(tmp_path):
    flat = INIT_ONLY.replace("np.array([rng.uniform(0.2, 0.8, size=(ctx.m, ctx.D)) for rng in ctx.generators])",
                             "np.full((ctx.runs, ctx.m), 0.5)")
    result = check(tmp_path, "flat.py", flat)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert ("FAIL init scheme centres on bernoulli: returns pi [R, m] on the simplex and mu [R, m, D] in the family's mean "
            "range (mu has shape (4, 3), expected (4, 3, 2) = [runs R, components m, features D]") in result.stdout


def test_an_init_scheme_drawing_every_run_from_one_generator_fails(tmp_path):
    shared = INIT_ONLY.replace("np.array([rng.uniform(0.2, 0.8, size=(ctx.m, ctx.D)) for rng in ctx.generators])",
                               "ctx.generators[0].uniform(0.2, 0.8, size=(ctx.runs, ctx.m, ctx.D))")
    result = check(tmp_path, "shared.py", shared)
    assert result.returncode == 1
    assert "FAIL init scheme centres on bernoulli: each run draws from its own generator only" in result.stdout
    assert "draw run r from ctx.generators[r] only" in result.stdout


def test_a_bug_in_a_family_is_blamed_on_the_family_not_on_an_algorithm_of_the_same_file(tmp_path):
    both = FAMILY_ONLY.replace("import gaussian", "import gaussian\nimport numpy as np").replace(
        "register_family", "register_algorithm, register_family", 1).replace('"gaussian_em_only"', '"broken_truths"') \
        .replace("    def __getattr__", "    def random_mixture(self, m, D, rng):\n"
                 "        return np.full(m, 1 / m), rng.normal(size=(m,))  # the bug: mu without its D axis\n\n"
                 "    def __getattr__") + textwrap.dedent("""

        class Plain:
            name = "plain_em"
            requires = "em"
            hyperparameters = {}
            stopping = {"max_iter": 100, "tol": 1e-7}

            def start(self, problem, pi, mu, params):
                return {}

            def update(self, problem, pi, mu, state, params):
                new_pi, new_mu, loss = problem.em_step(pi, mu)
                return new_pi, new_mu, loss, state


        register_algorithm(Plain())
        """)
    result = check(tmp_path, "both.py", both)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "FAIL family broken_truths: random_mixture(m, D, rng) gives a truth" in result.stdout
    assert "(mu has shape (3,), expected (3, 4))" in result.stdout
    assert "skip algorithm plain_em on broken_truths: runs (not run: family broken_truths failed its own checks above)" \
        in result.stdout
    assert "FAIL algorithm" not in result.stdout and "ok   algorithm plain_em on bernoulli" in result.stdout


def test_an_init_scheme_for_some_families_is_checked_on_those_and_refused_with_another(tmp_path):
    wide = INIT_ONLY.replace("uniform(0.2, 0.8", "uniform(-3, 3") + 'centres.families = ("gaussian",)\n'
    result = check(tmp_path, "wide.py", wide)
    assert result.returncode == 0, result.stdout
    assert "on gaussian" in result.stdout and "on bernoulli" not in result.stdout
    (tmp_path / "wide.yaml").write_text("name: wide\nseed: 1\nplugins: [wide.py]\ngrid: {m: [2], D: [2], init: [centres]}\n")
    refused = emrun("sweep", "wide.yaml", cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "init scheme 'centres' is for model gaussian (its 'families'), not 'bernoulli'" \
        in refused.stderr


@pytest.mark.parametrize("body,words", [
    ("raise KeyError('separation')", "init scheme 'centres' (plug-in centres.py"),
    ("return np.full((ctx.runs, ctx.m), 1.0 / ctx.m), np.full((ctx.runs, ctx.m, ctx.D), 1.5)", "outside [0, 1]"),
], ids=["raises", "outside"])
def test_an_init_scheme_failing_at_sweep_time_is_not_advised_as_a_retry(tmp_path, body, words):
    (tmp_path / "centres.py").write_text(INIT_ONLY.replace("    pi = np.full((ctx.runs, ctx.m), 1.0 / ctx.m)\n",
                                                            f"    {body}\n"))
    (tmp_path / "c.yaml").write_text("name: c\nseed: 1\nplugins: [centres.py]\ngrid: {m: [2], D: [2], algorithm: [em], "
                                     "init: [centres]}\nruns: 2\n")
    result = emrun("sweep", "c.yaml", "--quiet", "--workers", "1", cwd=tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert words in result.stderr
    assert "fix the plug-in" in result.stderr and "run the same command again" not in result.stderr
