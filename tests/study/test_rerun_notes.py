"""What a rerun says about a damaged dense checkpoint: that it is there before anything runs (the run exited 0 and
said nothing while `prunefair status` listed it as damaged), and, for the cells that need it, the error (the log
said the model was "missing" while the file was there, truncated)."""

import shutil
from pathlib import Path

import pytest

from prunefair.config import validate_config
from prunefair.progress import Progress
from prunefair.study import execute_study
from prunefair.study.runner import resume_notes
from tests.conftest import tiny_study
from tests.study.helpers import run_cells


class Capture(Progress):
    def __init__(self):
        super().__init__(quiet=True)
        self.lines: list[str] = []

    def log(self, message: str) -> None:
        self.lines.append(message)


@pytest.fixture(scope="module")
def _done_once(tmp_path_factory):
    cfg = tiny_study(tmp_path_factory.mktemp("once"), prune={"rates": [0.5]}, diagnostics={"enabled": False})
    run_cells(cfg)
    return cfg


@pytest.fixture()
def truncated(_done_once, tmp_path):
    """The finished study, copied, with its dense checkpoint cut in half."""
    out = tmp_path / "study"
    shutil.copytree(_done_once["output_dir"], out)
    ckpt = out / "cells" / "s0_dense" / "model.safetensors"
    blob = ckpt.read_bytes()
    ckpt.write_bytes(blob[: len(blob) // 2])
    return {**_done_once, "output_dir": str(out)}, ckpt


def test_a_rerun_names_a_damaged_dense_checkpoint(truncated):
    cfg, ckpt = truncated
    notes = [n for n in resume_notes(validate_config(cfg), summary=False) if str(ckpt) in n]
    assert len(notes) == 1 and "truncated" in notes[0] and "s0_dense" in notes[0], notes


def test_a_cell_failing_on_an_unreadable_dense_checkpoint_logs_the_error(truncated):
    cfg, ckpt = truncated
    cfg = {**cfg, "prune": {**cfg["prune"], "rates": [0.5, 0.9]}}  # a new cell needs the dense model
    progress = Capture()
    execute_study(validate_config(cfg), progress=progress)
    failed = [line for line in progress.lines if "s0_p0.9_nft failed" in line]
    assert len(failed) == 1 and "unreadable checkpoint" in failed[0] and "missing" not in failed[0], progress.lines
    assert "s0_p0.5_nft" not in " ".join(progress.lines)  # the done cell is kept, not rerun or failed
    assert Path(ckpt).stat().st_size > 0  # the file is left for the user to delete
