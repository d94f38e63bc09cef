"""Every shipped preset is a valid study (with a data root where the dataset needs one)."""

import pytest

from prunefair.config import load_config, preset_names, read_preset


@pytest.mark.parametrize("name", preset_names())
def test_preset_validates(name):
    raw = read_preset(name)
    overrides = [] if raw.get("data", {}).get("dataset", "digits") == "digits" else ['data.root="/data/x"']
    cfg = load_config(None, preset=name, overrides=overrides)
    assert cfg.name == raw["name"]


def test_experiment_presets_ship():
    assert {"digits", "utkface_ethnicity", "utkface_gender", "cifar10", "utkface_mitigation", "gpu_utkface_ethnicity",
            "gpu_cifar10", "utkface_age", "gpu_utkface_gender", "gpu_utkface_age"} <= set(preset_names())


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_says_what_it_reproduces(name):
    from prunefair.config import preset_description

    assert len(preset_description(name)) > 20
