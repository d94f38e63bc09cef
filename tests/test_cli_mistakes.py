"""The mistakes a newcomer makes on the command line: each message names the key or value and says the fix."""

import pytest
import torch
from typer.testing import CliRunner

from prunefair.cli import app


def _error(args: list[str]) -> tuple[int, str]:
    res = CliRunner().invoke(app, args)
    return res.exit_code, " ".join(res.output.split())  # rich folds long lines


def test_a_misspelt_key_names_the_key_it_probably_meant(tmp_path):
    out = ["--out", str(tmp_path / "never")]
    for typo, unknown, meant in (("train.epoch=3", "train.epoch", "train.epochs"), ("trian.epochs=3", "trian", "train"),
                                 ("data.roots=/x", "data.roots", "data.root"), ("Model.name=cnn", "Model", "model"),
                                 # a former name's typo points to the current name
                                 ("prune.methd=random", "prune.methd", "prune.criterion")):
        code, text = _error(["study", "--set", typo, *out])
        assert code == 2 and f"unknown key '{unknown}' (did you mean '{meant}'?)" in text, text
    code, text = _error(["study", "--set", "zzzz=1", *out])  # nothing close: no guess, the allowed keys
    assert code == 2 and "did you mean" not in text and "allowed keys here: name, seeds" in text
    assert not (tmp_path / "never").exists()


def test_one_value_where_a_list_is_wanted_says_how_to_write_the_list(tmp_path):
    out = ["--out", str(tmp_path / "never")]
    code, text = _error(["study", "--set", "finetune.methods=el", *out])
    assert code == 2 and 'finetune.methods = "el"' in text
    assert 'write a list, even of one value: finetune.methods = ["el"]' in text
    code, text = _error(["study", "--set", "prune.rates=0.9", *out])
    assert code == 2 and "prune.rates = [0.9]" in text
    study = tmp_path / "study.toml"
    study.write_text("seeds = 3\n")
    code, text = _error(["study", "--config", str(study), *out])
    assert code == 2 and str(study) in text and "seeds = [3]" in text


def test_study_help_says_where_results_go_and_what_the_exit_codes_mean():
    res = CliRunner().invoke(app, ["study", "--help"], env={"COLUMNS": "200"})
    text = " ".join(res.output.split())
    assert "default: the study file's or preset's, e.g. runs/digits" in text
    # a missing data folder exits 1 (tests/study/test_api_edges.py); the help says so instead of promising 2
    assert "a missing data folder" in text and "2 on a bad setting" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_a_gpu_is_a_setting_error_before_anything_runs(tmp_path):
    out = tmp_path / "never"
    code, text = _error(["study", "--device", "cuda", "--out", str(out), "--seeds", "0", "--rates", "0.5"])
    assert code == 2 and "device = 'cuda' but no CUDA device is available" in text  # was 1, "a cell failed"
    assert not out.exists()


def test_an_error_in_a_study_file_merged_over_a_preset_names_both(tmp_path):
    study = tmp_path / "study.toml"
    study.write_text("[train]\nepochs = 0\n")
    code, text = _error(["study", "--preset", "digits", "--config", str(study), "--out", str(tmp_path / "never")])
    assert code == 2 and f"preset 'digits' + {study} + overrides output_dir=" in text
    assert "train.epochs = 0: Input should be greater than or equal to 1" in text
