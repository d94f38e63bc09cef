"""Overrides, study-file reading and the checks across keys of the configuration layer."""

import pytest

from prunefair.config import ConfigError, apply_overrides, load_config, validate_config


def _err(raw) -> str:
    with pytest.raises(ConfigError) as exc:
        validate_config(raw, source="study.toml")
    return str(exc.value)


def _override_err(*overrides) -> str:
    with pytest.raises(ConfigError) as exc:
        apply_overrides({}, list(overrides))
    return str(exc.value)


def _study_file(tmp_path, text: str):
    p = tmp_path / "study.toml"
    p.write_text(text)
    return p


# -- 1: a bracketed or quoted value that is not TOML is an error, not a string ---------------------------------
def test_list_override_with_bare_words_names_the_value_and_the_expected_type():
    msg = _override_err("seeds=[a]")
    assert msg.startswith("override 'seeds=[a]': the value is not valid TOML: "
                          "Invalid value (at character 2 of the value)")
    assert "'a' is not a number, true/false or a quoted string" in msg
    assert msg.endswith("seeds expects a list of integers")
    msg = _override_err("seeds=[x,y]")
    assert "'x', 'y' are not numbers, true/false or quoted strings" in msg and "a list of integers" in msg
    msg = _override_err("prune.rates=[0.5,a]")
    assert "(at character 6 of the value)" in msg and "'a' is not a number" in msg
    assert msg.endswith("prune.rates expects a list of numbers")


def test_unterminated_quote_and_table_are_errors_and_bare_words_stay_strings():
    msg = _override_err('data.dataset="folder')
    assert "Unterminated string (at the end of the value)" in msg and "data.dataset expects a string" in msg
    assert "data.resample expects a table" in _override_err("data.resample={group=a}")
    out = apply_overrides({}, ["data.dataset=folder", "name=my study", "data.root=/data/x"])
    assert out == {"data": {"dataset": "folder", "root": "/data/x"}, "name": "my study"}


def test_cli_seeds_that_are_not_integers_name_the_value():
    from typer.testing import CliRunner

    from prunefair.cli import app

    for seeds, named in (("a", "'a' is not a number"), ("x,y", "'x', 'y' are not numbers")):
        res = CliRunner().invoke(app, ["study", "--seeds", seeds, "--quiet", "--out", "unused"])
        text = " ".join(res.output.split())  # rich wraps long lines
        assert res.exit_code == 2, res.output
        assert named in text and "seeds expects a list of integers" in text


# -- 2: reading the study file -----------------------------------------------------------------------------------
def test_non_utf8_study_file_is_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'name = "\xff\xfe"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(bad)
    assert str(exc.value) == f"{bad}: not valid UTF-8 (byte 0xff at offset 8); save the study file as UTF-8"


def test_folder_and_unreadable_study_file_are_named(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="is a folder, not a study file") as exc:
        load_config(tmp_path)
    assert str(exc.value).startswith(f"{tmp_path}: ")
    p = _study_file(tmp_path, 'name = "x"\n')

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(p), "read_text", denied)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(exc.value) == f"{p}: cannot read the study file: Permission denied"


# -- 3: key=null unsets a key -------------------------------------------------------------------------------------
def test_null_override_unsets_the_key_so_the_default_applies(tmp_path):
    p = _study_file(tmp_path, '[data]\ncache_dir = "cache"\n[train]\nepochs = 4\n')
    assert load_config(p).data.cache_dir == "cache"
    cfg = load_config(p, overrides=["data.cache_dir=null", "train.epochs=null"])
    assert cfg.data.cache_dir is None and cfg.train.epochs == 30


def test_null_override_of_an_absent_key_is_no_error_and_adds_nothing():
    assert apply_overrides({"data": {"dataset": "digits"}}, ["data.cache_dir=null", "model.width=null"]) == {
        "data": {"dataset": "digits"}}
    assert validate_config(apply_overrides({}, ["data.cache_dir=null"])).data.cache_dir is None
    assert apply_overrides({}, ['name="null"']) == {"name": "null"}  # quoted: the text null


# -- 4: loader keys a dataset ignores ----------------------------------------------------------------------------
@pytest.mark.parametrize("key, value", [("limit", 100), ("root", "/data/x"), ("skip_unreadable", True),
                                        ("drop_duplicates", True)])
def test_loader_keys_are_refused_for_digits(key, value):
    msg = _err({"data": {"dataset": "digits", key: value}})
    assert f"data.{key} = {value!r} is ignored by dataset 'digits' (it applies to " in msg and "remove it" in msg


def test_loader_keys_are_refused_for_registered_arrays_and_the_others_own_keys():
    import numpy as np

    from prunefair.data import register_arrays

    register_arrays("arrays_for_options", np.zeros((12, 3), "float32"), np.arange(12) % 2)
    msg = _err({"data": {"dataset": "arrays_for_options", "limit": 5}})
    assert "data.limit = 5 is ignored by dataset 'arrays_for_options' (it applies to cifar10, folder, svhn" in msg
    msg = _err({"data": {"dataset": "digits", "age_bins": [0, 10]}})
    assert "data.age_bins = [0, 10] is ignored by dataset 'digits' (it applies to utkface)" in msg


def test_loader_keys_are_refused_exactly_where_the_loader_ignores_them():
    msg = _err({"data": {"dataset": "svhn", "root": "/d", "skip_unreadable": True}})
    assert "data.skip_unreadable = True is ignored by dataset 'svhn' (it applies to cifar10, folder, utkface)" in msg
    msg = _err({"data": {"dataset": "cifar10", "root": "/d", "drop_duplicates": True}})
    assert "data.drop_duplicates = True is ignored by dataset 'cifar10' (it applies to folder, utkface)" in msg
    cifar = validate_config({"data": {"dataset": "cifar10", "root": "/d", "limit": 300, "skip_unreadable": True}})
    assert cifar.data.limit == 300 and cifar.data.skip_unreadable  # read by its image-folder layout
    utk = {"dataset": "utkface", "target": "ethnicity", "group": "ethnicity", "root": "/d", "limit": 50,
           "skip_unreadable": True, "drop_duplicates": True}
    assert validate_config({"data": utk}).data.drop_duplicates
    assert validate_config({"data": {"dataset": "digits", "limit": None, "skip_unreadable": False}}).data.limit is None


# -- 5: the diagnostics' split should be evaluated ---------------------------------------------------------------
def test_diagnostics_split_not_evaluated_warns_naming_both_keys_and_the_fix():
    with pytest.warns(UserWarning) as caught:
        cfg = validate_config({"eval": {"splits": ["test"]}})
    assert cfg.eval.splits == ["test"] and cfg.diagnostics.split == "train"  # the group-size experiment's setting
    assert [str(w.message) for w in caught] == [
        "diagnostics.split = 'train' is not among eval.splits ['test']: the Theorem 1 check needs every group's loss "
        "on that split and is left out of the report; add 'train' to eval.splits, set diagnostics.split to one of "
        "test, or set diagnostics.enabled = false"]


def test_diagnostics_split_among_eval_splits_or_disabled_is_quiet(recwarn):
    assert validate_config({"eval": {"splits": ["test"]}, "diagnostics": {"split": "test"}}).diagnostics.split == "test"
    assert validate_config({"eval": {"splits": ["test"]}, "diagnostics": {"enabled": False}}).eval.splits == ["test"]
    assert validate_config({}).diagnostics.split in validate_config({}).eval.splits
    assert not [w for w in recwarn if "diagnostics.split" in str(w.message)]


# -- 6: prune.method, the former name of prune.criterion ---------------------------------------------------------
def test_override_of_criterion_wins_over_the_former_name_in_the_file(tmp_path):
    p = _study_file(tmp_path, '[prune]\nmethod = "random"\n')
    assert load_config(p).prune.criterion == "random"
    assert load_config(p, overrides=["prune.criterion=structured"]).prune.criterion == "structured"
    q = _study_file(tmp_path, '[prune]\ncriterion = "structured"\n')
    assert load_config(q, overrides=["prune.method=random"]).prune.criterion == "random"


def test_both_names_of_criterion_in_one_file_are_refused(tmp_path):
    p = _study_file(tmp_path, '[prune]\nmethod = "random"\ncriterion = "magnitude"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(exc.value) == (f"{p}: invalid study configuration\n  prune: both prune.criterion ('magnitude') and "
                              "prune.method ('random', the former name of criterion) are set; keep only criterion")
    assert load_config(p, overrides=["prune.criterion=random"]).prune.criterion == "random"  # the override wins


def test_rates_that_would_share_a_cell_name_are_refused():
    msg = _err({"prune": {"rates": [0.5, 0.5000001]}})
    assert "rates 0.5 and 0.5000001 agree to 6 significant digits" in msg
