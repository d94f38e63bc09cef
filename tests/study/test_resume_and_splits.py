"""A rerun into an existing study folder names the settings that changed; a split without samples leaves no rows."""

import pytest

from prunefair.config import validate_config
from prunefair.study.runner import resume_notes


def _folder(tmp_path, **changes):
    base = {"seeds": [0, 1], "output_dir": str(tmp_path / "s"), "prune": {"rates": [0.5, 0.9]},
            "finetune": {"epochs": 2, "lr": 0.01}, "diagnostics": {"enabled": False}}
    cfg = validate_config(base)
    (tmp_path / "s" / "cells").mkdir(parents=True)
    (tmp_path / "s" / "config.toml").write_text(cfg.to_toml())
    for section, value in changes.items():
        base[section] = {**base.get(section, {}), **value} if isinstance(value, dict) else value
    return validate_config(base)


def test_a_changed_config_names_the_settings_that_changed(tmp_path):
    notes = resume_notes(_folder(tmp_path, finetune={"lr": 0.02}, seeds=[0], data={"val_fraction": 0.2}))
    note = next(n for n in notes if "differs from this run's settings" in n)
    assert "seeds: [0, 1] -> [0]" in note and "finetune.lr: 0.01 -> 0.02" in note, note
    assert "data.val_fraction: 0.1 -> 0.2" in note, note
    assert "finetune.epochs" not in note and "output_dir" not in note, note


def test_a_key_set_on_one_side_only_and_many_changes(tmp_path):
    cfg = _folder(tmp_path, data={"resample": {"group": "3", "factor": 2.0}}, train={"epochs": 3, "lr": 0.1},
                  model={"width": 0.5}, eval={"batch_size": 64})
    note = next(n for n in resume_notes(cfg) if "differs" in n)
    assert 'data.resample.group: not set -> "3"' in note and "; and 2 more" in note, note


def test_an_unchanged_config_says_nothing_about_it(tmp_path):
    cfg = _folder(tmp_path, run={"workers": 2})  # [run] does not decide results
    assert not any("differs" in n for n in resume_notes(cfg))


def test_an_unreadable_stored_config_is_said_so_not_every_setting_not_set(tmp_path):
    cfg = _folder(tmp_path)
    stored = tmp_path / "s" / "config.toml"
    stored.write_text(stored.read_text()[:40] + "\n[[[broken\n")  # a truncated or hand-broken file
    note = next(n for n in resume_notes(cfg) if "differs" in n)
    assert "config.toml differs from this run's settings (not readable as TOML: " in note, note
    assert "not set" not in note, note


@pytest.mark.slow  # a whole study and its report: about 8 s on the shared 2-CPU machine
def test_an_empty_validation_split_leaves_no_nan_rows_and_no_numpy_warnings(tmp_path):
    """data.val_fraction = 0 with the default eval.splits (train, val, test): the val split holds no sample, so its
    rows would be all NaN (and numpy warned 'All-NaN slice encountered' on every rebuild); it is left out."""
    import warnings

    import numpy as np
    import pandas as pd

    from prunefair import run_study
    from tests.conftest import tiny_study

    cfg = tiny_study(tmp_path, data={"val_fraction": 0.0}, prune={"rates": [0.9]}, train={"epochs": 1},
                     diagnostics={"enabled": False})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        results = run_study(cfg)  # writes the CSVs and report.html
    out = tmp_path / "study"
    for name in ("table.csv", "measures.csv", "summary.csv", "group_summary.csv"):
        df = pd.read_csv(out / name)
        assert set(df.split) == {"train", "test"}, name
    assert set(results.by_group.split) == {"train", "test"}
    m = results.measures
    assert np.isfinite(m[["acc_pruned", "xi", "max_psi"]].to_numpy(float)).all()
    assert "val accuracy per class" not in (out / "report.html").read_text()


def test_status_and_report_given_the_study_file_name_its_folder(tmp_path):
    """`prunefair status study.toml` (the file, not the folder it writes) said 'study.toml/config.toml: not a study
    folder' (report) or 'no config.toml ... run the study command to start it' (status)."""
    from typer.testing import CliRunner

    from prunefair.cli import app

    study = tmp_path / "study.toml"
    study.write_text(f'seeds = [0]\noutput_dir = "{tmp_path / "runs" / "a"}"\n')
    for command in ("status", "report"):
        res = CliRunner().invoke(app, [command, str(study)])
        squashed = "".join(res.output.split())  # rich folds long lines, inside the path too
        assert res.exit_code == 2, res.output
        assert "".join(f"a file, not a study folder; give the folder the study writes: this study file's folder is "
                       f"{tmp_path / 'runs' / 'a'}".split()) in squashed, res.output
        assert "Traceback" not in res.output
