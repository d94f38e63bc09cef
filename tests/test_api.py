"""prunefair.api on bad input: refused before any study or cell runs, naming the key."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from prunefair.api import run_group_size, run_study
from prunefair.cli import app
from prunefair.config import ConfigError
from tests.conftest import tiny_study


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), -2.0])
def test_group_size_refuses_non_finite_factors_before_the_data_loads(tmp_path, bad):
    """inf once ended in an OverflowError traceback (upsampled_size: int(math.floor(inf)))."""
    out = tmp_path / "gs"
    with pytest.raises(ConfigError, match=r"factors = .*: must be a finite number > 0"):
        run_group_size(tiny_study(tmp_path), group="1", factors=[1, bad], out=out)
    assert not out.exists()


def test_group_size_refuses_a_factor_that_makes_the_split_huge_before_any_study(tmp_path):
    """1e12 once ended in a MemoryError (924 TiB) after the factor-1 study had run."""
    out = tmp_path / "gs"
    with pytest.raises(ValueError, match=r"factors = 1e\+12 would make group '1' \d+ samples \(\d+ now\) and the "
                                         r"training split \d+ samples, over 100x its \d+"):
        run_group_size(tiny_study(tmp_path), group="1", factors=[1, 1e12], out=out)
    assert not out.exists()


def test_group_size_cli_exits_2_for_an_infinite_factor(tmp_path):
    res = CliRunner().invoke(app, ["group-size", "--group", "1", "--factors", "1,inf", "--seeds", "0", "--rates",
                                   "0.9", "--out", str(tmp_path / "gs"), "-q"])
    assert res.exit_code == 2, res.output
    assert "factors = inf: must be a finite number > 0" in res.output
    assert not (tmp_path / "gs").exists()


def test_study_with_a_huge_resample_factor_fails_before_any_cell(tmp_path):
    cfg = tiny_study(tmp_path, data={"dataset": "digits", "resample": {"group": "1", "factor": 1e12}})
    with pytest.raises(ValueError, match=r"data.resample.factor = 1e\+12 would make group '1'"):
        run_study(cfg)
    assert not (Path(cfg["output_dir"]) / "cells").exists()


def _image_folder(root: Path, *, label) -> Path:
    """40 tiny images with attributes.csv (file, label(i), sex alternating f/m)."""
    from tests.data.conftest import write_jpeg

    rows = ["file,label,sex"]
    for i in range(40):
        write_jpeg(root / f"{i}.png", seed=i, size=8)
        rows.append(f"{i}.png,{label(i)},{'f' if i % 2 else 'm'}")
    (root / "attributes.csv").write_text("\n".join(rows) + "\n")
    return root


def test_study_on_a_one_class_folder_fails_before_any_cell(tmp_path):
    """Every cell once ran and failed with 'the model returned logits of shape (56, 1) ... binary model'."""
    root = _image_folder(tmp_path / "oneclass", label=lambda i: 0)
    cfg = tiny_study(tmp_path, data={"dataset": "folder", "root": str(root), "target": "label", "group": "sex",
                                     "workers": 1})
    with pytest.raises(ValueError, match=rf"dataset 'folder' in {root}: data.target = 'label' has 1 class\(es\) in "
                                         r"the train split \(\['0'\]\); a classifier needs at least two"):
        run_study(cfg)
    assert not (Path(cfg["output_dir"]) / "cells").exists()
    from typer.testing import CliRunner

    from prunefair.cli import app

    out = CliRunner().invoke(app, ["study", "--preset", "digits", "--set", "data.dataset=folder", "--set",
                                   f"data.root={root}", "--set", "data.target=label", "--set", "data.group=sex",
                                   "--set", "data.workers=1", "--out", str(tmp_path / "cli")])
    assert out.exit_code == 2 and "a classifier needs at least two" in " ".join(out.output.split())  # as --help says


def test_data_refused_in_a_started_study_exits_2_without_a_resume_hint(tmp_path):
    """A study ran on a two-class folder; its CSV then lost a class. The rerun once exited 1 with 'rerun the same
    command to resume', which refuses again: the data is now refused as it would be in a new folder (exit 2)."""
    root = _image_folder(tmp_path / "imgs", label=lambda i: (i // 2) % 2)
    rows = (root / "attributes.csv").read_text().splitlines()
    args = ["study", "--preset", "digits", "--set", "data.dataset=folder", "--set", f"data.root={root}", "--set",
            "data.target=label", "--set", "data.group=sex", "--set", "data.workers=1", "--set", "model.name=mlp",
            "--set", "train.epochs=1", "--seeds", "0", "--rates", "0.5", "--out", str(tmp_path / "s"), "-q"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    (root / "attributes.csv").write_text("\n".join(r.replace(",1,", ",0,") for r in rows) + "\n")
    again = CliRunner().invoke(app, args)
    text = " ".join(again.output.split())
    assert again.exit_code == 2, again.output
    assert "has 1 class(es) in the train split" in text and "the data was refused before anything ran on it; " \
        "finished cells are kept" in text and "rerun the same command" not in text
    assert len(list((tmp_path / "s" / "cells").iterdir())) == 2  # both cells still there


def test_run_study_given_a_preset_name_says_how_to_load_the_preset(tmp_path, monkeypatch):
    """run_study("digits") once said only "digits: study file not found"."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"'digits': no such study file; 'digits' is a preset: "
                                          r"prunefair.run_study\(prunefair.load_config\(preset='digits'\)"):
        run_study("digits")
    with pytest.raises(ConfigError, match="study file not found"):
        run_study("no_such_study.toml")
    assert not (tmp_path / "runs").exists()
