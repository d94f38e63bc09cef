"""Paired differences between mitigation methods over seeds, from a study folder's cell results.

Each seed's methods share the dense model and the mask, so a difference is taken per seed and summarised as the
mean ± the half-width of its 95% t interval (n - 1 degrees of freedom); "beyond seed noise" when the interval
excludes 0. The numbers quoted in docs/mitigation.md's "Reading it" come from:

    .venv/bin/python docs/studies/paired_differences.py runs/mitigation-gpu/main
    .venv/bin/python docs/studies/paired_differences.py runs/mitigation-gpu/main --other runs/mitigation-gpu/abl1

With ``--other``, each method present in both folders is compared with itself (an ablation's variant against the
main run's); without it, every pair of methods in the folder.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

from scipy import stats


def cells(folder: Path) -> dict[str, dict]:
    out = {}
    for f in sorted(folder.glob("cells/*/result.json")):
        r = json.loads(f.read_text())
        if r.get("status", "done") == "done" and "metrics" in r:  # failed cells have no metrics
            out[r["name"]] = r
    if not out:
        raise SystemExit(f"{folder}: no cells/*/result.json")
    return out


def measures(cell: dict, dense: dict, split: str) -> dict[str, float]:
    """Overall accuracy, max psi and Psi_PW (percent) of a pruned cell against its dense model."""
    d, p = dense["metrics"][split], cell["metrics"][split]
    acc_d = [c / n if n else math.nan for c, n in zip(d["correct"], d["count"])]
    acc_p = [c / n if n else math.nan for c, n in zip(p["correct"], p["count"])]
    overall_d, overall_p = sum(d["correct"]) / sum(d["count"]), sum(p["correct"]) / sum(p["count"])
    psi = [(a - b) - (overall_d - overall_p) for a, b in zip(acc_d, acc_p) if a == a and b == b]  # groups seen
    return {"accuracy": 100 * overall_p, "max psi": 100 * max(psi), "Psi_PW": 100 * (max(psi) - min(psi))}


def summary(diffs: list[float]) -> str:
    n = len(diffs)
    mean = sum(diffs) / n
    if all(x == 0 for x in diffs):
        return "identical on every seed (the same cells)"
    if n < 2:
        return f"{mean:+.2f} (one seed)"
    sd = math.sqrt(sum((x - mean) ** 2 for x in diffs) / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    verdict = "beyond seed noise" if abs(mean) > half else "within seed noise"
    return f"{mean:+.2f} ± {half:.2f} ({verdict}; per seed {', '.join(f'{x:+.2f}' for x in diffs)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--other", type=Path, help="an ablation folder: compare each shared method with itself")
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    main_cells = cells(args.folder)
    other = cells(args.other) if args.other else None
    pruned = [c for c in main_cells.values() if c.get("kind") == "prune"]
    rates = sorted({c["rate"] for c in pruned})
    methods = sorted({c["method"] for c in pruned})
    seeds = sorted({c["seed"] for c in pruned})

    def value(source, seed, rate, method):
        cell = source.get(f"s{seed}_p{rate}_{method}")
        return None if cell is None else measures(cell, main_cells[cell["dense"]], args.split)

    for rate in rates:
        if other is None:
            pairs = [((main_cells, a), (main_cells, b), f"{a} - {b}") for a, b in itertools.combinations(methods, 2)]
        else:
            pairs = [((main_cells, m), (other, m), f"{m} ({args.folder.name}) - {m} ({args.other.name})")
                     for m in methods if any(c.get("method") == m for c in other.values())]
        for (sa, ma), (sb, mb), label in pairs:
            rows = [(value(sa, s, rate, ma), value(sb, s, rate, mb)) for s in seeds]
            rows = [(a, b) for a, b in rows if a and b]
            if not rows:
                continue
            for key in ("accuracy", "max psi", "Psi_PW"):
                print(f"{args.split} {rate:g} {label}: {key} {summary([a[key] - b[key] for a, b in rows])}")


if __name__ == "__main__":
    main()
