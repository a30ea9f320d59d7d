"""Config validation: clear errors with file, line and key; overrides; grid expansion."""

import re
from pathlib import Path

import pytest
import yaml

from emrun.batch import BatchSpec
from emrun.config import ConfigError, load
from tests.conftest import TINY, emrun


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_tiny_config_expands_into_cells(tiny_config):
    config = load(tiny_config)
    labels = [c.label for c in config.cells()]
    assert labels[:2] == ["m2-D2-em-uniform", "m2-D2-gd-step0.05-uniform"]
    assert len(labels) == 8 and config.trial_count() == 8 * 6
    assert config.values["stopping"]["em"] == {"max_iter": 300, "tol": 1e-5}
    assert config.values["k_cluster_threshold"] == 5e-4  # the paper's default is filled in


@pytest.mark.parametrize("edit,line,words", [
    (("  D: [2, 3]\n", "  D: [2, 3]\n  colour: red\n"), 6, ["unknown key 'grid.colour'", "allowed: m, D"]),
    (("  em: {max_iter: 300, tol: 1.0e-5}\n", "  em: {max_iter: 300, tol: 1.0e-5, tolerance: 3}\n"), 11,
     ["unknown key 'stopping.em.tolerance'", "max_iter, tol"]),
    (("  algorithm: [em, gd]\n", "  algorithm: [em, sgd]\n"), 6, ["grid.algorithm", "em, gd", "'sgd'"]),
    (("runs: 6\n", "runs: -2\n"), 9, ["'runs' must be an integer >= 1"]),
    (("  step: [0.05]\n", "  step: [zero]\n"), 7, ["'grid.step' must be a positive finite number"]),
    (("data: population\n", "data: {sample: 10}\n"), 8, ["unknown key 'data.sample'", "allowed: samples"]),
])
def test_bad_configs_name_file_line_and_key(tmp_path, edit, line, words):
    path = write(tmp_path, TINY.replace(*edit))
    with pytest.raises(ConfigError) as error:
        load(path)
    message = str(error.value)
    assert message.startswith(f"{path}:{line}:"), message
    for word in words:
        assert word in message


def test_not_yaml_and_missing_key(tmp_path):
    with pytest.raises(ConfigError, match=r"c.yaml:3: not valid YAML"):
        load(write(tmp_path, "name: x\ngrid: [1, 2\n"))
    with pytest.raises(ConfigError, match="missing key 'seed'"):
        load(write(tmp_path, "name: x\ngrid: {m: [2], D: [2]}\n"))


def test_overrides_apply_and_are_named_in_errors(tiny_config):
    config = load(tiny_config, ["runs=2", "grid.m=[4]", "data={samples: 100}"])
    assert config.values["runs"] == {"em": 2, "gd": 2} and config.values["grid"]["m"] == [4]
    assert config.values["data"] == {"kind": "samples", "n": 100}
    assert config.hash != load(tiny_config).hash
    with pytest.raises(ConfigError, match=r"\(--set\): 'runs' must be an integer"):
        load(tiny_config, ["runs=many"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load(tiny_config, ["runs"])


def test_given_truth_must_match_the_grid(tmp_path):
    truth = "truths:\n  - {pi: [0.5, 0.5], mu: [[0.1, 0.2], [0.3, 0.4]]}\n"
    text = TINY.replace("data: population\n", "data: population\n" + truth)
    with pytest.raises(ConfigError, match=r"given truth 0 has \(m, D\) = \(2, 2\)"):
        load(write(tmp_path, text))
    config = load(write(tmp_path, text.replace("m: [2, 3]", "m: [2]").replace("D: [2, 3]", "D: [2]")))
    assert config.n_truths == 1


def test_bad_config_on_the_command_line_writes_nothing(tmp_path):
    path = write(tmp_path, TINY.replace("  D: [2, 3]\n", "  D: [2, 3]\n  colour: red\n"))
    result = emrun("sweep", str(path), cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert "unknown key 'grid.colour'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


def test_dry_run_prints_cells_and_writes_nothing(tiny_config):
    result = emrun("sweep", str(tiny_config), "--dry-run", "--set", "runs=4", cwd=tiny_config.parent)
    assert ("4 cells (m, D) x 2 algorithm settings (8 in all) x 1 truth(s) x 4 EM / 4 GD runs; 8 batches in the first "
            "round (at most 32 trials)") in result.stdout
    # issue 30: the expected time first, the time if every run reached its cap second, small ones in seconds
    time_line = next(line for line in result.stdout.splitlines() if line.startswith("time on "))
    assert re.fullmatch(r"time on \d+ workers?: expected about [\d.]+ s \(at most [\d.]+ s if every run reached its cap\)",
                        time_line), time_line
    assert "m3-D3-gd-step0.05-uniform" in result.stdout
    assert not (tiny_config.parent / "results").exists()


def test_shipped_configs_are_valid():
    for path in sorted(Path(__file__).parent.parent.glob("configs/*.yaml")):
        config = load(path)
        assert yaml.safe_load(path.read_text())["name"] == config.name


def test_variant_keys_are_checked_and_default_values_keep_the_hash(tmp_path):
    base = "name: v\nseed: 1\ngrid: {m: [2], D: [2]}\n"
    path = tmp_path / "v.yaml"
    path.write_text(base)
    plain = load(path)
    path.write_text(base + "em_update: simultaneous\ngd_boundary: exact\n")
    assert load(path).hash == plain.hash
    path.write_text(base + "em_update: gauss\n")
    with pytest.raises(ConfigError, match=r"v.yaml:4.*em_update.*simultaneous, authors, ecm"):
        load(path)
    path.write_text(base + "em_update: in_place\n")  # it named two rules in turn: one hash, one rule
    with pytest.raises(ConfigError, match=r"v.yaml:4: 'em_update: in_place' is retired: choose 'authors'.*or 'ecm'"):
        load(path)
    path.write_text("name: v\nseed: 1\ngrid: {m: [2], D: [2], gd_max_iter: [10, 0]}\n")
    with pytest.raises(ConfigError, match=r"grid.gd_max_iter"):
        load(path)
    path.write_text("name: v\nseed: 1\ngrid: {m: [2], D: [2], gd_max_iter: [10, 20]}\n")
    labels = [cell.label for cell in load(path).cells()]
    assert labels == ["m2-D2-em-uniform", "m2-D2-gd-step0.02-cap10-uniform", "m2-D2-gd-step0.02-cap20-uniform"]


def test_every_shipped_config_fits_the_memory_budget():
    # Batches are split into chunks of trials_per_chunk trials; that works as long as one trial fits.
    from emrun import experiments

    for path in sorted(Path("configs").glob("*.yaml")):
        config = load(path)
        values = config.values
        estimate = getattr(config.kind.implementation, "bytes_per_trial", None)
        if estimate is None:  # a kind without trials to size (segmentation: three images per batch)
            continue
        for cell in config.cells():
            per_trial = estimate(values, cell)
            assert per_trial <= experiments.MEMORY_BUDGET, (path, cell)
            if config.kind.name in ("grid", "first_k_cluster"):  # trial batches run in chunks of this many
                chunk = experiments.trials_per_chunk(values, cell, experiments.data_size(values, cell.D))
                assert min(chunk, values["runs"][cell.algorithm]) * per_trial <= experiments.MEMORY_BUDGET


def test_a_batch_split_into_chunks_gives_the_same_rows(tmp_path, monkeypatch):
    from emrun import experiments

    config = load(write(tmp_path, TINY))
    spec = BatchSpec("b", config.cells()[-1], 0)  # GD on m = 3, D = 3
    whole = experiments.run_batch(config.values, "h", spec).rows
    per_trial = experiments.bytes_per_trial(config.values, spec.cell, 8)
    monkeypatch.setattr(experiments, "MEMORY_BUDGET", 4 * per_trial)
    assert experiments.trials_per_chunk(config.values, spec.cell, 8) == 4
    chunked = experiments.run_batch(config.values, "h", spec).rows
    strip = lambda rows: [{k: v for k, v in r.items() if k != "batch_seconds"} for r in rows]  # noqa: E731
    assert strip(whole) == strip(chunked)


def test_a_single_value_where_a_list_is_expected_is_a_one_element_list_with_the_same_hash(tmp_path):
    listed = load(write(tmp_path, "name: x\nseed: 1\ngrid: {m: [2], D: [3], algorithm: [em], step: [0.05]}\n"))
    single = load(write(tmp_path, "name: x\nseed: 1\ngrid: {m: 2, D: 3, algorithm: em, step: 0.05}\n"))
    assert single.values == listed.values and single.hash == listed.hash
    assert single.values["grid"]["m"] == [2] and single.values["grid"]["algorithm"] == ["em"]
