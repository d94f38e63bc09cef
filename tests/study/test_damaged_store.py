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


@pytest.fixture(scope="module")
def _finished_once(tmp_path_factory):
    cfg = tiny_study(tmp_path_factory.mktemp("once"), diagnostics={"trace_samples": 0, "max_samples": 32})
    run_cells(cfg)
    return cfg


@pytest.fixture()
def finished_copy(_finished_once, tmp_path):
    """``finished``'s study run once per module, copied for each test (the same folder a fresh run writes)."""
    import shutil

    out = tmp_path / "study"
    shutil.copytree(_finished_once["output_dir"], out)
    return {**_finished_once, "output_dir": str(out)}, out


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


def test_group_size_names_a_corrupt_dense_cell_instead_of_missing_diagnostics(finished_copy):
    """It once said "no per-group gradient norms stored ... run the study with diagnostics first"."""
    from prunefair.report.group_size import group_size_table

    _, out = finished_copy
    _edit(out / "cells" / "s0_dense" / "result.json", _cut_count)
    with pytest.raises(ValueError, match=r"dense cell\(s\) failed or corrupt, their gradient norms are missing: "
                                         r"s0_dense: .*count has 3 values"):
        group_size_table([out])


def test_group_size_refuses_an_out_that_is_a_file(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    res = CliRunner().invoke(app, ["group-size", "--group", "1", "--factors", "1,2", "--out", str(blocker)])
    assert res.exit_code == 2 and "is a file, not a folder" in " ".join(res.output.split())


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


def _squash(text: str) -> str:
    return "".join(text.split())


def _edit(path: Path, change) -> None:
    r = json.loads(path.read_text())
    change(r)
    path.write_text(json.dumps(r))


def _cut_count(r):
    r["metrics"]["test"]["count"] = r["metrics"]["test"]["count"][:3]


def _rename_groups(r):  # in every stage's test split: consistent within the file, not with the data
    for part in ("metrics", "oneshot"):
        if part in r:
            r[part]["test"]["group_names"] = [f"g{n}" for n in r[part]["test"]["group_names"]]


# what a hand edit may do inside a result.json that has every key: cell, edit, what status says is wrong
INNER_DAMAGE = {
    "a split not an object": ("s0_p0.5_nft", lambda r: r["metrics"].update(test="x"), "metrics.test is str"),
    "oneshot split not an object": ("s0_p0.5_nft", lambda r: r["oneshot"].update(val=[1]), "oneshot.val is list"),
    "counts cut": ("s0_p0.5_nft", _cut_count, "metrics.test.count has 3 values for 10 groups"),
    "loss_sum a string": ("s0_p0.5_nft", lambda r: r["oneshot"]["test"].update(loss_sum="1.5"),
                          "oneshot.test.loss_sum is str, not a list"),
    "group_names not names": ("s0_p0.5_nft", lambda r: r["metrics"]["val"].update(group_names=list(range(10))),
                              "metrics.val.group_names is not a list of names"),
    "a count a string": ("s0_p0.5_nft", lambda r: r["metrics"]["test"]["correct"].__setitem__(0, "7"),
                         "metrics.test.correct holds '7'"),
    "rate a string": ("s0_p0.5_nft", lambda r: r.update(rate="half"), "rate = 'half' is not a pruning rate"),
    "seed a string": ("s0_p0.5_nft", lambda r: r.update(seed="zero"), "seed = 'zero' is not an integer"),
    "groups renamed": ("s0_p0.5_nft", _rename_groups, "metrics.test.group_names ['g0', 'g1',"),
    "one stage's groups renamed": ("s0_p0.5_nft", lambda r: r["metrics"]["val"].update(group_names=list("abcdefghij")),
                                   "oneshot.val and metrics.val cover different groups or samples"),
    "dense groups renamed": ("s0_dense", _rename_groups, "metrics.test.group_names"),
    "dense seed a float": ("s0_dense", lambda r: r.update(seed=0.5), "seed = 0.5 is not an integer"),
}


@pytest.mark.parametrize("damage", INNER_DAMAGE)
def test_a_result_malformed_inside_is_corrupt_named_and_recomputed(finished_copy, damage, monkeypatch):
    """A result.json with every key but a malformed inside passed as done: status said "done", report and every
    later study stopped with a traceback or an error naming no file (or left the cell out of the tables)."""
    import prunefair.cli.folder
    from rich.console import Console

    monkeypatch.setattr(prunefair.cli.folder, "console", Console(width=1000))  # status's table rows on one line each
    cfg, out = finished_copy
    name, change, problem = INNER_DAMAGE[damage]
    target = out / "cells" / name / "result.json"
    good = json.loads(target.read_text())
    _edit(target, change)
    res = CliRunner().invoke(app, ["status", str(out)])
    assert res.exit_code == 1 and "1 corrupt" in " ".join(res.output.split()), res.output
    assert f"{target}: {problem}" in res.output
    results = StudyResults.from_store(out)  # the rest builds; the cell is listed, by file, with what is wrong
    assert [(r["name"], r["status"]) for r in results.failed] == [(name, "corrupt")]
    assert str(target) in results.failed[0]["error"] and problem in results.failed[0]["error"]
    if name != "s0_dense":  # (without its dense result a seed has no rows)
        assert set(results.measures.sparsity) == {0.0, 0.9}
    again = run_cells(cfg)  # the next run recomputes the cell (same seed, same numbers)
    assert not again.failed
    fixed = json.loads(target.read_text())
    assert fixed["metrics"] == good["metrics"] and fixed["seed"] == good["seed"]


def test_a_result_of_an_older_version_that_cannot_be_paired_is_listed_not_fatal(finished):
    """Results written before data fingerprints cannot be checked against data.json: a pruning cell whose groups
    differ from its dense cell's is listed as corrupt (both files named) and the other cells still make the tables."""
    cfg, out = finished
    target = out / "cells" / "s0_p0.5_nft" / "result.json"
    _edit(target, lambda r: (_rename_groups(r), r.pop("data")))
    results = StudyResults.from_store(out)
    assert [(r["name"], r["status"]) for r in results.failed] == [("s0_p0.5_nft", "corrupt")]
    error = results.failed[0]["error"]
    assert error.startswith(str(target)) and "different groups" in error and "s0_dense" in error
    assert "a rerun keeps it: delete the file" in error  # (the rerun cannot tell: no data fingerprint to check)
    assert set(results.measures.sparsity) == {0.0, 0.9}


def test_results_without_the_optional_keys_of_later_versions_stay_readable(finished):
    """What results of earlier versions lack (data, parameters, layer_sparsity, diagnostics, mitigation, ...) is
    optional: such a result is done, not corrupt."""
    cfg, out = finished
    optional = ("data", "parameters", "layer_sparsity", "diagnostics", "mitigation", "prune_steps",
                "bn_recalibration_samples", "dense", "distance", "distance_oneshot", "history", "timing")
    for name in ("s0_dense", "s0_p0.5_nft"):
        _edit(out / "cells" / name / "result.json", lambda r: [r.pop(k, None) for k in optional])
    res = CliRunner().invoke(app, ["status", str(out)])
    assert res.exit_code == 0 and "3 done" in " ".join(res.output.split()), res.output
    results = StudyResults.from_store(out)
    assert not results.failed and set(results.measures.sparsity) == {0.0, 0.5, 0.9}


def test_report_names_corrupt_cells_and_exits_1(finished):
    """`report` exited 0 and said nothing of a corrupt cell (listed only inside report.html)."""
    cfg, out = finished
    CliRunner().invoke(app, ["report", str(out), "-q"])
    target = out / "cells" / "s0_p0.5_nft" / "result.json"
    target.write_text('{"name": "s0_p0.5_nft", "trunc')
    res = CliRunner().invoke(app, ["report", str(out), "-q"])
    assert res.exit_code == 1, res.output
    assert _squash(f"corrupt cell s0_p0.5_nft: {target}: not valid JSON") in _squash(res.output)
    assert "Traceback" not in res.output and "report:" in res.output  # what it could build is written
    assert set(StudyResults.from_store(out).measures.sparsity) == {0.0, 0.9}
    dense = out / "cells" / "s0_dense" / "result.json"
    dense.write_text("[]")  # no seed has a dense result: the tables come out empty, and it says so
    res = CliRunner().invoke(app, ["report", str(out), "-q"])
    assert res.exit_code == 1 and "corrupt cell s0_dense" in res.output, res.output
    assert _squash("the tables leave out 2 failed or corrupt cell(s), and are empty") in _squash(res.output)


def test_a_dense_result_whose_diagnostics_is_not_a_table_is_reported_not_a_traceback(finished_copy):
    """``"diagnostics": "oops"`` in a dense result.json (edited by hand) made ``prunefair report`` end in
    AttributeError ('str' object has no attribute 'get'); it is diagnostics not current, as a missing table is."""
    cfg, out = finished_copy
    target = out / "cells" / "s0_dense" / "result.json"
    target.write_text(json.dumps({**json.loads(target.read_text()), "diagnostics": "oops"}))
    res = CliRunner().invoke(app, ["report", str(out)])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    assert "Traceback" not in res.output and "has no attribute" not in res.output
    assert (out / "report.html").is_file()
