"""Ray hides every GPU from a task that asks for none (it sets CUDA_VISIBLE_DEVICES="" there). device = 'cuda' with
run.gpus_per_cell = 0 (its default) failed every cell with "device = 'cuda' but no CUDA device is available", on a
machine with GPUs; now it is refused before any task, naming run.gpus_per_cell. device = 'auto' on a cluster with GPUs
says that the cells will run on the CPU."""

from types import SimpleNamespace

import pytest

from prunefair.config import validate_config
from prunefair.progress import NULL_PROGRESS
from tests.conftest import tiny_study


@pytest.fixture()
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_device_cuda_without_gpus_per_cell_is_refused_naming_the_setting(tmp_path, local_ray):
    from prunefair.study.ray_executor import RayExecutor

    cfg = validate_config(tiny_study(tmp_path, device="cuda"))
    with pytest.raises(RuntimeError, match=r"device = 'cuda' but run.gpus_per_cell = 0: Ray hides the GPUs .* set "
                                           r"run.gpus_per_cell \(--set run.gpus_per_cell=0.25"):
        RayExecutor(gpus_per_cell=0.0).run(cfg)
    assert not (tmp_path / "study" / "cells").exists()  # refused before any cell


def test_device_auto_without_gpus_per_cell_on_a_cluster_with_gpus_says_the_cells_run_on_the_cpu(tmp_path):
    from prunefair.study.ray_executor import RayExecutor

    lines = []
    progress = SimpleNamespace(log=lines.append)
    cfg = validate_config(tiny_study(tmp_path, device="auto"))
    gpus = SimpleNamespace(cluster_resources=lambda: {"CPU": 16.0, "GPU": 1.0})
    RayExecutor(gpus_per_cell=0.0)._check_device(gpus, cfg, progress)
    assert len(lines) == 1 and "the cells run on the CPU" in lines[0] and "run.gpus_per_cell" in lines[0]
    RayExecutor(gpus_per_cell=0.5)._check_device(gpus, cfg, NULL_PROGRESS)  # asks for a GPU: nothing to say
    no_gpus = SimpleNamespace(cluster_resources=lambda: {"CPU": 16.0})
    RayExecutor(gpus_per_cell=0.0)._check_device(no_gpus, cfg, progress)  # no GPU anyway: nothing to say
    assert len(lines) == 1
