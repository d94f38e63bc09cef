"""benchmarks/gpu.sh gets one try on a lent GPU, so what can be checked without one is checked here: a Python that
cannot import prunefair's dependencies is said before any step runs (the GPU image lacks pydantic and tomli-w), and
torch.compile, the slow part of gpu_throughput.py (about a minute per paper model on a cold cache), comes after every
model's other figures and only for --compile-models (gpu.sh: ResNet18), so the 240 s limit keeps the eager figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **extra}


def test_gpu_sh_names_a_missing_dependency_before_running_any_step(tmp_path):
    stub = tmp_path / "stub" / "pydantic"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('pydantic is not installed here (test stub)')\n")
    fake = tmp_path / "python"  # says CUDA is there, is the test's Python otherwise
    fake.write_text(f"#!/bin/sh\ncase \"$*\" in *cuda.is_available*) exit 0;; esac\nexec {sys.executable} \"$@\"\n")
    fake.chmod(0o755)
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(BENCH / "gpu.sh")], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PY": str(fake), "OUT": str(out), "PYTHONPATH": str(tmp_path / "stub")})
    assert proc.returncode == 1
    assert "cannot import what the steps need; nothing run" in proc.stderr
    assert "pydantic is not installed here (test stub)" in proc.stderr
    assert not list(out.iterdir())  # no step ran


def test_gpu_sh_times_torch_compile_on_resnet18_alone_within_its_step_limits():
    text = (BENCH / "gpu.sh").read_text()
    assert "gpu_throughput.py --json \"$OUT/gpu_throughput.json\" --compile-models resnet18 \"$@\"" in text
    limits = [int(line.split("timeout ", 1)[1].split()[0]) for line in text.splitlines()
              if line.lstrip().startswith("timeout ")]
    assert limits == [150, 240, 60, 120] and sum(limits) <= 570  # a device command may run 600 s


@pytest.mark.slow
def test_gpu_throughput_times_compile_last_and_only_for_the_models_asked(tmp_path):
    js = tmp_path / "t.json"
    proc = subprocess.run([sys.executable, "gpu_throughput.py", "--device", "cpu", "--images", "16", "--batch-size",
                           "8", "--models", "mlp", "--compile-models", "resnet18", "--json", str(js)], cwd=BENCH,
                          capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--compile-models names 'resnet18', which --models does not time: left out" in proc.stdout
    row = json.loads(js.read_text())["rows"][0]
    assert "prunefair_bf16_train" in row and not any("compile" in k for k in row)
