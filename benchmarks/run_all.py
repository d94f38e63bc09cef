"""Run every CPU benchmark script in this folder, one after another, and print their ratio lines.

Usage: python benchmarks/run_all.py [--only NAME ...] [--quick]   (each bench_*.py also runs on its own)

``--quick`` runs each script at its smallest sizes (a minute or two in all): it checks that the suite runs and
prints its lines; the ratios at those sizes are not the recorded figures (docs/benchmarks.md gives the commands).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

QUICK = {
    "bench_data_cache.py": ["--images", "256", "--rounds", "1"],
    "bench_eigenvalue.py": ["--images", "128", "--groups", "2", "--samples", "16", "--epochs", "1"],
    "bench_executors.py": ["--seeds", "1", "--rates", "1", "--epochs", "1"],
    "bench_group_eval.py": ["--images", "256", "--groups", "2"],
    "bench_group_gradients.py": ["--images", "256", "--rounds", "1"],
    "bench_hvp.py": ["--width", "0.125", "--samples", "8", "--rounds", "2"],
    "bench_prune_masks.py": ["--model", "cnn", "--rounds", "1"],
    "bench_train_step.py": ["--images", "256"],
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=None, help="substrings of script names to run")
    ap.add_argument("--quick", action="store_true", help="each script at its smallest sizes (checks it runs)")
    args = ap.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        unknown = [o for o in args.only if not any(o in s.name for s in scripts)]
        if unknown:
            ap.error(f"--only {' '.join(unknown)}: no benchmark script matches; the scripts: "
                     f"{', '.join(s.name for s in scripts)}")
        scripts = [s for s in scripts if any(o in s.name for o in args.only)]
    failed = 0
    for script in scripts:
        extra = QUICK.get(script.name, []) if args.quick else []
        print(f"== {script.name} {' '.join(extra)}".rstrip(), flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script), *extra], cwd=HERE, text=True, capture_output=True)
        print(proc.stdout, end="")
        if proc.returncode:
            failed += 1
            print(proc.stderr[-2000:], end="")
        print(f"   ({time.perf_counter() - t0:.0f} s, exit {proc.returncode})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
