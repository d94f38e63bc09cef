"""A study folder damaged or changed by hand: result.json edited, a dense checkpoint broken while [diagnostics]
changed, studies of different experiments mixed; and the CLI's handling of such folders."""

import json
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from prunefair.cli import app
from prunefair.config import validate_config
from prunefair.study import Store, StudyResults
from prunefair.study.cells import diagnostics_key, plan_cells
from tests.conftest import tiny_study
from tests.study.helpers import run_cells

DAMAGE = {
    "not JSON": lambda p: p.write_text(p.read_text()[:100]),
    "metrics removed": lambda p: p.write_text(json.dumps({k: v for k, v in json.loads(p.read_text()).items()
                                                          if k != "metrics"})),
    "a list": lambda p: p.write_text("[]"),
}


@pytest.fixture()
def finished(tmp_path):
    cfg = tiny_study(tmp_path, diagnostics={"trace_samples": 0, "max_samples": 32})
    run_cells(cfg)
    return cfg, Path(cfg["output_dir"])


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_result_is_named_reported_and_recomputed(finished, damage):
    cfg, out = finished
    target = out / "cells" / "s0_p0.5_nft" / "result.json"
    good = json.loads(target.read_text())
    DAMAGE[damage](target)
    res = CliRunner().invoke(app, ["status", str(out)])
    assert res.exit_code == 1 and "corrupt" in res.output and "1 corrupt" in res.output, res.output
    results = StudyResults.from_store(out)  # the report still builds; the cell is listed with the failed ones
    assert [(r["name"], r["status"]) for r in results.failed] == [("s0_p0.5_nft", "corrupt")]
    assert str(target) in results.failed[0]["error"]
    assert set(results.measures.sparsity) == {0.0, 0.9}
    again = run_cells(cfg)  # the next run recomputes the cell (same seed, same numbers) and replaces the file
    assert not again.failed
    fixed = json.loads(target.read_text())
    assert fixed["metrics"] == good["metrics"] and fixed["key"] == good["key"]


def test_a_broken_dense_checkpoint_with_changed_diagnostics_fails_loudly(finished, tmp_path):
    cfg, out = finished
    ckpt = out / "cells" / "s0_dense" / "model.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    cfg["diagnostics"]["max_samples"] = 16
    config = validate_config(cfg)
    study_file = tmp_path / "study.toml"
    study_file.write_text(config.to_toml())
    res = CliRunner().invoke(app, ["study", "--config", str(study_file), "--quiet"])
    assert res.exit_code == 1, res.output
    assert "diagnostics of s0_dense failed" in res.output and "model.safetensors" in res.output
    stored = json.loads((out / "cells" / "s0_dense" / "result.json").read_text())["diagnostics"]
    dense = plan_cells(config)[0][0]
    assert stored["key"] == diagnostics_key(config, dense) and "could not be reloaded" in stored["error"]
    assert "grad_norm" not in stored  # the old numbers (max_samples 32) are not left to pass for the new ones


def test_results_leave_out_diagnostics_of_another_diagnostics_section(finished):
    cfg, out = finished
    assert "diagnostics" in StudyResults.from_store(out).cells[0]
    cfg["diagnostics"]["max_samples"] = 16  # not rerun: the stored diagnostics are of max_samples 32
    results = StudyResults.from_store(out, validate_config(cfg))
    assert all("diagnostics" not in r for r in results.cells if r["kind"] == "dense")


@pytest.mark.slow
def test_workers_recompute_diagnostics_when_the_section_changes(tmp_path):
    cfg = tiny_study(tmp_path, prune={"rates": [0.5]}, run={"workers": 2},
                     diagnostics={"trace_samples": 0, "max_samples": 32})
    run_cells(cfg)
    cfg["diagnostics"]["max_samples"] = 16
    config = validate_config(cfg)
    run_cells(cfg)
    stored = Store(config.output_dir).read_result("s0_dense")["diagnostics"]
    assert stored["key"] == diagnostics_key(config, plan_cells(config)[0][0])
    assert stored["settings"]["max_samples"] == 16


def test_registered_arrays_are_refused_for_worker_processes(tmp_path):
    import numpy as np

    from prunefair.data import register_arrays
    from prunefair.study import execute_study

    rng = np.random.default_rng(0)
    register_arrays("mine_for_workers", rng.normal(size=(60, 4)).astype("float32"), rng.integers(0, 2, 60))
    cfg = tiny_study(tmp_path, data={"dataset": "mine_for_workers"}, run={"workers": 2})
    with pytest.raises(ValueError, match="'mine_for_workers'.*register_arrays.*workers = 1"):
        execute_study(validate_config(cfg))


def test_group_size_refuses_studies_of_different_experiments(tmp_path):
    from prunefair.report.group_size import group_size_table

    a = tiny_study(tmp_path / "a", prune={"rates": [0.5]}, diagnostics={"trace_samples": 0, "max_samples": 16})
    b = tiny_study(tmp_path / "b", prune={"rates": [0.5]}, diagnostics={"trace_samples": 0, "max_samples": 16},
                   model={"name": "mlp", "width": 0.25})
    run_cells(a)
    run_cells(b)
    with pytest.raises(ValueError, match="model.width = 0.25, but .* has 0.5"):
        group_size_table([a["output_dir"], b["output_dir"]])


def test_status_names_a_broken_config_and_messages_keep_brackets(finished, tmp_path):
    cfg, out = finished
    text = (out / "config.toml").read_text().replace("epochs = 3", "epoch = 3", 1)
    (out / "config.toml").write_text(text)
    res = CliRunner().invoke(app, ["status", str(out)])
    assert res.exit_code == 2 and "unknown key 'train.epoch'" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["report", str(tmp_path / "[old]")])
    assert res.exit_code == 2 and "[old]" in res.output


def test_ctrl_c_says_how_to_resume(tmp_path, monkeypatch):
    import prunefair.api

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prunefair.api, "run_study", interrupted)
    res = CliRunner().invoke(app, ["study", "--quiet", "--out", str(tmp_path / "s")])
    assert res.exit_code == 130 and "rerun the same command to resume" in res.output


def test_written_files_get_the_usual_permissions_and_figures_are_atomic(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from prunefair.io import atomic_write_text
    from prunefair.report.plotting import save_figure

    atomic_write_text(tmp_path / "a.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600
    fig, _ = plt.subplots()
    path = save_figure(fig, tmp_path / "f.png")
    before = path.read_bytes()
    assert before.startswith(b"\x89PNG") and path.stat().st_mode & 0o777 == 0o666 & ~mask

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    with pytest.raises(OSError, match="f.png"):
        save_figure(fig, path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "f.png"]


def test_a_checkpoint_of_another_config_is_not_reloaded(finished, tmp_path):
    """A run of another config killed between writing its dense checkpoint and its result leaves that model next
    to this config's result: the cell's model is retrained, so its pruning cells prune the right model."""
    from prunefair.study.store import checkpoint_metadata, save_checkpoint

    cfg, out = finished
    ckpt = out / "cells" / "s0_dense" / "model.safetensors"
    good = ckpt.read_bytes()
    key = checkpoint_metadata(ckpt)["key"]
    from safetensors.torch import load

    state = {k: v + 1.0 for k, v in load(good).items()}  # another model, written "by another config"
    save_checkpoint(ckpt, state, metadata={"cell": "s0_dense", "key": "another-config"})
    store = Store(out)
    assert not store.has_model("s0_dense", key) and store.is_done("s0_dense", key)
    cfg["prune"]["rates"] = [0.5, 0.7, 0.9]
    again = run_cells(cfg)
    assert checkpoint_metadata(ckpt)["key"] == key  # retrained, same seed: the same tensors (the header's
    again_state, good_state = load(ckpt.read_bytes()), load(good)  # metadata order is not fixed by safetensors)
    assert all(torch.equal(again_state[k], good_state[k]) for k in good_state)
    fresh = run_cells({**cfg, "output_dir": str(tmp_path / "fresh")})
    import pandas as pd

    pd.testing.assert_frame_equal(again.by_group, fresh.by_group)


def test_status_shows_a_live_rerun_over_an_old_failure(finished):
    cfg, out = finished
    store = Store(out)
    key = plan_cells(validate_config(cfg))[1][0].key
    store.write_result("s0_p0.5_nft", {"name": "s0_p0.5_nft", "key": key, "status": "failed", "error": "old"})
    store.mark_running("s0_p0.5_nft", key)  # this process: alive
    assert store.cell_state("s0_p0.5_nft", key)[0] == "running"
    marker = store.running_path("s0_p0.5_nft")
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "pid": 2 ** 22 + 7}))  # no such process
    assert store.cell_state("s0_p0.5_nft", key)[0] == "stale"  # the rerun was killed after the failure


@pytest.mark.parametrize("cut", [1000, 60, 4])
def test_status_sees_a_truncated_dense_checkpoint(finished, cut):
    """A truncated checkpoint used to show as done until a new cell needed it."""
    from prunefair.study.store import checkpoint_problem

    cfg, out = finished
    ckpt = out / "cells" / "s0_dense" / "model.safetensors"
    assert checkpoint_problem(ckpt) is None
    res = CliRunner().invoke(app, ["status", str(out)])
    assert res.exit_code == 0 and "damaged" not in res.output
    with open(ckpt, "r+b") as f:
        f.truncate(cut)
    assert checkpoint_problem(ckpt).startswith(("truncated", "damaged"))
    res = CliRunner().invoke(app, ["status", str(out)])
    text = " ".join(res.output.split())
    assert res.exit_code == 1 and "1 damaged" in text and "the next run then retrains it" in text
