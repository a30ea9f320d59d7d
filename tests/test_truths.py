"""Configurable truths and inits (issue 31, item 5): the Gaussian family's truth options (equal
weights, a least separation, a spread) as config keys and grid axes, init schemes that declare
options of their own, and the batch's truth in the init context. A config that sets none of them
draws the truths it drew before and keeps its hash."""

import itertools
import textwrap

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emrun import experiments, seeds
from emrun.config import ConfigError, load
from emrun.kinds.trials import GRID
from emrun.models import gaussian

BASE = """\
name: t
seed: 7
model: gaussian
data: {samples: 300}
runs: 3
stopping: {em: {max_iter: 50}}
"""


def write(tmp_path, text: str, name: str = "t.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def paper_truth(m: int, D: int, rng: np.random.Generator):
    """random_mixture as it was before truth options (the committed rows were drawn by this)."""
    u = rng.uniform(size=m)
    if m == 2:
        first = rng.uniform(size=D)
        return u / u.sum(), np.stack([first, -first])
    return u / u.sum(), rng.uniform(-1.0, 1.0, size=(m, D))


def distances(mu: np.ndarray) -> np.ndarray:
    return np.array([np.linalg.norm(a - b) for a, b in itertools.combinations(mu, 2)])


# --- the family's draws ---------------------------------------------------------------------------

@pytest.mark.parametrize("m, D", [(2, 1), (2, 5), (3, 2), (6, 4)])
def test_the_default_truth_is_the_one_drawn_before_bit_for_bit(m, D):
    for seed in range(5):
        key = seeds.truth_key(m, D, seed)
        new = gaussian.random_mixture(m, D, seeds.generator(2019, key))
        old = paper_truth(m, D, seeds.generator(2019, key))
        assert new[0].tobytes() == old[0].tobytes() and new[1].tobytes() == old[1].tobytes()
        values = {"model": "gaussian", "seed": 2019, "truths": 5, "grid": {"m": [m], "D": [D]}}
        drawn = experiments.true_mixture(values, m, D, seed)
        assert drawn[1].tobytes() == old[1].tobytes()


def test_equal_weights_are_one_over_m_and_keep_the_default_means():
    for m in (2, 3, 7):
        pi, mu = gaussian.random_mixture(m, 3, np.random.default_rng(m), weights="equal")
        assert np.array_equal(pi, np.full(m, 1.0 / m))
        assert np.array_equal(mu, paper_truth(m, 3, np.random.default_rng(m))[1])


def test_spread_scales_the_default_means():
    plain = paper_truth(4, 3, np.random.default_rng(1))[1]
    assert np.allclose(gaussian.random_mixture(4, 3, np.random.default_rng(1), spread=5.0)[1], 5.0 * plain)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(2, 9), D=st.integers(1, 5),
       separation=st.floats(0.1, 12.0), slack=st.floats(1.0, 3.0))
def test_every_pair_of_means_is_at_least_the_separation_apart(seed, m, D, separation, slack):
    # A spread that leaves room: m points of a lattice with spacing `separation` fit in the box.
    spread = slack * separation * max(1.0, m ** (1.0 / D))
    pi, mu = gaussian.random_mixture(m, D, np.random.default_rng(seed), separation=separation, spread=spread)
    assert mu.shape == (m, D) and np.isclose(pi.sum(), 1.0)
    assert distances(mu).min() >= separation
    if m != 2:
        assert np.abs(mu).max() <= spread


def test_a_truth_that_already_meets_the_separation_is_kept():
    rng = np.random.default_rng(3)
    plain = paper_truth(5, 4, rng)[1]
    least = distances(plain).min()
    kept = gaussian.random_mixture(5, 4, np.random.default_rng(3), separation=least * 0.99)[1]
    assert np.array_equal(kept, plain)
    moved = gaussian.random_mixture(5, 4, np.random.default_rng(3), separation=least * 1.01)[1]
    assert not np.array_equal(moved, plain) and distances(moved).min() >= least * 1.01


# --- the config keys ------------------------------------------------------------------------------

def test_truth_options_at_their_defaults_keep_the_hash(tmp_path):
    plain = load(write(tmp_path, BASE + "grid: {m: [3], D: [2], algorithm: [em]}\n"))
    spelled = load(write(tmp_path, BASE + "grid: {m: [3], D: [2], algorithm: [em]}\n"
                                          "truth: {weights: random, separation: 0, spread: 1}\n"))
    assert spelled.hash == plain.hash and "truth" not in spelled.values
    assert [c.label for c in spelled.cells()] == ["m3-D2-em-uniform"]
    other = load(write(tmp_path, BASE + "grid: {m: [3], D: [2], algorithm: [em]}\ntruth: {weights: equal}\n"))
    assert other.hash != plain.hash and other.values["truth"] == {"weights": "equal"}


@pytest.mark.parametrize("extra, where, message", [
    ("truth: {weights: uniform}\n", 8, r"'truth.weights' must be one of random, equal; got 'uniform'"),
    ("truth: {shape: 2}\n", 8, r"unknown key 'truth.shape' \(allowed: weights, separation, spread\)"),
    ("truth: {separation: -1}\n", 8, r"'truth.separation' must be a finite number >= 0"),
    ("truth: {spread: 0}\n", 8, r"'truth.spread' must be a finite number > 0"),
    ("truth: {separation: 30}\n", 8, r"truth 0 of m = 3, D = 2 cannot be drawn .*raise truth.spread"),
    ("truth: {separation: 2}\ngrid: {m: [3], D: [2], algorithm: [em], separation: [3]}\n", 7,
     r"'separation' is set both in 'truth' and as a grid axis"),
])
def test_bad_truth_options_are_refused_naming_file_line_and_key(tmp_path, extra, where, message):
    grid = "" if "grid:" in extra else "grid: {m: [3], D: [2], algorithm: [em]}\n"
    path = write(tmp_path, BASE + grid + extra)
    with pytest.raises(ConfigError, match=rf"t.yaml:{where}: {message}") as error:
        load(path)
    assert "\n" not in str(error.value)


def test_truth_options_are_refused_where_they_mean_nothing(tmp_path):
    with pytest.raises(ConfigError, match=r"t.yaml:\d+: model 'bernoulli' takes no truth options"):
        load(write(tmp_path, "name: t\nseed: 1\ngrid: {m: [2], D: [2]}\ntruth: {weights: equal}\n"))
    with pytest.raises(ConfigError, match=r"unknown key 'grid.separation' \(allowed: m, D, algorithm"):
        load(write(tmp_path, "name: t\nseed: 1\ngrid: {m: [2], D: [2], separation: [1]}\n"))
    given_truth = "truths: [{pi: [0.5, 0.5], mu: [[1, 1], [-1, -1]]}]\n"
    with pytest.raises(ConfigError, match=r"t.yaml:\d+: truth options set how random truths are drawn"):
        load(write(tmp_path, BASE + "grid: {m: [2], D: [2], algorithm: [em]}\ntruth: {weights: equal}\n" + given_truth))
    with pytest.raises(ConfigError, match=r"t.yaml:\d+: truth options set how random truths are drawn"):
        load(write(tmp_path, BASE + "grid: {m: [2], D: [2], algorithm: [em], separation: [1, 2]}\n" + given_truth))


def test_a_separation_axis_makes_its_own_batches_rows_and_column(tmp_path):
    config = load(write(tmp_path, BASE + "grid: {m: [3], D: [2], algorithm: [em], separation: [3, 6]}\n"
                                         "truth: {weights: equal, spread: 5}\ntruths: 2\n"))
    labels = [cell.label for cell in config.cells()]
    assert labels == ["m3-D2-separation3-em-uniform", "m3-D2-separation6-em-uniform"]
    plan = [spec.batch_id for spec in GRID.plan(config)]
    assert len(set(plan)) == 4 and plan[0] == "m3-D2-separation3-em-uniform-truth0"
    assert GRID.find_batch(config, plan[3]).cell.truth == (("separation", 6.0),)
    rows = []
    for spec in GRID.plan(config):
        rows += experiments.run_batch(config.values, config.hash, spec).rows
    table = GRID.postprocess(pd.DataFrame(rows))
    assert sorted(table["separation"].unique()) == [3.0, 6.0] and set(table["spread"]) == {5.0}
    assert set(table["weights"]) == {"equal"}
    for separation, part in table.groupby("separation"):
        for mu in part["truth_mu"]:
            assert distances(np.reshape(mu, (3, 2))).min() >= separation
        # The reference loss is the best run on the same data: a sample of this separation's truth.
        for _, truth in part.groupby("truth_index"):
            assert np.allclose(truth["ref_loss"], truth["loss"].min())
    first = table[(table["truth_index"] == 0)].groupby("separation")["truth_mu"].first()
    assert first[3.0] != first[6.0]  # another truth under one truth index


def test_a_config_without_truth_options_has_no_truth_columns(tmp_path):
    config = load(write(tmp_path, BASE + "grid: {m: [3], D: [2], algorithm: [em]}\n"))
    rows = experiments.run_batch(config.values, config.hash, GRID.plan(config)[0]).rows
    assert not {"separation", "spread", "weights"} & set(rows[0])



# --- init schemes: declared options and the truth ---------------------------------------------------

AT_TRUTH = """\
import numpy as np
from emrun.plugins import register_init_scheme


def at_truth(ctx):
    # Every run starts at the truth's means, moved by init_options.shift: what it was given shows in the rows.
    pi = np.tile(ctx.truth.pi, (ctx.runs, 1))
    mu = np.tile(ctx.truth.mu + ctx.options["shift"], (ctx.runs, 1, 1))
    ctx.truth.mu[:] = 0.0  # a copy: the truth the rows record stays
    return pi, mu


at_truth.options = {"shift": 0.5}
at_truth.families = ("gaussian",)  # a shifted Bernoulli mean would leave [0, 1]
register_init_scheme("at_truth", at_truth)
"""


def plugin_config(tmp_path, options: str = "", scheme: str = AT_TRUTH):
    (tmp_path / "at_truth.py").write_text(scheme)
    return write(tmp_path, BASE + "plugins: [at_truth.py]\ngrid: {m: [3], D: [2], algorithm: [em], init: [at_truth]}\n"
                 "truth: {separation: 2, spread: 3}\n" + options)


def test_a_declared_init_option_is_accepted_and_reaches_the_scheme_with_the_truth(tmp_path):
    config = load(plugin_config(tmp_path, "init_options: {shift: 2.5}\n"))
    assert config.values["init_options"] == {"epsilon": 1.0e-4, "shift": 2.5}
    spec = GRID.plan(config)[0]
    rows = experiments.run_batch(config.values, config.hash, spec).rows
    truth = experiments.true_mixture(config.values, 3, 2, 0, spec.cell.truth)
    for row in rows:
        assert np.allclose(row["truth_mu"], truth[1].ravel())  # the scheme's write did not reach it
        assert np.allclose(row["init_mu"], truth[1].ravel() + 2.5)
        assert np.allclose(row["init_pi"], truth[0])


def test_a_declared_option_at_its_default_is_filled_in_and_keeps_the_hash(tmp_path):
    plain = load(plugin_config(tmp_path))
    spelled = load(plugin_config(tmp_path, "init_options: {shift: 0.5}\n"))
    assert plain.hash == spelled.hash and "shift" not in plain.values["init_options"]
    row = experiments.run_batch(plain.values, plain.hash, GRID.plan(plain)[0]).rows[0]
    assert np.allclose(row["init_mu"], np.asarray(row["truth_mu"]) + 0.5)


def test_an_undeclared_or_mistyped_init_option_is_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError) as error:
        load(plugin_config(tmp_path, "init_options: {separation: 1.0}\n"))
    message = str(error.value)
    assert "\n" not in message
    assert message.endswith("t.yaml:10: unknown key 'init_options.separation' (allowed: epsilon, given, at_data_mean, "
                            "shift)"), message
    with pytest.raises(ConfigError, match=r"t.yaml:10: 'init_options.shift' must be a positive finite number"):
        load(plugin_config(tmp_path, "init_options: {shift: near}\n"))
    # Without the scheme in the grid, its option is unknown: built-in schemes keep their keys.
    path = write(tmp_path, BASE + "grid: {m: [3], D: [2], algorithm: [em]}\ninit_options: {shift: 1.0}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'init_options.shift' \(allowed: epsilon, given, at_data_mean\)$"):
        load(path)


def test_a_scheme_may_not_declare_an_option_of_emruns_own(tmp_path):
    scheme = AT_TRUTH.replace('{"shift": 0.5}', '{"shift": 0.5, "epsilon": 0.1}')
    with pytest.raises(ConfigError, match=r"init scheme 'at_truth' .*declares option 'epsilon', which is emrun's own"):
        load(plugin_config(tmp_path, scheme=scheme))


def test_check_plugin_gives_a_scheme_its_options_and_a_truth(tmp_path):
    from tests.conftest import emrun

    (tmp_path / "at_truth.py").write_text(AT_TRUTH)
    result = emrun("check-plugin", "at_truth.py", cwd=tmp_path, check=False)
    assert result.returncode == 0 and "FAIL" not in result.stdout, result.stdout + result.stderr
    assert "ok   init scheme at_truth on gaussian: returns pi [R, m]" in result.stdout


def test_the_jin2016_example_draws_centres_from_its_separated_equal_weight_truth():
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / "jin2016" / "jin2016.yaml"
    config = load(path, ["grid.m=[4]", "truths=1", "runs=3", "data.samples=400"])
    assert config.values["truth"] == {"weights": "equal", "separation": 6.0, "spread": 12.0}
    rows = experiments.run_batch(config.values, config.hash, GRID.plan(config)[0]).rows
    truth_mu = np.reshape(rows[0]["truth_mu"], (4, 2))
    assert distances(truth_mu).min() >= 6.0 and np.allclose(rows[0]["truth_pi"], 0.25)
    for row in rows:
        assert np.allclose(row["init_pi"], 0.25) and np.allclose(row["pi"], 0.25)  # EM on the means only
        centres = np.reshape(row["init_mu"], (4, 2))
        # Each centre is a point of the mixture: within a few standard deviations of some true mean.
        nearest = np.linalg.norm(centres[:, None] - truth_mu[None], axis=2).min(axis=1)
        assert (nearest < 5.0).all()


def test_two_truth_axes_cross_in_the_familys_order_whatever_the_grids(tmp_path):
    one = load(write(tmp_path, BASE + "grid: {m: [3], D: [2], algorithm: [em], spread: [4, 8], separation: [1, 2]}\n"))
    other = load(write(tmp_path, BASE + "grid: {m: [3], D: [2], algorithm: [em], separation: [1, 2], spread: [4, 8]}\n"))
    labels = [cell.label for cell in one.cells()]
    assert labels == [cell.label for cell in other.cells()] and one.hash == other.hash
    assert labels == ["m3-D2-separation1-spread4-em-uniform", "m3-D2-separation1-spread8-em-uniform",
                      "m3-D2-separation2-spread4-em-uniform", "m3-D2-separation2-spread8-em-uniform"]


def _rows_over_two_separations(truths: int = 10, runs: int = 4) -> pd.DataFrame:
    """Trial rows of em and gd at one (m, D) over separations 6 and 12, truth indices shared by both."""
    rng = np.random.default_rng(0)
    return pd.DataFrame([
        {"m": 3, "D": 2, "separation": separation, "truth_index": t, "run_index": r, "init": "uniform", "step": np.nan,
         "algorithm": algorithm, "status": "converged", "k_cluster": bool(rng.random() < 0.3)}
        for separation, t, r, algorithm in itertools.product((6.0, 12.0), range(truths), range(runs), ("em", "gd"))])


def test_a_truth_axis_value_makes_truths_of_its_own_in_every_statistic():
    from emrun import stats
    from emrun.report.kcluster import settings
    from emrun.report.row_claims import paired_k_cluster, rate_with_interval

    rows = _rows_over_two_separations()
    assert stats.truth_columns(rows) == ("m", "D", "separation", "truth_index")
    assert stats.rate(rows[rows["algorithm"] == "gd"], "k_cluster").truths == 20  # not 10: two truths per index
    table = rate_with_interval(rows)
    assert table["truths"].tolist() == [20, 20]
    pairs = paired_k_cluster(rows, "gd", "em")
    assert pairs is not None and pairs["pairs"] == 80  # each gd run with the em run of its own separation only
    assert set(settings(rows)) == {"em (separation 6)", "em (separation 12)", "gd (separation 6)", "gd (separation 12)"}


@pytest.mark.parametrize("bad_at_3,status", [(True, "holds"), (False, "does not hold")])
def test_the_jin2016_claim_of_bad_endings_at_every_m_can_fail(bad_at_3, status):
    # 40 truths x 5 runs per M: with no bad ending at M = 3, the exact bound over truths falls below
    # 0.1 and the claim does not hold (with 10 truths it could only be not testable: bound 0.31).
    from pathlib import Path

    from emrun.registry import CLAIMS

    load(Path(__file__).resolve().parent.parent / "examples" / "jin2016" / "jin2016.yaml")  # registers its claims
    rows = pd.DataFrame([{"m": m, "D": 2, "truth_index": t, "run_index": r, "algorithm": "em_means", "truth_loss": 1.0,
                          "loss": 1.0 + (0.5 if (m == 4 or bad_at_3) else 0.0)}
                         for m, t, r in itertools.product((3, 4), range(40), range(5))])
    verdict = CLAIMS.get("bad_endings_at_every_m").judge(rows, {}, algorithm="em_means", gap=0.1)
    assert verdict.status == status, verdict.evidence
