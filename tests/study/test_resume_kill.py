"""Resume after a real SIGKILL, running markers, `prunefair status`, one dense model per seed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prunefair.cli import app
from prunefair.config import validate_config
from prunefair.study import Store, plan_cells
from tests.conftest import tiny_study
from tests.study.helpers import run_cells

ROOT = Path(__file__).resolve().parents[2]
STUDY_ARGS = ["--preset", "digits", "--seeds", "0", "--rates", "0.3,0.5,0.7,0.9",
              "--set", "model.width=0.5", "--set", "train.epochs=3", "--set", "finetune.epochs=1", "--quiet"]


def _die_with_parent() -> None:
    """Linux: the study subprocess is killed if the test process dies (a timeout), never left orphaned."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _study(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "prunefair.cli", "study", "--out", str(out), *STUDY_ARGS],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_die_with_parent)


@pytest.mark.slow
def test_sigkill_mid_study_then_rerun_gives_the_same_table(tmp_path):
    whole = _study(tmp_path / "whole")
    assert whole.wait(timeout=900) == 0, whole.stderr.read()

    out = tmp_path / "killed"
    proc = _study(out)
    first = out / "cells" / "s0_p0.3_nft" / "result.json"
    deadline = time.time() + 240
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the study finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    done = sorted(p.parent.name for p in (out / "cells").glob("*/result.json"))
    assert "s0_p0.3_nft" in done and len(done) < 5  # killed part-way: some cells stored, not all
    for p in (out / "cells").glob("*/result.json"):  # nothing half-written
        assert json.loads(p.read_text())["status"] == "done"
    # the cell that was running when the process died shows as stale (its pid is gone), the rest pending
    st = CliRunner().invoke(app, ["status", str(out)])
    assert st.exit_code == 0, st.output
    assert f"{len(done)} done" in st.output and "0 failed" in st.output
    assert "1 stale" in st.output or "0 running" in st.output

    again = _study(out)
    assert again.wait(timeout=900) == 0, again.stderr.read()
    assert (out / "table.csv").read_text() == (tmp_path / "whole" / "table.csv").read_text()
    assert (out / "measures.csv").read_text() == (tmp_path / "whole" / "measures.csv").read_text()
    assert not list((out / "cells").glob("*/running.json"))


def test_running_marker_and_stale_detection(tmp_path):
    store = Store(tmp_path)
    store.mark_running("s0_dense", "k1")
    marker = json.loads((tmp_path / "cells" / "s0_dense" / "running.json").read_text())
    assert marker["pid"] == os.getpid() and marker["key"] == "k1" and marker["started"] <= time.time()
    assert store.cell_state("s0_dense", "k1")[0] == "running"
    assert store.cell_state("s0_dense", "other-key")[0] == "pending"  # a marker of another config
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.mark_running("s0_p0.5_nft", "k2")
    m = store.running_path("s0_p0.5_nft")
    m.write_text(json.dumps({**json.loads(m.read_text()), "pid": dead.pid}))
    state, detail = store.cell_state("s0_p0.5_nft", "k2")
    assert state == "stale" and str(dead.pid) in detail
    store.write_result("s0_dense", {"name": "s0_dense", "key": "k1", "status": "done", "kind": "dense", "seed": 0,
                                    "metrics": {}})
    assert not store.running_path("s0_dense").exists()
    assert store.cell_state("s0_dense", "k1")[0] == "done"


def test_status_counts_and_exit_code(tmp_path):
    cfg = tiny_study(tmp_path, prune={"rates": [0.5, 0.7, 0.9]})
    run_cells(cfg)
    out = Path(cfg["output_dir"])
    store = Store(out)
    dense, prune = plan_cells(validate_config(cfg))
    by_name = {c.name: c for c in prune}
    (out / "cells" / "s0_p0.9_nft" / "result.json").unlink()  # pending again
    store.mark_running("s0_p0.7_nft", by_name["s0_p0.7_nft"].key)
    (out / "cells" / "s0_p0.7_nft" / "result.json").unlink()
    res = CliRunner().invoke(app, ["status", str(out)])
    assert res.exit_code == 0, res.output
    assert "2 done, 1 running, 0 failed, 1 pending" in res.output
    store.write_result("s0_p0.9_nft", {"name": "s0_p0.9_nft", "key": by_name["s0_p0.9_nft"].key,
                                       "status": "failed", "error": "NonFiniteLossError: boom"})
    res = CliRunner().invoke(app, ["status", str(out)])
    assert res.exit_code == 1 and "1 failed" in res.output and "boom" in res.output


def test_dense_model_trained_once_per_seed_and_shared(tmp_path, monkeypatch):
    import prunefair.study.runner as runner_mod

    calls = []
    real_fit = runner_mod.fit

    def counting_fit(model, data, settings, **kw):
        calls.append(kw.get("description", ""))
        return real_fit(model, data, settings, **kw)

    monkeypatch.setattr(runner_mod, "fit", counting_fit)
    run_cells(tiny_study(tmp_path, seeds=[0, 1], prune={"rates": [0.5, 0.7, 0.9]}))
    assert [c for c in calls if "dense" in c] == ["seed 0: dense training", "seed 1: dense training"]
    cells = tmp_path / "study" / "cells"
    mtimes = {p.parent.name: p.stat().st_mtime_ns for p in cells.glob("*/result.json")}
    assert len(mtimes) == 2 + 2 * 3  # one dense cell per seed, shared by its 3 pruning cells
    calls.clear()
    run_cells(tiny_study(tmp_path, seeds=[0, 1], prune={"rates": [0.5, 0.6, 0.7, 0.9]}))
    assert not [c for c in calls if "dense" in c]  # the dense models are reloaded, not retrained
    now = {p.parent.name: p.stat().st_mtime_ns for p in cells.glob("*/result.json")}
    assert sorted(set(now) - set(mtimes)) == ["s0_p0.6_nft", "s1_p0.6_nft"]
    assert {k: now[k] for k in mtimes} == mtimes


def test_run_section_is_not_part_of_cell_keys(tmp_path):
    base = plan_cells(validate_config(tiny_study(tmp_path)))
    other = plan_cells(validate_config(tiny_study(tmp_path, run={"executor": "ray", "workers": 4,
                                                                 "gpus_per_cell": 0.25, "address": "auto"})))
    assert [c.key for c in base[0] + base[1]] == [c.key for c in other[0] + other[1]]
    from prunefair.config import ConfigError

    with pytest.raises(ConfigError, match=r"run.executor.*local.*ray"):
        validate_config(tiny_study(tmp_path, run={"executor": "slurm"}))
    with pytest.raises(ConfigError, match="run.gpus_per_cell"):
        validate_config(tiny_study(tmp_path, run={"gpus_per_cell": -0.5}))


@pytest.mark.slow
def test_ctrl_c_stops_a_workers_run_at_once(tmp_path):
    """SIGINT with --workers 2 stops at once: the queued cells are cancelled and the workers ended, not run first.
    (Sent to the main process alone: Ctrl-C also reaches the workers, but a worker catches its interrupt per cell
    and goes on, or ignores SIGINT when started in the background.)"""
    out = tmp_path / "int"
    args = [sys.executable, "-m", "prunefair.cli", "study", "--out", str(out), "--workers", "2", "--preset", "digits",
            "--seeds", "0", "--rates", "0.3,0.5,0.7,0.8,0.9,0.95", "--set", "model.width=0.5", "--set",
            "train.epochs=2", "--set", "finetune.epochs=150", "--quiet"]

    def own_group():
        _die_with_parent()
        os.setpgid(0, 0)
        # a test run started in the background (`nohup ... &`) ignores SIGINT, and so would the study it starts
        # (Python keeps an inherited SIG_IGN): the study then ran to the end and exited 0
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=own_group)
    dense = out / "cells" / "s0_dense" / "result.json"
    deadline = time.time() + 240
    while not dense.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # two pruning cells running, four queued
    assert proc.poll() is None, "the study finished before it could be interrupted"
    before = len(list((out / "cells").glob("s0_p*/result.json")))
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 130, proc.stderr.read()
    after = len(list((out / "cells").glob("s0_p*/result.json")))
    assert after - before <= 2, f"{after - before} cells finished after Ctrl-C: the queued ones were run first"


@pytest.mark.slow
def test_kill_9_of_a_worker_names_the_lost_cells_and_the_rerun_keeps_the_rest(tmp_path):
    """kill -9 of one worker of --workers 2: the pool ends the other worker too, so the message names the cells the
    workers had started (lost) apart from the queued ones (not started), says how to resume once, and the rerun
    recomputes only the unfinished cells."""
    out = tmp_path / "kw"
    args = [sys.executable, "-m", "prunefair.cli", "study", "--out", str(out), "--workers", "2", "--preset", "digits",
            "--seeds", "0", "--rates", "0.3,0.5,0.9", "--set", "model.width=0.5", "--set", "train.epochs=2",
            "--set", "finetune.epochs=8", "--set", "diagnostics.enabled=false", "--quiet"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_die_with_parent)
    deadline, marker = time.time() + 240, None
    while marker is None and proc.poll() is None and time.time() < deadline:
        marker = next(iter(sorted((out / "cells").glob("s0_p*/running.json"))), None)
        time.sleep(0.05)
    assert marker is not None, "no pruning cell started"
    os.kill(json.loads(marker.read_text())["pid"], signal.SIGKILL)
    assert proc.wait(timeout=120) == 1
    err = " ".join(proc.stderr.read().split())  # rich wraps lines
    started = sorted(p.parent.name for p in (out / "cells").glob("*/running.json"))
    done = {p.parent.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*/result.json")}
    unfinished = sorted({f"s0_p{r}_nft" for r in (0.3, 0.5, 0.9)} - set(done))
    assert marker.parent.name in started and set(started) <= set(unfinished)
    assert f"the cells the workers were running are lost: {', '.join(started)}" in err, err
    queued = [n for n in unfinished if n not in started]
    assert (f"; not started: {', '.join(queued)}" in err) == bool(queued), err
    assert err.count("rerun the same command to resume") == 1, err

    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, preexec_fn=_die_with_parent)
    assert again.returncode == 0, again.stderr
    now = {p.parent.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*/result.json")}
    assert sorted(n for n in now if n not in done) == unfinished  # only those were run
    assert {n: now[n] for n in done} == done  # nothing finished was recomputed
    assert not list((out / "cells").glob("*/running.json"))
