#!/usr/bin/env bash
# GPU checks in one script (within 10 minutes on an H100): the test suite's CUDA tests, throughput of ResNet18,
# VGG19 and ResNet50 (train and eval, prunefair vs a bare loop), one Hessian-vector product (prunefair's rules vs
# plain autograd), then the per-group eigenvalue benchmark on the GPU (per group and stacked, vs PyHessian). Results go to ${OUT:-.}.
# Needs a Python with torch (CUDA build), prunefair's dependencies and its dev extras (pytest, PyHessian) importable;
# run from the repo root. Extra arguments go to gpu_throughput.py (e.g. --no-compile --models resnet18).
set -uo pipefail
OUT=$(mkdir -p "${OUT:-.}" && cd "${OUT:-.}" && pwd)  # absolute: the benchmarks below run from benchmarks/
export PYTHONPATH=$(pwd)/src:${PYTHONPATH:-}
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" | tee -a "$OUT/gpu.txt"
timeout 150 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/gpu_tests.log" | tail -n 15
cd benchmarks
timeout 240 $PY gpu_throughput.py --json "$OUT/gpu_throughput.json" "$@" 2>&1 | tee "$OUT/gpu_throughput.log"
timeout 60 $PY bench_hvp.py --device cuda --models cnn,resnet18,vgg19 --width 1 --samples 256 2>&1 | grep -v -i warn | tee "$OUT/hvp_gpu.log"
timeout 90 $PY bench_eigenvalue.py --device cuda --epochs 3 --groups 10 --samples 256 --images 4096 2>&1 | grep -v -i warn | tee "$OUT/eig_gpu.log"
