"""The benchmark scripts' own logic: baselines as the targets name them, verdicts computed the right way round."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


@pytest.fixture()
def bench_path(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_eigenvalue_speedup_leaves_out_groups_where_pyhessian_found_another_eigenvalue(bench_path):
    from bench_eigenvalue import speedup_summary

    # group b: PyHessian's power iteration converged to a negative eigenvalue after many products (a 9x "speed-up")
    lines = speedup_summary(("a", "b", "c"), [3.0, 9.0, 3.5], [1.0, 1.0, 1.0], [3.0, 9.0, 3.5],
                            [10.0, -2.0, 12.0], 0.004)
    assert "median over 2 groups 3.25x (min 3.00x" in lines[0]  # not 3.50x with b
    assert "left out of both, PyHessian's value negative: b" in lines[0]
    assert "summed over those 2 groups: prunefair 2 s, PyHessian 6.5 s: 3.25x" in lines[1]  # not 15.5 / 3 s
    assert "agree within 0.400%" in lines[0]
    every = speedup_summary(("a", "b"), [3.0, 4.0], [1.0, 1.0], [3.0, 4.0], [1.0, 2.0], 0.0)
    assert "median over 2 groups 3.50x" in every[0] and "left out" not in every[0]
    none = speedup_summary(("a",), [9.0], [1.0], [9.0], [-1.0], 0.0)
    assert len(none) == 1 and "no speed-up to judge" in none[0]


def test_data_cache_baseline_decodes_the_same_pixels_as_the_cache(bench_path, shared_data, tmp_path):
    """The baseline decodes per file as a Dataset would (no digest, no EXIF pass) and yields the cache's pixels, in
    order, with worker processes too."""
    import bench_data_cache as b

    from prunefair.data import images as img
    from prunefair.data.utkface import scan_folder

    files = scan_folder(shared_data / "utkface")[0][:600]
    cached = img.load_images(files, size=48, cache_dir=tmp_path, workers=1)
    assert cached.kept.tolist() == list(range(len(files)))
    for workers in (1, 2):
        plain = b.decode_files(files, 48, workers)
        assert len(plain) == len(files)
        assert torch.equal(torch.from_numpy(np.stack(plain)).permute(0, 3, 1, 2), cached.x)


@pytest.mark.slow
def test_gpu_sh_fails_clearly_without_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(BENCH / "gpu.sh")], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**_env(), "PY": sys.executable, "OUT": str(out)})
    assert proc.returncode == 1
    assert "gpu.sh: no CUDA device visible" in proc.stderr
    assert not list(out.iterdir())  # nothing run, nothing written


@pytest.mark.slow
def test_gpu_throughput_compares_fp32_with_a_channels_last_bare_loop(tmp_path):
    """The fp32 ratio's baseline is the bare loop in channels_last, as prunefair's fit runs (the NCHW bare loop is
    printed for reference only); the script's CPU path checks it runs; without CUDA the default says so."""
    js = tmp_path / "t.json"
    proc = subprocess.run([sys.executable, "gpu_throughput.py", "--device", "cpu", "--images", "16", "--batch-size",
                           "8", "--models", "mlp", "--no-compile", "--json", str(js)], cwd=BENCH, capture_output=True,
                          text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads(js.read_text())["rows"][0]
    assert {"bare_fp32_train", "bare_fp32_cl_train", "bare_bf16_cl_train", "prunefair_fp32_train",
            "prunefair_bf16_train", "bare_fp32_eval", "prunefair_groups100_fp32_eval"} <= set(row)
    want = row["prunefair_fp32_train"] / row["bare_fp32_cl_train"]
    assert f"/ bare fp32 channels_last train: {want:.3f}" in proc.stdout
    if not torch.cuda.is_available():
        proc = subprocess.run([sys.executable, "gpu_throughput.py", "--models", "mlp"], cwd=BENCH,
                              capture_output=True, text=True, timeout=120, env=_env())
        assert proc.returncode == 1 and "needs a CUDA device" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_machine_line_names_the_cpu_and_torch_instruction_set(bench_path):
    """The ratios depend on the CPU (sessions 1-12 and 13 ran on different ones), so every script's first line
    says which: the model name from /proc/cpuinfo where there is one, and torch's kernel instruction set."""
    from common import cpu_name, machine

    name = cpu_name()
    assert name.endswith(f", {torch.backends.cpu.get_cpu_capability()}")
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                      if ln.startswith("model name")), None)
        if model:
            assert name.startswith(model)
    assert f"| {name} |" in machine()
