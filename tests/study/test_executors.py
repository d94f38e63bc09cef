"""Executors: local worker processes and Ray tasks give the same table as the sequential default."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from prunefair.config import validate_config
from prunefair.study import StudyResults
from prunefair.study.executors import LocalExecutor, make_executor
from tests.conftest import tiny_study
from tests.study.helpers import run_cells


def test_make_executor_reads_the_run_section(tmp_path):
    assert make_executor(validate_config(tiny_study(tmp_path)).run) == LocalExecutor(workers=1)
    assert make_executor(validate_config(tiny_study(tmp_path, run={"workers": 3})).run) == LocalExecutor(workers=3)
    ray_exec = make_executor(validate_config(tiny_study(tmp_path, run={
        "executor": "ray", "address": "auto", "gpus_per_cell": 0.25, "cpus_per_cell": 2, "max_retries": 5})).run)
    assert (type(ray_exec).__name__, ray_exec.address, ray_exec.gpus_per_cell, ray_exec.cpus_per_cell,
            ray_exec.max_retries) == ("RayExecutor", "auto", 0.25, 2.0, 5)


@pytest.mark.slow
def test_local_workers_equal_sequential(tmp_path):
    seq = run_cells(tiny_study(tmp_path / "seq", seeds=[0, 1]))
    par = run_cells(tiny_study(tmp_path / "par", seeds=[0, 1], run={"workers": 2}))
    pd.testing.assert_frame_equal(seq.by_group, par.by_group, check_exact=True)
    assert len(par.cells) == 6 and not par.failed
    assert not list((tmp_path / "par").rglob("running.json"))
    described = [(tmp_path / run / "study" / "data.json").read_text() for run in ("seq", "par")]
    assert described[0] == described[1]


# -- Ray ------------------------------------------------------------------------------------------
def crash_first_attempt(marker_dir: str):
    """A prune task that kills its own worker process the first time it runs a cell (a lost node)."""
    from prunefair.study.ray_executor import ray_prune_task

    def task(cfg_dict, name, dense_files):
        marker = Path(marker_dir) / f"{name}.attempt"
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)  # no exception, no cleanup: the worker process just dies
        return ray_prune_task(cfg_dict, name, dense_files)

    return task


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    # "local": a fresh instance, also where `ray start` runs a cluster (or left a record of a killed one)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_executor_survives_a_killed_worker_and_equals_local(tmp_path, local_ray):
    from prunefair.study.ray_executor import RayExecutor

    cfg = validate_config(tiny_study(tmp_path / "ray", seeds=[0, 1]))
    markers = tmp_path / "markers"
    markers.mkdir()
    RayExecutor(cpus_per_cell=1, max_retries=2, prune_task=crash_first_attempt(str(markers))).run(cfg)
    # every pruning cell's first attempt died with its worker, and was retried
    assert sorted(p.stem for p in markers.glob("*.attempt")) == ["s0_p0.5_nft", "s0_p0.9_nft", "s1_p0.5_nft",
                                                                 "s1_p0.9_nft"]
    ray_res = StudyResults.from_store(cfg.output_dir)
    assert len(ray_res.cells) == 6 and not ray_res.failed
    assert not list(Path(cfg.output_dir).rglob("running.json"))
    assert json.loads((Path(cfg.output_dir) / "data.json").read_text())["dataset"] == "digits"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a Ray task with num_cpus=1 computes with one thread; so does this baseline
    try:
        local = run_cells(tiny_study(tmp_path / "local", seeds=[0, 1]))
    finally:
        torch.set_num_threads(threads)
    pd.testing.assert_frame_equal(ray_res.by_group, local.by_group, check_exact=True)
    # a rerun through the config (executor = "ray", same Ray instance) finds nothing left to do
    mtimes = {p: p.stat().st_mtime_ns for p in Path(cfg.output_dir).glob("cells/*/result.json")}
    run_cells(tiny_study(tmp_path / "ray", seeds=[0, 1], run={"executor": "ray"}))
    assert {p: p.stat().st_mtime_ns for p in Path(cfg.output_dir).glob("cells/*/result.json")} == mtimes


@pytest.mark.slow
def test_ray_nan_cell_fails_without_retry_and_lost_tasks_fail_after_retries(tmp_path, local_ray):
    from prunefair.study.ray_executor import RayExecutor

    cfg = validate_config(tiny_study(tmp_path / "nan", finetune={"lr": 1e6, "epochs": 1}, prune={"rates": [0.5]},
                                     run={"executor": "ray", "gpus_per_cell": 0.0}))
    results = RayExecutor().run(cfg)
    by_name = {r["name"]: r for r in results}
    assert by_name["s0_dense"]["status"] == "done"
    assert by_name["s0_p0.5_nft"]["status"] == "failed" and "non-finite" in by_name["s0_p0.5_nft"]["error"]

    def always_dies(cfg_dict, name, dense_files):
        os._exit(1)

    cfg2 = validate_config(tiny_study(tmp_path / "lost", prune={"rates": [0.5]}))
    results = RayExecutor(max_retries=1, prune_task=always_dies).run(cfg2)
    by_name = {r["name"]: r for r in results}
    assert by_name["s0_dense"]["status"] == "done"
    assert by_name["s0_p0.5_nft"]["status"] == "failed" and "Ray task failed after 1 retries" in \
        by_name["s0_p0.5_nft"]["error"]


def test_ray_refuses_cells_larger_than_the_cluster(tmp_path, local_ray):
    from prunefair.study.ray_executor import RayExecutor

    cfg = validate_config(tiny_study(tmp_path))
    for kw, word in (({"cpus_per_cell": 64}, "cpus_per_cell = 64"), ({"gpus_per_cell": 0.25}, "gpus_per_cell = 0.25")):
        with pytest.raises(RuntimeError, match=rf"run\.{word}, but the Ray cluster has .* no cell could ever start"):
            RayExecutor(**kw).run(cfg)


@pytest.mark.slow
def test_ray_recomputes_only_the_diagnostics_when_their_section_changes(tmp_path, local_ray):
    from prunefair.study.cells import diagnostics_key, plan_cells
    from prunefair.study.store import Store
    from tests.study.helpers import run_cells

    cfg = tiny_study(tmp_path, prune={"rates": [0.5]}, run={"executor": "ray"},
                     diagnostics={"trace_samples": 0, "max_samples": 32})
    run_cells(cfg)
    ckpt = Path(cfg["output_dir"]) / "cells" / "s0_dense" / "model.safetensors"
    before = ckpt.read_bytes()
    timing = Store(cfg["output_dir"]).read_result("s0_dense")["timing"]
    cfg["diagnostics"]["max_samples"] = 16
    run_cells(cfg)
    assert ckpt.read_bytes() == before  # not retrained: the same model, and the training record of the first run
    assert Store(cfg["output_dir"]).read_result("s0_dense")["timing"] == timing
    config = validate_config(cfg)
    stored = Store(config.output_dir).read_result("s0_dense")["diagnostics"]
    assert stored["key"] == diagnostics_key(config, plan_cells(config)[0][0]) and stored["settings"]["max_samples"] == 16


@pytest.mark.skipif(not os.sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_a_worker_dies_with_the_study_process(tmp_path):
    """Workers of --workers N ask for SIGTERM when their parent dies (a kill -9 of the study left them running)."""
    import signal
    import subprocess
    import sys
    import time

    code = ("import os, subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import os, time\\n"
            "from prunefair.study.executors import die_with_parent\\n"
            "die_with_parent(os.getppid()); print(os.getpid(), flush=True); time.sleep(60)'],"
            " stdout=subprocess.PIPE, text=True)\n"
            "print(child.stdout.readline().strip(), flush=True)\n"
            "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the worker outlived its parent")


def test_ray_errors_name_the_study_folder_not_the_tasks(tmp_path, local_ray):
    from tests.study.helpers import run_cells

    cfg = tiny_study(tmp_path, prune={"rates": [0.5]}, run={"executor": "ray"}, diagnostics={"enabled": False})
    run_cells(cfg)
    ckpt = Path(cfg["output_dir"]) / "cells" / "s0_dense" / "model.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:300])
    cfg["prune"]["rates"] = [0.5, 0.9]
    res = run_cells(cfg)
    (failed,) = res.failed
    assert str(ckpt) in failed["error"] and "prunefair-" not in failed["error"]


@pytest.mark.slow
def test_ray_keeps_a_done_dense_cell_whose_diagnostics_task_is_lost(tmp_path, local_ray):
    """A done dense cell sent to Ray only for new diagnostics: if that task is lost, the cell stays done (its model
    and pruning cells are kept) and the diagnostics record the failure, as a local run does."""
    from prunefair.study.cells import diagnostics_key, plan_cells
    from prunefair.study.ray_executor import RayExecutor
    from prunefair.study.store import Store

    def always_dies(cfg_dict, name, stored=None):
        os._exit(1)

    cfg = tiny_study(tmp_path, prune={"rates": [0.5]}, diagnostics={"trace_samples": 0, "max_samples": 32})
    run_cells(cfg)
    store = Store(cfg["output_dir"])
    before = {n: store.read_result(n) for n in ("s0_dense", "s0_p0.5_nft")}
    cfg["diagnostics"]["max_samples"] = 16
    config = validate_config(cfg)
    RayExecutor(max_retries=0, dense_task=always_dies).run(config)
    dense = store.read_result("s0_dense")
    assert dense["status"] == "done" and dense["metrics"] == before["s0_dense"]["metrics"]
    assert dense["diagnostics"]["key"] == diagnostics_key(config, plan_cells(config)[0][0])
    assert "Ray task failed after 0 retries" in dense["diagnostics"]["error"]
    assert store.read_result("s0_p0.5_nft") == before["s0_p0.5_nft"]
    assert not list(Path(cfg["output_dir"]).rglob("running.json"))


def test_a_worker_without_the_registered_model_says_why(tmp_path):
    """A spawned worker or Ray task that does not see a model registered in the main process (register_model)."""
    from prunefair.config import ConfigError
    from prunefair.study.executors import worker_runner

    cfg = validate_config(tiny_study(tmp_path)).to_dict()
    cfg["model"]["name"] = "registered_elsewhere"
    with pytest.raises(ConfigError, match="exists only in the process that registered it"):
        worker_runner(cfg, tmp_path / "study")


def _dead_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ray_address_where_no_cluster_answers_fails_at_once(tmp_path):
    """A wrong --address (or a head node that was killed): Ray retried it for a quarter of an hour, printing only its
    own reconnect warnings; now a ConnectionError names the setting and the address, before anything is written."""
    import subprocess
    import sys
    import time

    pytest.importorskip("ray")
    out = tmp_path / "study"
    code = ("from prunefair.config import validate_config\n"
            "from prunefair.study.ray_executor import RayExecutor\n"
            "from pathlib import Path\n"
            "from tests.conftest import tiny_study\n"
            f"cfg = validate_config(tiny_study(Path({str(tmp_path)!r})))\n"
            f"RayExecutor(address='127.0.0.1:{_dead_port()}').run(cfg)\n")
    t0 = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).parents[2])
    except subprocess.TimeoutExpired:
        pytest.fail("RayExecutor hung on an address where no cluster answers")
    assert proc.returncode == 1 and time.monotonic() - t0 < 60
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ConnectionError: run.address (--address) = '127.0.0.1:") and \
        "no Ray cluster answers at" in last and "ray start --head" in last, proc.stderr[-2000:]
    assert not (out / "cells").exists()


def test_ray_cluster_address_recorded_but_dead(monkeypatch):
    """`ray start`'s recorded cluster, killed since: an omitted address starts a local instance (as documented),
    saying so; "auto" and RAY_ADDRESS name the dead address at once instead of Ray's quarter-hour of retries."""
    pytest.importorskip("ray")
    from ray._private import services

    from prunefair.study.ray_executor import cluster_address

    dead = f"127.0.0.1:{_dead_port()}"
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: frozenset())
    monkeypatch.setattr(services, "find_bootstrap_address", lambda temp_dir: dead)
    said = []
    assert cluster_address(None, said.append) == "local"
    assert len(said) == 1 and "does not answer" in said[0] and "starting a local Ray instance" in said[0]
    with pytest.raises(ConnectionError, match=r"run.address \(--address\) = 'auto': no Ray cluster answers at "
                                              r".*the cluster last started on this machine; `ray stop --force`"):
        cluster_address("auto")
    monkeypatch.setattr(services, "find_bootstrap_address", lambda temp_dir: None)
    with pytest.raises(ConnectionError, match=r"run.address \(--address\) = 'auto': Could not find any running Ray"):
        cluster_address("auto")
    monkeypatch.setenv("RAY_ADDRESS", dead)
    with pytest.raises(ConnectionError, match=rf"RAY_ADDRESS = '{dead}': no Ray cluster answers"):
        cluster_address(None)
    with pytest.raises(ConnectionError, match=r"run.address \(--address\) = 'ray://127.0.0.1:\d+': no Ray cluster"):
        cluster_address(f"ray://{dead}")


def _missing_root(tmp_path, **run) -> dict:
    return tiny_study(tmp_path, data={"dataset": "utkface", "root": str(tmp_path / "nowhere"), "target": "gender",
                                      "group": "ethnicity"}, run=run)


def test_ray_data_refused_on_the_worker_is_said_in_one_line_and_writes_nothing(tmp_path, local_ray):
    """The data is loaded in a Ray task: its error (a missing data folder) came back as Ray's page of the worker's
    traceback, and config.toml had been written already; now the loader's own error, the folder left empty."""
    from prunefair.study.ray_executor import RayExecutor

    cfg = validate_config(_missing_root(tmp_path))
    with pytest.raises(FileNotFoundError) as info:
        RayExecutor().run(cfg)
    assert str(info.value) == f"data.root = {str(tmp_path / 'nowhere')!r}: UTKFace folder not found"
    assert not (Path(cfg.output_dir) / "config.toml").exists()


@pytest.mark.slow
def test_workers_data_refused_writes_nothing(tmp_path):
    """--workers 2 wrote config.toml before a worker found the data folder missing (workers = 1 writes nothing)."""
    cfg = validate_config(_missing_root(tmp_path, workers=2))
    with pytest.raises(FileNotFoundError, match="UTKFace folder not found"):
        LocalExecutor(workers=2).run(cfg)
    assert not (Path(cfg.output_dir) / "config.toml").exists()
