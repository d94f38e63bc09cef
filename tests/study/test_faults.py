"""Faults and bad input: full disk, missing data folder, unreadable or foreign checkpoints, NaN loss."""

import errno
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from prunefair.cli import app
from prunefair.models import build_model
from prunefair.study import Store
from prunefair.study import store as store_mod
from prunefair.study.store import load_checkpoint, load_model_state, save_checkpoint
from tests.conftest import tiny_study
from tests.study.helpers import run_cells


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file's bytes, but the lock's (each run writes its own pid there)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture()
def finished(tmp_path):
    cfg = tiny_study(tmp_path)
    run_cells(cfg)
    return cfg, Path(cfg["output_dir"])


def test_full_disk_names_the_path_and_keeps_what_is_stored(finished, monkeypatch):
    cfg, out = finished
    before = _snapshot(out / "cells")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_mod.os, "fsync", no_space)
    target = out / "cells" / "s0_p0.5_nft" / "result.json"
    with pytest.raises(OSError, match="disk full") as info:
        Store(out).write_result("s0_p0.5_nft", {"status": "done", "key": "new"})
    assert str(target) in str(info.value) and info.value.errno == errno.ENOSPC
    # a changed field reruns the pruning cells; the disk is full: a clear error, old results intact
    cfg["finetune"]["epochs"] = 2
    with pytest.raises(OSError) as info:
        run_cells(cfg)
    assert str(out) in str(info.value) and "disk full" in str(info.value)
    assert _snapshot(out / "cells") == before  # no temporary files left, nothing overwritten
    # through the CLI: exit code 1 and the path in the message
    res = CliRunner().invoke(app, ["study", "--preset", "digits", "--out", str(out.parent / "cli"), "--quiet",
                                   "--seeds", "0", "--rates", "0.5", "--set", "train.epochs=1"])
    assert res.exit_code == 1 and str(out.parent / "cli") in res.output and "disk full" in res.output


def test_missing_data_folder_names_the_path(finished, tmp_path):
    cfg, out = finished
    before = _snapshot(out)
    missing = tmp_path / "no-such-folder"
    bad = {**cfg, "data": {"dataset": "cifar10", "root": str(missing)}, "model": {"name": "mlp"}}
    with pytest.raises(FileNotFoundError, match=str(missing)):
        run_cells(bad)
    assert _snapshot(out) == before
    res = CliRunner().invoke(app, ["study", "--out", str(out), "--quiet", "--set", "data.dataset=cifar10",
                                   "--set", f'data.root="{missing}"'])
    assert res.exit_code == 1 and str(missing) in res.output.replace("\n", "")
    assert _snapshot(out) == before


def test_unreadable_checkpoint_names_the_path_and_damages_nothing(finished):
    cfg, out = finished
    ckpt = out / "cells" / "s0_dense" / "model.safetensors"
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(ckpt.with_name("nope.safetensors"))
    ckpt.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match=f"{ckpt}: unreadable checkpoint"):
        load_checkpoint(ckpt)
    before = _snapshot(out / "cells")
    cfg["prune"]["rates"] = [0.5, 0.7, 0.9]  # a new cell needs the dense model
    r = run_cells(cfg)
    assert [c["name"] for c in r.failed] == ["s0_p0.7_nft"]
    err = r.failed[0]["error"]
    assert str(ckpt) in err and "unreadable checkpoint" in err and "delete" in err
    after = _snapshot(out / "cells")
    assert {k: v for k, v in after.items() if k in before} == before  # the dense result and old cells untouched
    # deleting the bad checkpoint retrains the dense model (same numbers) and the cell runs
    ckpt.unlink()
    r = run_cells(cfg)
    assert not r.failed and len(r.cells) == 4


def test_checkpoint_of_another_architecture(finished, tmp_path):
    cfg, out = finished
    ckpt = out / "cells" / "s0_dense" / "model.safetensors"
    wide = build_model("mlp", num_classes=10, input_shape=(1, 8, 8), width=1.0)
    save_checkpoint(ckpt, wide.state_dict())
    narrow = build_model("mlp", num_classes=10, input_shape=(1, 8, 8), width=0.5)
    with pytest.raises(ValueError, match=f"{ckpt}: checkpoint does not fit this architecture"):
        load_model_state(narrow, ckpt)
    cfg["prune"]["rates"] = [0.5, 0.8, 0.9]
    r = run_cells(cfg)
    assert [c["name"] for c in r.failed] == ["s0_p0.8_nft"]
    assert "does not fit this architecture" in r.failed[0]["error"] and str(ckpt) in r.failed[0]["error"]
    assert json.loads((out / "cells" / "s0_dense" / "result.json").read_text())["status"] == "done"


def test_checkpoints_hold_no_pickles(finished):
    _, out = finished
    ckpt = out / "cells" / "s0_dense" / "model.safetensors"
    header_len = int.from_bytes(ckpt.read_bytes()[:8], "little")
    header = json.loads(ckpt.read_bytes()[8:8 + header_len])  # the safetensors layout: a JSON header, raw tensors
    assert all(v["dtype"] in ("F32", "I64", "F64") for k, v in header.items() if k != "__metadata__")
    assert b"\x80\x04" not in ckpt.read_bytes()[:2]  # not a pickle
    assert all(isinstance(t, torch.Tensor) for t in load_checkpoint(ckpt).values())


@pytest.mark.slow  # through the CLI: also writes the tables, figures and report
def test_nan_loss_fails_its_cell_and_the_study_exit_code(tmp_path):
    out = tmp_path / "nan"
    res = CliRunner().invoke(app, ["study", "--preset", "digits", "--out", str(out), "--quiet", "--seeds", "0",
                                   "--rates", "0.5,0.9", "--set", "model.width=0.5", "--set", "train.epochs=2",
                                   "--set", "finetune.epochs=1", "--set", "finetune.lr=1e6"])
    assert res.exit_code == 1
    assert "failed cell s0_p0.5_nft" in res.output and "non-finite" in res.output
    status = {p.parent.name: json.loads(p.read_text())["status"] for p in (out / "cells").glob("*/result.json")}
    assert status == {"s0_dense": "done", "s0_p0.5_nft": "failed", "s0_p0.9_nft": "failed"}
    st = CliRunner().invoke(app, ["status", str(out)])
    assert st.exit_code == 1 and "1 done" in st.output and "2 failed" in st.output
    assert (out / "table.csv").is_file()  # the report still has the dense rows
