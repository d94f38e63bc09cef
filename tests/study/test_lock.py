"""One study process per folder: the lock, its release on kill -9, and the sweep of killed writes' temporaries."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import prunefair
from prunefair.cli import app
from prunefair.io import atomic_write_text
from prunefair.study.lock import StudyLocked, remove_stale_temporaries, study_lock
from tests.conftest import tiny_study

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="flock semantics checked on Linux")


def _holder(folder: Path) -> subprocess.Popen:
    """A process that takes the folder's lock, says so, and waits."""
    code = ("import sys, time\nfrom prunefair.study.lock import study_lock\n"
            f"with study_lock({str(folder)!r}):\n    print('held', flush=True)\n    time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_with_the_holder_named_and_a_kill_releases_it(tmp_path):
    folder = tmp_path / "study"
    proc = _holder(folder)
    try:
        with pytest.raises(StudyLocked) as err:
            with study_lock(folder):
                pass
        assert f"pid {proc.pid}" in str(err.value) and str(folder.resolve()) in str(err.value)
    finally:
        proc.send_signal(signal.SIGKILL)  # the kernel drops the flock with the process: no stale lock
        proc.wait(timeout=30)
    with study_lock(folder):
        pass


def test_the_lock_is_reentrant_in_one_process(tmp_path):
    with study_lock(tmp_path / "s"):
        with study_lock(tmp_path / "s"):
            pass
        with study_lock(tmp_path / "s"):  # still held after the inner block
            pass


def test_a_locked_folder_gets_no_new_cell_from_run_study_or_the_cli(tmp_path):
    cfg = tiny_study(tmp_path)
    folder = Path(cfg["output_dir"])
    proc = _holder(folder)
    try:
        with pytest.raises(StudyLocked):
            prunefair.run_study(cfg)
        assert not (folder / "cells").exists()
        res = CliRunner().invoke(app, ["study", "--preset", "digits", "--out", str(folder), "--seeds", "0",
                                       "--rates", "0.5", "--set", "train.epochs=1", "--quiet"])
        assert res.exit_code == 1
        assert "another prunefair study is running into this folder" in res.output
        assert "rerun the same command" not in res.output
        assert not (folder / "cells").exists()
    finally:
        proc.kill()
        proc.wait(timeout=30)
    prunefair.run_study(cfg)  # free again: the study runs
    assert (folder / "cells" / "s0_dense" / "result.json").is_file()


def test_stale_temporaries_are_removed_and_fresh_top_level_ones_kept(tmp_path):
    cell = tmp_path / "cells" / "s0_dense"
    cell.mkdir(parents=True)
    (tmp_path / "figures").mkdir()
    in_cell = cell / ".result.json.ab12cd.tmp"
    old_top = tmp_path / ".table.csv.x1y2z3.tmp"
    fresh_top = tmp_path / ".report.html.q9w8e7.tmp"
    fresh_fig = tmp_path / "figures" / ".fig1_group_accuracy.png.k2j3h4.tmp"
    for p in (in_cell, old_top, fresh_top, fresh_fig):
        p.write_bytes(b"partial")
    hour_ago = time.time() - 3600
    os.utime(old_top, (hour_ago, hour_ago))
    atomic_write_text(cell / "result.json", "{}")  # a finished write: not a temporary
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([in_cell, old_top])
    assert fresh_top.exists() and fresh_fig.exists() and (cell / "result.json").exists()


def test_taking_the_lock_sweeps_a_killed_writes_temporary(tmp_path):
    cell = tmp_path / "cells" / "s0_p0.5_nft"
    cell.mkdir(parents=True)
    left = cell / ".model.safetensors.zz11yy.tmp"
    left.write_bytes(b"half a checkpoint")
    with study_lock(tmp_path):
        assert not left.exists()


def test_another_thread_is_refused_and_the_holder_keeps_the_lock(tmp_path):
    import threading

    folder = tmp_path / "study"
    outcome = {}

    def second():
        try:
            with study_lock(folder):
                outcome["entered"] = True
        except StudyLocked as exc:
            outcome["refused"] = str(exc)

    with study_lock(folder):
        t = threading.Thread(target=second)
        t.start()
        t.join()
    assert "entered" not in outcome and f"pid {os.getpid()}" in outcome["refused"]
    with study_lock(folder):  # released once the holder left
        pass


def test_without_flock_no_temporary_is_swept(tmp_path, monkeypatch):
    """Unlocked (flock refused, as on some network filesystems), another run may be writing its temporaries."""
    from prunefair.study import lock

    def refused(fd, op):
        raise OSError(37, "No locks available")

    monkeypatch.setattr(lock.fcntl, "flock", refused)
    cell = tmp_path / "cells" / "s0_dense"
    cell.mkdir(parents=True)
    writing = cell / ".model.safetensors.ab12cd.tmp"
    writing.write_bytes(b"being written")
    with study_lock(tmp_path):
        assert writing.exists()


def test_folders_the_lock_created_are_removed_when_nothing_was_written(tmp_path):
    with pytest.raises(RuntimeError):
        with study_lock(tmp_path / "a" / "b" / "c"):
            raise RuntimeError("the data folder is missing")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()
    with study_lock(tmp_path / "kept" / "study"):
        (tmp_path / "kept" / "study" / "config.toml").write_text("")
    assert (tmp_path / "kept" / "study" / "config.toml").is_file()
