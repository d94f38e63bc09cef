"""A dense cell retrained while its pruning cells are stored (its result.json damaged, its checkpoint deleted):
where training is not bit for bit repeatable (another thread count, a GPU), the new dense model differs from the
one the stored pruning cells were pruned from. Those were kept and mixed into the tables with the new model's
numbers; they are recomputed now, and `prunefair status` shows them as pending meanwhile."""

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

import prunefair.study.runner as runner_module
from prunefair.cli import app
from prunefair.study import Store
from tests.conftest import tiny_study
from tests.study.helpers import run_cells


def _perturbed_fit(monkeypatch):
    """Training that ends at other weights than before, as another thread count or a GPU would."""
    fit = runner_module.fit

    def fit_elsewhere(model, *args, **kwargs):
        history = fit(model, *args, **kwargs)
        with torch.no_grad():
            next(model.parameters()).add_(1e-3)
        return history

    monkeypatch.setattr(runner_module, "fit", fit_elsewhere)


def test_pruning_cells_of_a_retrained_dense_model_are_recomputed(tmp_path, monkeypatch):
    cfg = tiny_study(tmp_path, prune={"rates": [0.5]}, diagnostics={"enabled": False})
    run_cells(cfg)
    cells = Path(cfg["output_dir"]) / "cells"
    pruned_before = json.loads((cells / "s0_p0.5_nft" / "result.json").read_text())
    (cells / "s0_dense" / "result.json").write_text("{")  # damaged: the next run retrains the dense model

    _perturbed_fit(monkeypatch)
    run_cells(cfg)
    dense = json.loads((cells / "s0_dense" / "result.json").read_text())
    pruned = json.loads((cells / "s0_p0.5_nft" / "result.json").read_text())
    assert pruned["oneshot"] != pruned_before["oneshot"]  # recomputed (it was kept, pruned from the old model)
    assert dense["weights"] != pruned_before["dense_weights"]  # the retrained model is another one
    assert pruned["dense_weights"] == dense["weights"]  # and the pruning cell was pruned from it


def test_status_shows_a_cell_pruned_from_another_dense_model_as_pending(tmp_path):
    cfg = tiny_study(tmp_path, prune={"rates": [0.5]}, diagnostics={"enabled": False})
    run_cells(cfg)
    store = Store(cfg["output_dir"])
    dense = store.read_result("s0_dense")
    (store.result_path("s0_dense")).write_text(json.dumps({**dense, "weights": "0123456789abcdef"}))
    res = CliRunner().invoke(app, ["status", cfg["output_dir"]], env={"COLUMNS": "250"})
    row = next(line for line in res.output.splitlines() if "s0_p0.5_nft" in line)
    assert "pending" in row and "another s0_dense model" in row, res.output
    assert "1 done" in res.output and "1 pending" in res.output, res.output


def test_results_without_digests_are_kept(tmp_path):
    """A study written before the digests were recorded resumes as before: nothing is recomputed."""
    cfg = tiny_study(tmp_path, prune={"rates": [0.5]}, diagnostics={"enabled": False})
    run_cells(cfg)
    store = Store(cfg["output_dir"])
    for name, field in (("s0_dense", "weights"), ("s0_p0.5_nft", "dense_weights")):
        r = store.read_result(name)
        r.pop(field)
        store.result_path(name).write_text(json.dumps(r))
    before = store.result_path("s0_p0.5_nft").read_bytes()
    run_cells(cfg)
    assert store.result_path("s0_p0.5_nft").read_bytes() == before
