#!/usr/bin/env bash
# GPU checks in one script (within 10 minutes on an H100): the test suite's CUDA tests, throughput of ResNet18,
# VGG19 and ResNet50 (train and eval, prunefair vs a bare loop), one Hessian-vector product (prunefair's rules vs
# plain autograd), then the per-group eigenvalue benchmark on the GPU (per group and stacked, vs PyHessian). Results go to ${OUT:-.}.
# Needs a Python with torch (CUDA build), prunefair's dependencies and its dev extras (pytest, PyHessian) importable;
# run from the repo root. Extra arguments go to gpu_throughput.py (e.g. --no-compile --models resnet18).
# Each step has its own time limit (150 + 240 + 60 + 120 s: at most 9.5 min in all, plus start-up); a step that fails
# or runs out of time is said, the later steps still run, and the script exits 1. torch.compile is timed on ResNet18
# only (each paper model compiles for about a minute on a cold cache: all three would not fit the 240 s); pass
# --compile-models resnet18,vgg19,resnet50 for all, --no-compile for none. Python packages the image lacks are named
# before anything runs (carry them as wheels: pydantic, pydantic-core, annotated-types, typing-inspection, tomli-w,
# PyHessian).
set -uo pipefail
OUT=$(mkdir -p "${OUT:-.}" && cd "${OUT:-.}" && pwd)  # absolute: the benchmarks below run from benchmarks/
export PYTHONPATH=$(pwd)/src:${PYTHONPATH:-}
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
if ! $PY -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu.sh: no CUDA device visible to $PY (torch.cuda.is_available() is False, or torch not importable); nothing run" >&2
  exit 1
fi
# every module the steps import, checked at once (a missing one would otherwise end a step minutes in)
missing=$($PY -c "import importlib.util as u; print(' '.join(m for m in ('pydantic', 'pydantic_core', 'annotated_types',
  'typing_inspection', 'tomli_w', 'safetensors', 'rich', 'pandas', 'scipy', 'sklearn', 'matplotlib', 'PIL', 'pytest')
  if u.find_spec(m) is None))")
if ! err=$($PY -c "import prunefair.api, prunefair.study, prunefair.diagnostics, tomli_w, pytest" 2>&1) \
    || [ -n "$missing" ]; then
  echo "gpu.sh: $PY cannot import what the steps need${missing:+ (missing: $missing)}; nothing run" >&2
  echo "${err##*$'\n'}" >&2
  exit 1
fi
failed=()
check() { local rc=$?; [ "$rc" -eq 0 ] || { failed+=("$1 (exit $rc)"); echo "gpu.sh: $1 failed (exit $rc)" >&2; }; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" | tee -a "$OUT/gpu.txt"
timeout 150 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py \
  tests/train/test_dropout_seed.py::test_dropout_training_on_cuda_depends_on_the_seed_alone_and_leaves_the_cuda_rng_as_it_was \
  2>&1 | tee "$OUT/gpu_tests.log" | tail -n 15; check "CUDA tests"
cd benchmarks
timeout 240 $PY gpu_throughput.py --json "$OUT/gpu_throughput.json" --compile-models resnet18 "$@" 2>&1 \
  | tee "$OUT/gpu_throughput.log"; check gpu_throughput.py
timeout 60 $PY bench_hvp.py --device cuda --models cnn,resnet18,vgg19 --width 1 --samples 256 2>&1 | grep -v -i warn | tee "$OUT/hvp_gpu.log"; check bench_hvp.py
if $PY -c "import pyhessian" 2>/dev/null; then
  timeout 120 $PY bench_eigenvalue.py --device cuda --epochs 3 --groups 10 --samples 256 --images 4096 2>&1 | grep -v -i warn | tee "$OUT/eig_gpu.log"; check bench_eigenvalue.py
else
  failed+=("bench_eigenvalue.py (not run: PyHessian, its baseline, is not importable)")
  echo "gpu.sh: bench_eigenvalue.py not run: $PY cannot import pyhessian (carry PyHessian==0.1 as a wheel)" >&2
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "gpu.sh: ${#failed[@]} step(s) failed or ran out of time (exit 124): ${failed[*]}" >&2
  exit 1
fi
