"""What `prunefair status` shows while a cell works: a dense cell computing its diagnostics (local and Ray), a process
killed then (stale), and cells submitted to Ray (queued or running)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prunefair.cli import app
from prunefair.config import validate_config
from prunefair.study import Store
from prunefair.study.cells import diagnostics_key, plan_cells
from tests.conftest import tiny_study
from tests.study.helpers import run_cells


def _state(output: str, cell: str) -> str:
    """The state column of ``cell``'s row in `status` output (wide enough not to fold)."""
    row = next(line for line in output.splitlines() if f" {cell} " in line)
    return [part.strip() for part in row.split("│")][2]


def test_status_shows_a_dense_cell_as_running_while_its_diagnostics_compute(tmp_path, monkeypatch):
    """write_result cleared running.json before the diagnostics ran: status showed nothing running."""
    import prunefair.diagnostics as diagnostics

    cfg = tiny_study(tmp_path, prune={"rates": [0.5]}, diagnostics={"trace_samples": 0, "max_samples": 32})
    seen = []
    original = diagnostics.diagnose_groups

    def spy(*args, **kwargs):
        res = CliRunner().invoke(app, ["status", cfg["output_dir"]], env={"COLUMNS": "250"})
        seen.append(res.output)
        return original(*args, **kwargs)

    monkeypatch.setattr(diagnostics, "diagnose_groups", spy)
    run_cells(cfg)
    assert len(seen) == 1
    assert _state(seen[0], "s0_dense") == "running" and "computing its diagnostics" in seen[0], seen[0]
    assert "1 running" in seen[0]
    assert not list(Path(cfg["output_dir"]).rglob("running.json"))  # cleared once they are stored
    res = CliRunner().invoke(app, ["status", cfg["output_dir"]])
    assert "2 done" in res.output and "0 running" in res.output


def test_a_study_killed_while_computing_diagnostics_shows_the_dense_cell_stale(tmp_path):
    cfg = tiny_study(tmp_path, prune={"rates": [0.5]}, diagnostics={"trace_samples": 0, "max_samples": 32})
    child = (
        "import os, signal, prunefair.diagnostics as D\n"
        "D.diagnose_groups = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
        "from prunefair.config import validate_config\n"
        "from prunefair.study import execute_study\n"
        f"execute_study(validate_config(json.loads({json.dumps(json.dumps(cfg))})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", "import json\n" + child], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == -9, proc.stderr
    res = CliRunner().invoke(app, ["status", cfg["output_dir"]], env={"COLUMNS": "250"})
    assert _state(res.output, "s0_dense") == "stale", res.output
    assert "its diagnostics were computed by" in res.output and "that process is gone" in res.output
    config = validate_config(cfg)
    dense = plan_cells(config)[0][0]
    # the same marker with the diagnostics turned off since (or already stored): the cell is simply done
    assert Store(cfg["output_dir"]).cell_state(dense.name, dense.key, diagnostics=None)[0] == "done"
    assert Store(cfg["output_dir"]).cell_state(dense.name, dense.key,
                                               diagnostics=diagnostics_key(config, dense))[0] == "stale"


def test_status_says_queued_or_running_for_a_ray_marker(tmp_path):
    store = Store(tmp_path)
    store.mark_running("s0_p0.5_nft", "k", executor="ray")
    state, detail = store.cell_state("s0_p0.5_nft", "k")
    assert state == "queued or running" and "Ray task" in detail


def record_state(log: str):
    """A Ray dense task that first records what `prunefair status` says of its cell in the study folder (the
    driver's marker), then runs."""
    from prunefair.study.ray_executor import ray_dense_task

    def task(cfg_dict, name, stored=None):
        import os

        os.environ["COLUMNS"] = "250"  # before the CLI's console is made: rows not folded
        from prunefair.cli import app as cli

        output = CliRunner().invoke(cli, ["status", cfg_dict["output_dir"]]).output
        with open(log, "a") as fh:
            fh.write(json.dumps([_state(output, name), output]) + "\n")
        return ray_dense_task(cfg_dict, name, stored)

    return task


@pytest.mark.slow
def test_ray_cells_show_as_queued_or_running_and_diagnostics_reruns_as_such(tmp_path):
    """The driver marked submitted tasks as plain "running", and a diagnostics-only task not at all ("done")."""
    ray = pytest.importorskip("ray")
    from prunefair.study.ray_executor import RayExecutor

    log = tmp_path / "states.jsonl"
    cfg = tiny_study(tmp_path, prune={"rates": [0.5]}, diagnostics={"trace_samples": 0, "max_samples": 32})
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        RayExecutor(dense_task=record_state(str(log))).run(validate_config(cfg))
        cfg["diagnostics"]["max_samples"] = 16  # the dense cell is done: a task for its diagnostics only
        RayExecutor(dense_task=record_state(str(log))).run(validate_config(cfg))
    finally:
        ray.shutdown()
    (train, state_train), (diag, state_diag) = [json.loads(line) for line in log.read_text().splitlines()]
    assert train == "queued or running" and "Ray task" in state_train
    assert diag == "queued or running" and "computing its diagnostics" in state_diag
    assert not list(Path(cfg["output_dir"]).rglob("running.json"))
