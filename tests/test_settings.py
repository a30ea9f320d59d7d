"""Typed, frozen configs (emrun.settings): each kind's settings give back the canonical dict that is
hashed, key for key and in order; defaults are filled in once; nothing can be changed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emrun.config import ConfigError, config_hash, load
from emrun.kinds.dynamics import DynamicsSettings
from emrun.kinds.segmentation import SegmentationSettings
from emrun.kinds.theory import TheorySettings
from emrun.registry import KINDS
from emrun.settings import GridSettings, Settings, TruthRule, freeze, settings_of, thaw

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
MANIFESTS = sorted((ROOT / "results").glob("*/manifest.json"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_config_round_trips_through_its_settings(path):
    config = load(path)
    back = config.settings.hashed()
    assert back == config.values and list(back) == list(config.values)
    assert config_hash(back) == config.hash


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.parent.name)
def test_every_committed_manifest_config_round_trips(path):
    values = json.loads(path.read_text())["config"]
    assert json.dumps(settings_of(values).hashed()) == json.dumps(values)  # keys in order at every level


def test_each_built_in_kind_has_its_own_settings_type():
    wanted = {"grid": GridSettings, "first_k_cluster": GridSettings, "theory": TheorySettings,
              "dynamics": DynamicsSettings, "segmentation": SegmentationSettings}
    for name, kind in wanted.items():
        config = load(next(p for p in CONFIGS if json.dumps(load(p).values["experiment"]) == f'"{name}"'))
        assert type(KINDS.get(name).settings(config.values)) is kind, name


def test_defaults_left_out_of_the_dict_are_filled_in_and_stay_out_of_the_hash():
    settings = load(ROOT / "configs" / "bmm_table1.yaml").settings
    assert "em_update" not in settings.hashed() and "gd_boundary" not in settings.hashed()
    assert (settings.em_update, settings.gd_boundary) == ("simultaneous", "exact")
    in_place = load(ROOT / "configs" / "bmm_table1_em_in_place.yaml").settings
    assert in_place.em_update == "authors" and in_place.hashed()["em_update"] == "authors"


def test_option_defaults_are_filled_in_one_way_for_theory_and_segmentation():
    theory = load(ROOT / "configs" / "theory_one_cluster_gap.yaml").settings
    assert theory.options["perturbations"] == 200  # the check's default, not restated by its readers
    segmentation = load(ROOT / "configs" / "lecture_segmentation.yaml", ("options.size=32",)).settings
    assert segmentation.options["size"] == 32 and segmentation.options["iterations"] == 300
    assert segmentation.hashed()["options"] == {"size": 32}


def test_first_k_cluster_truths_are_a_typed_rule():
    settings = load(ROOT / "configs" / "bmm_table3.yaml").settings
    assert isinstance(settings.truths, TruthRule) and settings.n_truths == settings.truths.max


def test_settings_cannot_be_changed():
    settings = load(ROOT / "configs" / "bmm_table1.yaml").settings
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.seed = 1
    with pytest.raises(TypeError):
        settings.runs["em"] = 1
    with pytest.raises(AttributeError):
        settings.grid.m.append(9)


def test_a_kind_without_a_settings_type_keeps_its_keys_as_given(tmp_path):
    import shutil

    shutil.copy(ROOT / "tests" / "kinds" / "darts.py", tmp_path / "darts.py")
    (tmp_path / "darts.yaml").write_text("name: darts\nseed: 3\nexperiment: darts\nplugins: [darts.py]\ndarts: 200\n"
                                         "throwers: 3\n")
    config = load(tmp_path / "darts.yaml")  # the kind gives no settings: the protocol's default types it
    settings = config.settings
    assert type(settings) is Settings and settings.own["darts"] == 200 and settings.seed == 3
    assert settings.hashed() == config.values


def test_a_dynamics_config_takes_one_number_of_runs():
    with pytest.raises(ConfigError, match="takes one number of runs"):
        load(ROOT / "configs" / "gradem_figure1_rates.yaml", ("runs={em: 3, gd: 60}",))


def test_a_kind_whose_settings_lose_a_key_is_refused_with_a_clear_error(tmp_path, monkeypatch):
    kind = KINDS.get("grid")
    monkeypatch.setattr(kind, "settings", lambda values: Settings.from_values(
        {k: v for k, v in values.items() if k != "stopping"}))
    with pytest.raises(ConfigError, match=r"settings \(Settings\) do not give back the validated config .keys stopping"):
        load(ROOT / "configs" / "bmm_table1.yaml")
    monkeypatch.setattr(kind, "settings", lambda values: 1 / 0)
    with pytest.raises(ConfigError, match="its settings cannot read the validated config .ZeroDivisionError"):
        load(ROOT / "configs" / "bmm_table1.yaml")


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=4), max_leaves=20)


@given(json_values)
def test_freezing_then_thawing_gives_the_value_back(value):
    assert thaw(freeze(value)) == value
    assert json.dumps(thaw(freeze(value))) == json.dumps(value)  # order and types too

