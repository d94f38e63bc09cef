import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from prunefair import run_study
from prunefair.study import StudyResults
from tests.conftest import tiny_study


def test_same_seed_gives_identical_numbers(tmp_path):
    a = run_study(tiny_study(tmp_path / "a"))
    b = run_study(tiny_study(tmp_path / "b"))
    cols = ["acc_pruned", "loss_pruned", "excess_loss"]
    pd.testing.assert_frame_equal(a.by_group[cols], b.by_group[cols])
    assert (a.by_group.loss_pruned.to_numpy() == b.by_group.loss_pruned.to_numpy()).all()


def test_different_seeds_differ_and_aggregate(tmp_path):
    r = run_study(tiny_study(tmp_path, seeds=[0, 1]))
    s = r.summary()
    row = s[(s.method == "nft") & (s.sparsity == 0.9) & (s.stage == "finetuned") & (s.split == "test")]
    assert len(row) == 1 and int(row.seeds.iloc[0]) == 2
    per_seed = r.measures[(r.measures.sparsity == 0.9) & (r.measures.stage == "finetuned") &
                          (r.measures.split == "test")].acc_pruned
    assert row.acc_pruned_mean.iloc[0] == pytest.approx(per_seed.mean())
    assert row.acc_pruned_std.iloc[0] == pytest.approx(per_seed.std(ddof=1))


def test_table_rows_and_outputs(tmp_path):
    r = run_study(tiny_study(tmp_path, seeds=[0, 1]))
    out = tmp_path / "study"
    table = pd.read_csv(out / "table.csv")
    # dense: 2 seeds x 3 splits x 10 groups; pruned: 2 seeds x 2 rates x 2 stages x 3 splits x 10 groups
    assert len(table) == 2 * 3 * 10 + 2 * 2 * 2 * 3 * 10
    assert set(table.columns) >= {"seed", "sparsity", "split", "group", "acc_dense", "acc_pruned", "excess_loss",
                                  "psi"}
    assert (out / "figures" / "fig1_group_accuracy.png").stat().st_size > 10_000
    assert (out / "config.toml").is_file()
    cell = json.loads((out / "cells" / "s0_p0.9_nft" / "result.json").read_text())
    assert abs(cell["achieved_sparsity"] - 0.9) < 1e-3 and cell["status"] == "done"
    # tables rebuilt from the store alone equal the live ones
    again = StudyResults.from_store(out)
    pd.testing.assert_frame_equal(again.by_group, r.by_group)


def test_rerun_resumes_and_changed_field_reruns_only_its_cells(tmp_path):
    cfg = tiny_study(tmp_path)
    run_study(cfg)
    cells = tmp_path / "study" / "cells"
    mtimes = {p.parent.name: p.stat().st_mtime_ns for p in cells.glob("*/result.json")}
    run_study(cfg)
    assert {p.parent.name: p.stat().st_mtime_ns for p in cells.glob("*/result.json")} == mtimes
    cfg["finetune"]["epochs"] = 2
    run_study(cfg)
    now = {p.parent.name: p.stat().st_mtime_ns for p in cells.glob("*/result.json")}
    assert now["s0_dense"] == mtimes["s0_dense"]
    assert now["s0_p0.9_nft"] != mtimes["s0_p0.9_nft"]


def test_nonfinite_loss_fails_cell_and_keeps_others(tmp_path):
    from prunefair.api import CellsFailed

    with pytest.warns(CellsFailed, match="s0_p0.5_nft"):
        r = run_study(tiny_study(tmp_path, finetune={"lr": 1e6, "epochs": 1}, prune={"rates": [0.5]}))
    assert [c["name"] for c in r.failed] == ["s0_p0.5_nft"]
    assert "non-finite" in r.failed[0]["error"]
    assert (r.by_group.stage == "dense").any()


@pytest.mark.slow
def test_cli_study_end_to_end(tmp_path):
    study = tmp_path / "s.toml"
    study.write_text('name = "cli"\nseeds = [0]\n[model]\nwidth = 0.5\n[train]\nepochs = 2\n'
                     '[prune]\nrates = [0.8]\n[finetune]\nepochs = 1\n')
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "prunefair.cli", "study", "--config", str(study), "--out", str(out),
                           "--set", "train.lr=0.05"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy per class" in proc.stdout
    table = pd.read_csv(out / "table.csv")
    assert sorted(table.sparsity.unique()) == [0.0, 0.8]
    assert np.isfinite(table.acc_pruned).all()
    bad = subprocess.run([sys.executable, "-m", "prunefair.cli", "study", "--config", str(study),
                          "--set", "prune.rates=[1.2]"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "prune.rates" in bad.stderr
    st = subprocess.run([sys.executable, "-m", "prunefair.cli", "status", str(out)], capture_output=True, text=True)
    assert st.returncode == 0 and "2 done" in st.stdout
    helpout = subprocess.run([sys.executable, "-m", "prunefair.cli", "study", "--help"], capture_output=True, text=True)
    assert "--config" in helpout.stdout and "--set" in helpout.stdout


def test_save_pruned_keeps_each_pruned_model_and_audit_reproduces_its_row(tmp_path):
    """run.save_pruned writes the fine-tuned pruned weights; auditing the study's own dense/pruned pair gives
    back the study's per-group numbers (the mask is read from the exact zeros)."""
    from prunefair.audit import audit_pair
    from prunefair.config import validate_config

    cfg = tiny_study(tmp_path, run={"save_pruned": True}, diagnostics={"enabled": False})
    r = run_study(cfg)
    cells = tmp_path / "study" / "cells"
    ckpt = cells / "s0_p0.9_nft" / "model.safetensors"
    assert ckpt.is_file() and (cells / "s0_dense" / "model.safetensors").is_file()
    audit = audit_pair(validate_config(cfg), cells / "s0_dense" / "model.safetensors", ckpt, splits=["test"])
    assert audit.sparsity == pytest.approx(0.9, abs=0.01)
    row = r.by_group[(r.by_group.sparsity == 0.9) & (r.by_group.stage == "finetuned") & (r.by_group.split == "test")]
    np.testing.assert_allclose(audit.impacts["test"].by_group.acc_pruned.to_numpy(), row.acc_pruned.to_numpy())
    # without the flag nothing but the dense checkpoint is written
    run_study(tiny_study(tmp_path / "b"))
    assert not (tmp_path / "b" / "study" / "cells" / "s0_p0.9_nft" / "model.safetensors").exists()
