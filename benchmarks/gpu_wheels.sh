#!/usr/bin/env bash
# Run here (a machine with PyPI), before a GPU run: downloads into .whl/ (git-ignored) the wheels that the lent
# GPU machine's image lacks (Python 3.12 there), at the versions this checkout's .venv tests: pydantic and its
# parts, tomli-w, PyHessian (bench_eigenvalue's baseline) and typing-extensions (pydantic-core wants a recent one).
# About 2.8 MB. The device call then carries .whl and installs them first (docs/benchmarks.md, "GPU: paper models").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
pins=$($PY -c "import importlib.metadata as m; print(' '.join(f'{n}=={m.version(n)}' for n in ('pydantic',
  'pydantic-core', 'annotated-types', 'typing-inspection', 'tomli-w', 'PyHessian', 'typing-extensions')))")
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $pins
ls .whl
