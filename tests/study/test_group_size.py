import json

import numpy as np
import pandas as pd
import pytest

from prunefair.api import run_group_size
from prunefair.config import validate_config
from prunefair.data import load_dataset, resample_group
from prunefair.study.group_size import plan_group_size, upsampled_size
from tests.conftest import tiny_study


@pytest.mark.parametrize("factor", [0.5, 1, 2.5, 5, 20])
def test_upsampled_size_is_what_resample_group_produces(factor):
    train = load_dataset("digits").train
    count = int(train.group_counts()[8])
    after = resample_group(train, group="8", factor=factor)
    assert upsampled_size(count, factor) == int(after.group_counts()[8])
    assert len(after) == len(train) - count + upsampled_size(count, factor)


def test_plan_matches_steps_and_sets_resample_per_factor(tmp_path):
    cfg = validate_config(tiny_study(tmp_path, train={"epochs": 12}))
    plans = plan_group_size(cfg, group="female", factors=[1, 5, 10, 20], train_size=16618, group_count=7921,
                            out=tmp_path / "e3")
    # round(12 * N / (N + (f - 1) n)) by hand: 12, 4.13 -> 4, 2.27 -> 2, 1.19 -> 1
    assert [p.epochs for p in plans] == [12, 4, 2, 1]
    assert [p.train_size for p in plans] == [16618, 16618 + 4 * 7921, 16618 + 9 * 7921, 16618 + 19 * 7921]
    assert plans[0].config.data.resample is None
    assert plans[2].config.data.resample.group == "female" and plans[2].config.data.resample.factor == 10
    assert plans[3].config.output_dir == str(tmp_path / "e3" / "f20")
    same = plan_group_size(cfg, group="female", factors=[1, 20], train_size=16618, group_count=7921,
                           match_steps=False)
    assert [p.epochs for p in same] == [12, 12]
    for bad, match in (([], "at least one"), ([1, 1], "duplicates"), ([0, 2], "> 0")):
        with pytest.raises(ValueError, match=match):
            plan_group_size(cfg, group="female", factors=bad, train_size=10, group_count=5)


def test_group_size_experiment_end_to_end_on_digits(tmp_path):
    cfg = tiny_study(tmp_path, diagnostics={"max_samples": 16, "trace_samples": 0}, prune={"rates": [0.5]})
    table = run_group_size(cfg, group="8", factors=[1, 4], out=tmp_path / "e3")
    assert sorted(table.factor.unique()) == [1.0, 4.0] and table.group.nunique() == 10
    plan = json.loads((tmp_path / "e3" / "group_size.json").read_text())
    assert [s["epochs"] for s in plan["studies"]] == [3, round(3 * plan["train_size"] / plan["studies"][1]["train_size"])]
    assert (tmp_path / "e3" / "figures" / "fig14_group_size.png").stat().st_size > 10_000
    assert (tmp_path / "e3" / "f4" / "report.html").is_file()
    norms = table.groupby(["factor", "group"]).grad_norm.mean()
    assert np.isfinite(norms).all() and (norms > 0).all()
    again = run_group_size(cfg, group="8", factors=[1, 4], out=tmp_path / "e3")  # resumes: same numbers
    np.testing.assert_array_equal(again.grad_norm.to_numpy(), table.grad_norm.to_numpy())
    with pytest.raises(ValueError, match="allowed: 0, 1, 2"):
        run_group_size(cfg, group="eight", factors=[1, 4], out=tmp_path / "bad")
    # the table and figure are outputs: `prunefair report OUT` rebuilds them from the studies, in a moved copy too
    import shutil

    from typer.testing import CliRunner

    from prunefair.cli import app

    moved = tmp_path / "moved"
    shutil.copytree(tmp_path / "e3", moved)
    shutil.rmtree(tmp_path / "e3")
    (moved / "group_size.csv").unlink()
    shutil.rmtree(moved / "figures")
    res = CliRunner().invoke(app, ["report", str(moved)])
    assert res.exit_code == 0, res.output
    rebuilt = pd.read_csv(moved / "group_size.csv")
    np.testing.assert_array_equal(rebuilt.grad_norm.to_numpy(), table.grad_norm.to_numpy())
    assert (moved / "figures" / "fig14_group_size.png").stat().st_size > 10_000


def test_cli_group_size(tmp_path):
    from typer.testing import CliRunner

    from prunefair.cli import app

    args = ["group-size", "--group", "3", "--factors", "1,3", "--seeds", "0", "--rates", "0.5", "--quiet",
            "--set", "train.epochs=2", "--set", "finetune.epochs=1", "--set", "diagnostics.trace_samples=0",
            "--out", str(tmp_path / "e3")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "e3" / "group_size.csv").is_file() and "fig14_group_size.png" in res.output
    same = CliRunner().invoke(app, [*args[:-1], str(tmp_path / "same"), "--same-epochs"])
    assert same.exit_code == 0, same.output
    import json

    assert json.loads((tmp_path / "same" / "group_size.json").read_text())["match_steps"] is False
    assert "epochs = 2" in (tmp_path / "same" / "f3" / "config.toml").read_text()  # not scaled to 3x fewer
    bad = CliRunner().invoke(app, ["group-size", "--group", "3", "--factors", "1,x", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "--factors" in bad.output
    wrong = CliRunner().invoke(app, ["group-size", "--group", "ten", "--factors", "1,2", "--out", str(tmp_path / "c")])
    assert wrong.exit_code == 2 and "allowed" in wrong.output and "resume" not in wrong.output  # nothing started
