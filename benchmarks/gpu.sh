#!/usr/bin/env bash
# GPU checks in one script (within 10 minutes on an H100): the test suite's CUDA tests, throughput of ResNet18,
# VGG19 and ResNet50 (train and eval, prunefair vs a bare loop), one Hessian-vector product (prunefair's rules vs
# plain autograd), then the per-group eigenvalue benchmark on the GPU (per group and stacked, vs PyHessian). Results go to ${OUT:-.}.
# Needs a Python with torch (CUDA build), prunefair's dependencies and its dev extras (pytest, PyHessian) importable;
# run from the repo root. Extra arguments go to gpu_throughput.py (e.g. --no-compile --models resnet18).
# Each step has its own time limit (150 + 240 + 60 + 120 s: at most 9.5 min in all, plus start-up); a step that fails
# or runs out of time is said, the later steps still run, and the script exits 1.
set -uo pipefail
OUT=$(mkdir -p "${OUT:-.}" && cd "${OUT:-.}" && pwd)  # absolute: the benchmarks below run from benchmarks/
export PYTHONPATH=$(pwd)/src:${PYTHONPATH:-}
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
if ! $PY -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu.sh: no CUDA device visible to $PY (torch.cuda.is_available() is False, or torch not importable); nothing run" >&2
  exit 1
fi
failed=()
check() { local rc=$?; [ "$rc" -eq 0 ] || { failed+=("$1 (exit $rc)"); echo "gpu.sh: $1 failed (exit $rc)" >&2; }; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" | tee -a "$OUT/gpu.txt"
timeout 150 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/gpu_tests.log" | tail -n 15; check "CUDA tests"
cd benchmarks
timeout 240 $PY gpu_throughput.py --json "$OUT/gpu_throughput.json" "$@" 2>&1 | tee "$OUT/gpu_throughput.log"; check gpu_throughput.py
timeout 60 $PY bench_hvp.py --device cuda --models cnn,resnet18,vgg19 --width 1 --samples 256 2>&1 | grep -v -i warn | tee "$OUT/hvp_gpu.log"; check bench_hvp.py
timeout 120 $PY bench_eigenvalue.py --device cuda --epochs 3 --groups 10 --samples 256 --images 4096 2>&1 | grep -v -i warn | tee "$OUT/eig_gpu.log"; check bench_eigenvalue.py
if [ ${#failed[@]} -gt 0 ]; then
  echo "gpu.sh: ${#failed[@]} step(s) failed or ran out of time (exit 124): ${failed[*]}" >&2
  exit 1
fi
