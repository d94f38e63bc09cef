"""How well `prunefair diagnose`'s ranking predicts which group pruning harms, from a study folder's cell results.

`diagnose` ranks a dense model's groups by the Theorem 1 bound ||g_a|| d + 1/2 lambda(H_a) d^2 at d, the norm of
the weights one-shot pruning would remove (the `distance_oneshot` a pruned cell stores; the same number). This
script recomputes that ranking from the dense cells' stored diagnostics and compares it, per seed and rate, with
what happened to the pruned cells of the study: the Spearman rho across groups between the predicted harm and the
actual test accuracy drop (Delta_a) or excess loss (R(a)), and whether the group ranked first is the one that lost
most. The gradient norm alone and lambda(H_a) alone are shown beside the bound. The numbers quoted in
docs/results.md ("Does `prunefair diagnose` predict ...") come from:

    .venv/bin/python docs/studies/diagnose_quality.py runs/e1_utkface_ethnicity
    .venv/bin/python docs/studies/diagnose_quality.py runs/e1_cifar10
    .venv/bin/python docs/studies/diagnose_quality.py runs/demo

Options: --split (default test), --stage finetuned (the fine-tuned model, default) or oneshot (right after pruning),
--method (default nft).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats


def cells(folder: Path) -> dict[str, dict]:
    out = {}
    for f in sorted(folder.glob("cells/*/result.json")):
        r = json.loads(f.read_text())
        if r.get("status", "done") == "done" and "metrics" in r:
            out[r["name"]] = r
    if not out:
        raise SystemExit(f"{folder}: no finished cells/*/result.json")
    return out


def rho(x, y) -> float:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--split", default="test")
    ap.add_argument("--stage", default="finetuned", choices=["finetuned", "oneshot"])
    ap.add_argument("--method", default="nft")
    a = ap.parse_args()
    cs = cells(a.folder)
    rows = []
    for c in cs.values():
        if c.get("kind") != "prune" or c.get("method") != a.method:
            continue
        dense = cs.get(c["dense"])
        if dense is None or "diagnostics" not in dense:
            continue
        dg = dense["diagnostics"]
        names = dg["group_names"]
        g, lam = np.asarray(dg["grad_norm"], float), np.asarray(dg["hessian_top_eigenvalue"], float)
        d = c["distance_oneshot"]
        bound = g * d + 0.5 * lam * d ** 2
        p = (c["metrics"] if a.stage == "finetuned" else c["oneshot"])[a.split]
        q = dense["metrics"][a.split]
        ip = [p["group_names"].index(n) for n in names]
        iq = [q["group_names"].index(n) for n in names]
        cnt_p, cnt_q = np.asarray(p["count"], float)[ip], np.asarray(q["count"], float)[iq]
        drop = np.asarray(q["correct"], float)[iq] / cnt_q - np.asarray(p["correct"], float)[ip] / cnt_p
        excess = np.asarray(p["loss_sum"], float)[ip] / cnt_p - np.asarray(q["loss_sum"], float)[iq] / cnt_q
        top = names[int(np.argmax(bound))]
        most = [names[i] for i in np.flatnonzero(drop == drop.max())]
        rows.append((c["rate"], c["seed"], rho(bound, drop), rho(g, drop), rho(lam, drop), rho(bound, excess),
                     rho(g, excess), top, most, float((0.5 * lam * d ** 2 / bound).min())))
    if not rows:
        raise SystemExit(f"{a.folder}: no {a.method} cell whose dense cell has diagnostics")
    print(f"{a.folder} ({a.stage}, {a.split}): Spearman rho across {len(names)} groups, predicted harm vs actual")
    print("rate  seed  bound~drop  |g|~drop  lambda~drop  bound~R  |g|~R  ranked first  lost most        curvature share")
    for r in sorted(rows):
        print(f"{r[0]:<5g} {r[1]:<5d} {r[2]:+10.2f} {r[3]:+9.2f} {r[4]:+12.2f} {r[5]:+8.2f} {r[6]:+6.2f}  "
              f"{r[7]:<13s} {'/'.join(r[8]):<16s} >= {r[9]:.3f}")
    print("mean over seeds:")
    for rate in sorted({r[0] for r in rows}):
        sel = [r for r in rows if r[0] == rate]
        m = [np.mean(v) if (v := [r[k] for r in sel if r[k] == r[k]]) else float("nan") for k in (2, 3, 4, 5, 6)]
        hits = sum(r[7] in r[8] for r in sel)
        print(f"  {rate:g}: bound~drop {m[0]:+.2f}, |g|~drop {m[1]:+.2f}, lambda~drop {m[2]:+.2f}, bound~R {m[3]:+.2f}, "
              f"|g|~R {m[4]:+.2f}; the group ranked first lost most on {hits} of {len(sel)} seeds")


if __name__ == "__main__":
    main()
