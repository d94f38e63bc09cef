"""Study executors and resuming, on digits: workers=2 against the sequential default, and a resume.

- baseline: the study run sequentially in this process (``[run] workers = 1``);
- prunefair workers: the same study with 2 spawned worker processes (dense cells first, then pruning cells);
- resume: rerunning the finished study (every cell skipped) against running it (target: < 0.05x).
The tables must be identical (checked). On a 2-core machine shared with other jobs, workers gain little:
each process imports torch and loads the data itself.

Usage: python benchmarks/bench_executors.py [--seeds 2] [--rates 4] [--epochs 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import machine, report
from prunefair import run_study


def study(out: Path, seeds: int, rates: int, epochs: int, workers: int) -> dict:
    return {"name": "bench", "seeds": list(range(seeds)), "output_dir": str(out),
            "model": {"name": "mlp", "width": 1.0}, "train": {"epochs": epochs},
            "prune": {"rates": [0.5, 0.7, 0.8, 0.9, 0.95, 0.98][:rates]}, "finetune": {"epochs": max(1, epochs // 3)},
            "run": {"workers": workers}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--rates", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        seq = run_study(study(Path(tmp, "seq"), args.seeds, args.rates, args.epochs, 1))
        t_seq = time.perf_counter() - t0
        t0 = time.perf_counter()
        par = run_study(study(Path(tmp, "par"), args.seeds, args.rates, args.epochs, 2))
        t_par = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_study(study(Path(tmp, "seq"), args.seeds, args.rates, args.epochs, 1))
        t_resume = time.perf_counter() - t0
        assert seq.by_group.equals(par.by_group), "workers=2 changed the table"
    cells = args.seeds * (1 + args.rates)
    report(f"study of {cells} cells, 2 workers vs sequential", t_par, t_seq, unit="s", target="< 1 on >= 4 free cores",
           higher_is_better=False)
    report("rerun of a finished study vs running it", t_resume, t_seq, unit="s", target="< 0.05",
           higher_is_better=False)


if __name__ == "__main__":
    main()
