"""Run every CPU benchmark script in this folder, one after another, and print their ratio lines.

Usage: python benchmarks/run_all.py [--only NAME ...]   (each bench_*.py also runs on its own)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=None, help="substrings of script names to run")
    args = ap.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if any(o in s.name for o in args.only)]
    failed = 0
    for script in scripts:
        print(f"== {script.name}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script)], cwd=HERE, text=True, capture_output=True)
        print(proc.stdout, end="")
        if proc.returncode:
            failed += 1
            print(proc.stderr[-2000:], end="")
        print(f"   ({time.perf_counter() - t0:.0f} s, exit {proc.returncode})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
