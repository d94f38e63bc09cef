import re

import pytest

from prunefair.config import ConfigError, StudyConfig, apply_overrides, load_config, validate_config


def _err(raw) -> str:
    with pytest.raises(ConfigError) as exc:
        validate_config(raw, source="study.toml")
    return str(exc.value)


def test_defaults_are_valid():
    cfg = validate_config({})
    assert cfg.train.momentum == 0.9 and cfg.train.weight_decay == 1e-4
    assert cfg.prune.rates == [0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99]


def test_unknown_key_is_named_with_allowed_keys():
    msg = _err({"train": {"epoch": 3}})
    assert "study.toml" in msg and "train.epoch" in msg and "epochs" in msg


def test_wrong_type_names_key():
    msg = _err({"train": {"lr": "fast"}})
    assert "train.lr" in msg


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5])
def test_sparsity_out_of_range(rate):
    msg = _err({"prune": {"rates": [0.5, rate]}})
    assert "prune.rates" in msg and "[0, 1)" in msg


def test_zero_epochs():
    assert "train.epochs" in _err({"train": {"epochs": 0}})
    assert "finetune.epochs" in _err({"finetune": {"epochs": 0}})


def test_unknown_model_and_dataset_list_allowed_values():
    msg = _err({"model": {"name": "resnet999"}})
    assert "model.name" in msg and "mlp" in msg
    msg = _err({"data": {"dataset": "mnist-nope"}})
    assert "data.dataset" in msg and "digits" in msg


def test_schedule_literal():
    assert "cosine" in _err({"train": {"schedule": "linear"}})


def test_overrides_and_file(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('name = "x"\n[train]\nepochs = 4\n')
    cfg = load_config(p, overrides=["train.epochs=7", "prune.rates=[0.9]", "model.name=cnn"])
    assert cfg.name == "x" and cfg.train.epochs == 7 and cfg.prune.rates == [0.9] and cfg.model.name == "cnn"
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["train.epochs"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_config(bad)


def test_resolved_config_round_trips(tmp_path):
    cfg = validate_config({"seeds": [3, 4]})
    p = tmp_path / "c.toml"
    p.write_text(cfg.to_toml())
    assert load_config(p) == cfg
    assert isinstance(cfg, StudyConfig)


def test_dataset_specific_key_on_another_dataset_is_refused():
    msg = _err({"data": {"dataset": "digits", "age_bins": [0, 10, 20]}})
    assert "data.age_bins" in msg and "utkface" in msg
    assert "data.svhn_extra" in _err({"data": {"dataset": "digits", "svhn_extra": True}})


@pytest.mark.parametrize("over, key", [
    ({"train": {"epochs": True}}, "train.epochs = true"),
    ({"train": {"epochs": "3"}}, 'train.epochs = "3"'),
    ({"train": {"flip": 1}}, "train.flip = 1"),
    ({"seeds": [True, 1]}, "seeds[0] = true"),
    ({"prune": {"rates": [True]}}, "prune.rates[0] = true"),
    ({"model": {"width": True}}, "model.width = true"),
    ({"diagnostics": {"enabled": "no"}}, 'diagnostics.enabled = "no"'),
])
def test_config_types_are_strict_and_the_error_names_the_key(over, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        validate_config(over, source="x")


def test_config_takes_paths_tuples_and_numpy_scalars_from_python(tmp_path):
    import numpy as np

    cfg = validate_config({"output_dir": tmp_path / "out", "seeds": (np.int64(0), 1),
                           "prune": {"rates": (np.float32(0.5), 0.9)}, "train": {"lr": 1}}, source="x")
    assert cfg.output_dir == str(tmp_path / "out") and cfg.seeds == [0, 1] and cfg.train.lr == 1.0
    assert cfg.prune.rates == [0.5, 0.9]


def test_config_takes_numpy_arrays_ranges_and_python_types_on_assignment_too():
    import numpy as np

    cfg = validate_config({"prune": {"rates": np.linspace(0.5, 0.9, 3)}, "seeds": np.arange(2)}, source="x")
    assert cfg.prune.rates == pytest.approx([0.5, 0.7, 0.9]) and cfg.seeds == [0, 1]
    cfg.seeds = range(3)
    cfg.train.epochs = np.int64(4)
    assert cfg.seeds == [0, 1, 2] and cfg.train.epochs == 4 and type(cfg.train.epochs) is int
    assert StudyConfig(seeds=(5,)).seeds == [5]
    with pytest.raises(ValueError, match="epochs"):
        cfg.train.epochs = True


def test_config_errors_spell_values_and_places_as_the_study_file_does():
    with pytest.raises(ConfigError) as err:
        validate_config({"model": 1, "seeds": [2**40], "finetune": {"methods": ["nft", "bogus"]}}, source="x")
    text = str(err.value)
    assert "model = 1: expected a table ([model] in the study file" in text and "ModelConfig" not in text
    assert "seed 1099511627776 is outside 0 .. 4294967295" in text
    assert 'finetune.methods[1] = "bogus"' in text


def test_settings_the_docs_describe_are_the_ones_validated():
    # image_size on a dataset that never resizes (digits, registered arrays) did nothing: refused now
    with pytest.raises(ConfigError, match=r"data.image_size = 16 is ignored by dataset 'digits'"):
        validate_config({"data": {"dataset": "digits", "image_size": 16}})
    # a negative split seed passed validation and then failed in numpy without naming the key
    with pytest.raises(ConfigError, match=r"data.split_seed = -1"):
        validate_config({"data": {"split_seed": -1}})
    # "every sample" for the Hessian from a study file (null means unset there: the default, 256)
    assert validate_config({"diagnostics": {"max_samples": "all"}}).diagnostics.max_samples == "all"
    with pytest.raises(ConfigError, match=r'max_samples = 0: an integer >= 1 or "all"'):
        validate_config({"diagnostics": {"max_samples": 0}})


def test_a_stored_study_that_set_a_key_its_dataset_ignores_still_reads():
    """An old study folder with image_size on digits (accepted then, ignored) keeps loading for report and status."""
    cfg = validate_config({"data": {"dataset": "digits", "image_size": 16}}, stored=True)
    assert cfg.data.image_size == 16


def test_only_the_validation_split_evaluated_without_one_is_refused():
    """data.val_fraction = 0 leaves the val split empty: a study that measures only it would measure nothing."""
    with pytest.raises(ConfigError, match=r"eval.splits = \['val'\] \(no other split to measure\) need\(s\) a "
                                          r"validation split, but data.val_fraction = 0"):
        validate_config({"data": {"val_fraction": 0.0}, "eval": {"splits": ["val"]},
                         "diagnostics": {"enabled": False}})
    cfg = validate_config({"data": {"val_fraction": 0.0}, "eval": {"splits": ["val", "test"]},
                           "diagnostics": {"enabled": False}})
    assert cfg.eval.splits == ["val", "test"]  # the empty val split is left out of the tables, test is measured


def test_diagnostics_on_an_empty_validation_split_are_refused_and_stored_studies_still_read(tmp_path):
    """diagnostics.split = 'val' with data.val_fraction = 0: every dense model's diagnostics were all NaN, stored
    without a word. A study folder run before these refusals still reads (report, status): its pruning results hold."""
    import warnings

    from prunefair.study.results import StudyResults

    with pytest.raises(ConfigError, match=r"diagnostics.split = 'val' \(every diagnostic would be NaN\) need\(s\) a "
                                          r"validation split, but data.val_fraction = 0"):
        validate_config({"data": {"val_fraction": 0.0}, "diagnostics": {"split": "val"}})
    validate_config({"data": {"val_fraction": 0.0}, "diagnostics": {"split": "val", "enabled": False}})
    for name, raw in (("d", {"diagnostics": {"split": "val"}}),
                      ("e", {"eval": {"splits": ["val"]}, "diagnostics": {"enabled": False}})):
        raw = {"seeds": [0], "prune": {"rates": [0.5]}, "output_dir": str(tmp_path / name), **raw,
               "data": {"val_fraction": 0.1}}
        text = validate_config(raw).to_toml().replace("val_fraction = 0.1", "val_fraction = 0.0")
        (tmp_path / name / "cells").mkdir(parents=True)
        (tmp_path / name / "config.toml").write_text(text)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert StudyResults.from_store(tmp_path / name).planned == 2  # read, not a ConfigError
