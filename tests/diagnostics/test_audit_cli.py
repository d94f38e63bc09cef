import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from prunefair import run_study
from prunefair.cli import app
from prunefair.diagnostics import GroupDiagnostics
from prunefair.models import build_model
from prunefair.prune import global_magnitude_masks, parameter_distance
from prunefair.study.store import load_model_state, save_checkpoint
from tests.conftest import tiny_study

SETS = ["--set", "model.width=0.5", "--set", "diagnostics.max_samples=48", "--set", "diagnostics.trace_samples=0",
        "--set", "diagnostics.hvp=double_backward"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diag_study")
    results = run_study(tiny_study(tmp, diagnostics={"max_samples": 48, "trace_samples": 0, "hvp": "double_backward"}))
    return tmp / "study", results


@pytest.mark.slow
def test_study_stores_diagnostics_once_and_writes_figures_12_13(tmp_path):
    results = run_study(tiny_study(tmp_path, seeds=[0, 1], diagnostics={"max_samples": 48, "trace_samples": 3}))
    root = tmp_path / "study"
    cell = json.loads((root / "cells" / "s0_dense" / "result.json").read_text())
    d = GroupDiagnostics.from_dict(cell["diagnostics"])
    assert d.split == "train" and (d.hessian_samples <= 48).all() and np.isfinite(d.hessian_trace).all()
    for name in ("fig12_gradient_hessian.png", "fig13_boundary.png"):
        assert (root / "figures" / name).stat().st_size > 10_000
    t1 = pd.read_csv(root / "theorem1.csv")
    # 2 seeds x 2 rates x 2 stages x 10 groups, with the bound recomputed from its terms
    assert len(t1) == 2 * 2 * 2 * 10
    np.testing.assert_allclose(t1.bound, t1.grad_norm * t1.distance + 0.5 * t1.hessian_top * t1.distance ** 2)
    row = results.by_group[(results.by_group.seed == 1) & (results.by_group.sparsity == 0.9)
                           & (results.by_group.stage == "oneshot") & (results.by_group.split == "train")]
    mine = t1[(t1.seed == 1) & (t1.rate == 0.9) & (t1.stage == "oneshot")]
    np.testing.assert_allclose(mine.excess_loss.to_numpy(), row.excess_loss.to_numpy())
    corr = pd.read_csv(root / "correlations.csv")
    assert set(corr.interval) == {"seeds-t"} and (corr.n_seeds == 2).all()
    # a rerun does not recompute the diagnostics (same key), a changed [diagnostics] section does
    before = cell["diagnostics"]["timing"]
    run_study(tiny_study(root.parent, seeds=[0, 1], diagnostics={"max_samples": 48, "trace_samples": 3}))
    again = json.loads((root / "cells" / "s0_dense" / "result.json").read_text())
    assert again["diagnostics"]["timing"] == before
    run_study(tiny_study(root.parent, seeds=[0, 1], diagnostics={"max_samples": 32, "trace_samples": 0}))
    changed = json.loads((root / "cells" / "s0_dense" / "result.json").read_text())["diagnostics"]
    assert changed["settings"]["max_samples"] == 32 and "hessian_trace" not in changed


def _pruned_checkpoint(root, tmp_path, rate=0.8):
    dense = build_model("mlp", num_classes=10, input_shape=(1, 8, 8), width=0.5)
    load_model_state(dense, root / "cells" / "s0_dense" / "model.safetensors")
    pruned = copy.deepcopy(dense)
    global_magnitude_masks(pruned, rate).bind(pruned).apply()
    path = tmp_path / "pruned.safetensors"
    save_checkpoint(path, pruned.state_dict())
    return path, parameter_distance(pruned, dense)


def test_audit_command_on_a_users_pair(study, tmp_path):
    root, _ = study
    pruned, distance = _pruned_checkpoint(root, tmp_path)
    out = tmp_path / "audit"
    res = CliRunner().invoke(app, ["audit", "--dense", str(root / "cells" / "s0_dense" / "model.safetensors"),
                                   "--pruned", str(pruned), "--model-name", "mlp", "--data", "digits",
                                   "--split", "test", "--split", "train", "--out", str(out), *SETS])
    assert res.exit_code == 0, res.output
    assert "Theorem 1 bound" in res.output and "Spearman" in res.output
    report = json.loads((out / "audit.json").read_text())
    assert report["distance"] == pytest.approx(distance) and report["sparsity"] == pytest.approx(0.8, abs=1e-3)
    assert set(report["splits"]) == {"test", "train"}
    assert {"xi", "max_psi", "psi_pw", "accuracy_gap_pruned"} <= set(report["splits"]["test"]["measures"])
    groups = pd.read_csv(out / "audit_groups_test.csv")
    assert len(groups) == 10 and {"accuracy_drop", "excess_loss", "grad_norm", "hessian_top_eigenvalue", "gini",
                                  "margin", "bound_train"} <= set(groups.columns)
    assert "bound_holds" not in groups.columns  # the bound is of the train loss: nothing to hold beside test's R(a)
    train = pd.read_csv(out / "audit_groups_train.csv")
    assert {"bound", "bound_holds"} <= set(train.columns)
    assert len(report["theorem1"]["table"]) == 10


def test_diagnose_command_ranks_groups_before_pruning(study, tmp_path):
    root, _ = study
    out = tmp_path / "diag"
    res = CliRunner().invoke(app, ["diagnose", "--model", str(root / "cells" / "s0_dense" / "model.safetensors"),
                                   "--model-name", "mlp", "--rate", "0.8", "--rate", "0.95", "--out", str(out), *SETS])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "diagnose.csv")
    assert sorted(table.rate.unique()) == [0.8, 0.95]
    _, distance = _pruned_checkpoint(root, tmp_path, rate=0.8)
    assert table[table.rate == 0.8].distance.iloc[0] == pytest.approx(distance)
    for _, sub in table.groupby("rate"):
        assert sub.bound.is_monotonic_decreasing and sub["rank"].iloc[0] == 1


def test_bad_inputs_give_clear_errors(study, tmp_path):
    root, _ = study
    runner = CliRunner()
    res = runner.invoke(app, ["diagnose", "--model", str(tmp_path / "missing.safetensors")])
    assert res.exit_code == 2 and "missing.safetensors: checkpoint not found" in res.output.replace("\n", "")
    res = runner.invoke(app, ["diagnose", "--model", str(root / "cells" / "s0_dense" / "model.safetensors"),
                              "--model-name", "cnn"])
    assert res.exit_code == 2 and "does not fit" in res.output.replace("\n", " ")
    res = runner.invoke(app, ["diagnose", "--model", "x", "--set", "diagnostics.eigen_method=qr"])
    assert res.exit_code == 2 and "eigen_method" in res.output


@pytest.mark.parametrize("command", ["audit", "diagnose"])
def test_help_names_the_study_file_sections(command):
    """Square brackets in help text are rich markup: '[data]' once vanished and left 'Study file for , , .'"""
    out = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
    assert "data, model, eval, prune and diagnostics sections" in out and ", ," not in out


@pytest.mark.parametrize("form", ["torch", "ours unapplied"])
def test_audit_reads_pruned_checkpoints_of_every_documented_form(study, tmp_path, form):
    """A model pruned with torch.nn.utils.prune (weight_orig/weight_mask keys) and our save_pruned file whose
    masks were never applied to the weights are audited at their masks' sparsity, as load_pruned reads them."""
    from torch.nn.utils import prune as tprune

    from prunefair.prune import make_masks, save_pruned

    root, _ = study
    dense_path = root / "cells" / "s0_dense" / "model.safetensors"
    dense = build_model("mlp", num_classes=10, input_shape=(1, 8, 8), width=0.5)
    load_model_state(dense, dense_path)
    pruned = copy.deepcopy(dense)
    path = tmp_path / "pruned.safetensors"
    if form == "torch":
        layers = [(m, "weight") for m in pruned.modules() if isinstance(m, torch.nn.Linear)]
        tprune.global_unstructured(layers, pruning_method=tprune.L1Unstructured, amount=0.9)
        tprune.l1_unstructured(layers[0][0], "bias", amount=0.5)  # a bias mask: applied, never counted
        save_checkpoint(path, pruned.state_dict())
        distance = parameter_distance(pruned, dense)  # the model still in torch's form
    else:
        masks = make_masks(pruned, 0.9)
        save_pruned(path, pruned, masks)  # weights as they were: only the masks say what is pruned
        applied = copy.deepcopy(dense)
        masks.bind(applied).apply()
        distance = parameter_distance(applied, dense)
    out = tmp_path / "audit"
    res = CliRunner().invoke(app, ["audit", "--dense", str(dense_path), "--pruned", str(path), "--model-name", "mlp",
                                   "--data", "digits", "--split", "test", "--out", str(out), *SETS])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "audit.json").read_text())
    assert report["sparsity"] == pytest.approx(0.9, abs=1e-3) and distance > 0
    assert report["distance"] == pytest.approx(distance)
    assert "NaN" not in (out / "audit.json").read_text()  # strict JSON


def test_recalibration_needs_batches_of_two():
    from prunefair.config import ConfigError, validate_config
    from prunefair.data import load_dataset
    from prunefair.prune import recalibrate_batch_norm

    model = build_model("mlp", num_classes=10, input_shape=(1, 8, 8), width=0.5, batch_norm=True)
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    with pytest.raises(ValueError, match="at least 2 samples"):
        recalibrate_batch_norm(model, load_dataset("digits").train, batch_size=1)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())  # nothing reset
    with pytest.raises(ConfigError, match="eval.batch_size >= 2"):
        validate_config({"prune": {"bn_recalibrate": True}, "eval": {"batch_size": 1}})


def test_audit_json_is_strict_json_when_outcomes_are_constant(study, tmp_path):
    root, _ = study
    dense_path = str(root / "cells" / "s0_dense" / "model.safetensors")
    out = tmp_path / "same"
    res = CliRunner().invoke(app, ["audit", "--dense", dense_path, "--pruned", dense_path, "--model-name", "mlp",
                                   "--data", "digits", "--split", "test", "--out", str(out), *SETS])
    assert res.exit_code == 0, res.output

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    report = json.loads((out / "audit.json").read_text(), parse_constant=refuse)  # rho undefined: null, not NaN
    assert any(c["rho"] is None for c in report["correlations"])


def test_a_model_too_deep_for_the_images_and_bad_widths_are_clear_errors(tmp_path):
    vgg = build_model("vgg19", num_classes=10, input_shape=(1, 8, 8), width=0.125)
    path = tmp_path / "vgg.safetensors"
    save_checkpoint(path, vgg.state_dict())
    res = CliRunner().invoke(app, ["diagnose", "--model", str(path), "--model-name", "vgg19", "--data", "digits",
                                   "--set", "model.width=0.125"])
    assert res.exit_code == 2 and "vgg19 on digits" in res.output and "Traceback" not in res.output
    for width in (0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="must be a finite number > 0"):
            build_model("cnn", num_classes=3, input_shape=(3, 8, 8), width=width)


def test_audit_reads_plain_pytorch_checkpoints_and_refuses_whole_modules(study, tmp_path):
    """torch.save(model.state_dict()) files (.pt/.pth, possibly wrapped) are read like safetensors; a whole
    pickled model is refused with the advice to save its state dict."""
    root, _ = study
    dense = build_model("mlp", num_classes=10, input_shape=(1, 8, 8), width=0.5)
    load_model_state(dense, root / "cells" / "s0_dense" / "model.safetensors")
    pruned = copy.deepcopy(dense)
    global_magnitude_masks(pruned, 0.8).bind(pruned).apply()
    torch.save(dense.state_dict(), tmp_path / "dense.pt")
    torch.save({"model_state_dict": pruned.state_dict(), "epoch": 9}, tmp_path / "pruned.pth")
    out = tmp_path / "audit"
    res = CliRunner().invoke(app, ["audit", "--dense", str(tmp_path / "dense.pt"), "--pruned",
                                   str(tmp_path / "pruned.pth"), "--model-name", "mlp", "--split", "test",
                                   "--out", str(out), *SETS])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "audit.json").read_text())["sparsity"] == pytest.approx(0.8, abs=1e-3)
    torch.save(dense, tmp_path / "whole.pt")
    res = CliRunner().invoke(app, ["diagnose", "--model", str(tmp_path / "whole.pt"), "--model-name", "mlp", *SETS])
    text = res.output.replace("\n", "")
    assert res.exit_code == 2 and "whole.pt: holds a prunefair.models.mlp.MLP" in text and "state_dict()" in text
