"""Mitigation outputs from a study's stored results: the comparison table and the dual-variable figures.

``mitigation_table``: per (sparsity, method, split), mean and std over seeds of accuracy, max psi,
Psi_PW, accuracy gap, xi and max_a |J_a - J| (the EL violation), and the share of seeds on which each
constraint holds: CEAG's ``max_psi <= eps`` and EL's ``max_a |J_a - J| <= el_tolerance``.
``mitigation_paired_table``: each method against plain fine-tuning (NFT) on the same seeds (they share the dense
model and the mask): the mean difference of accuracy, max psi and Psi_PW with its 95% t interval over seeds.
``figure_duals``: multipliers and violations per epoch (mean over seeds), one panel row per method.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from prunefair.study import StudyResults  # noqa: E402
from prunefair.study.store import atomic_write_text  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from prunefair.report.figures import method_order, study_methods  # noqa: E402
from prunefair.report.plotting import group_style, legend_outside, save_figure  # noqa: E402
from prunefair.report.stats import t_interval  # noqa: E402

MEASURES = ["acc_pruned", "max_psi", "psi_pw", "accuracy_gap_pruned", "xi", "loss_gap"]


def _method_rank(results: StudyResults, methods: pd.Series) -> dict[str, int]:
    """Each method's place in the report's order (``figures.method_order``)."""
    return {m: i for i, m in enumerate(method_order(methods.unique(), study_methods(results)))}


def mitigation_table(results: StudyResults) -> pd.DataFrame:
    m, bg = results.measures, results.by_group
    if m.empty:
        return pd.DataFrame()
    keys = ["seed", "method", "sparsity", "stage", "split"]
    fin = m[m.stage == "finetuned"].copy()
    b = bg[bg.stage == "finetuned"].merge(fin[keys + ["loss_pruned"]].rename(columns={"loss_pruned": "j"}), on=keys)
    b["gap"] = (b.loss_pruned - b.j).abs()
    fin = fin.merge(b.groupby(keys)["gap"].max().rename("loss_gap").reset_index(), on=keys)
    mit = results.config.mitigate
    fin["psi_holds"] = fin.max_psi <= mit.eps
    fin["el_holds"] = fin.loss_gap <= mit.el_tolerance
    g = fin.groupby(["sparsity", "method", "split"])
    out = g[MEASURES].mean().add_suffix("_mean").join(g[MEASURES].std(ddof=1).add_suffix("_std"))
    out = out.join(g[["psi_holds", "el_holds"]].mean().add_suffix("_share")).join(g.size().rename("seeds"))
    out = out.reset_index()
    out["_o"] = out.method.map(_method_rank(results, out.method))
    split_order = {"train": 0, "val": 1, "test": 2}
    out["_s"] = out.split.map(split_order).fillna(9)
    return out.sort_values(["sparsity", "_s", "_o", "method"]).drop(columns=["_o", "_s"]).reset_index(drop=True)


PAIRED = ["acc_pruned", "max_psi", "psi_pw"]


def mitigation_paired_table(results: StudyResults, *, reference: str = "nft",
                            confidence: float = 0.95) -> pd.DataFrame:
    """One row per (sparsity, split, method other than ``reference``): for each of accuracy, max psi and Psi_PW
    (fractions, after fine-tuning), the per-seed differences method - reference on the seeds both have
    (``<m>_per_seed``, a JSON list), their mean, the t interval over seeds (``<m>_lo``, ``<m>_hi``; NaN with one
    seed) and ``<m>_beyond_noise`` (the interval excludes 0). Empty without the reference method."""
    m = results.measures
    fin = m[m.stage == "finetuned"] if not m.empty else m
    if fin.empty or reference not in set(fin.method) or fin.method.nunique() < 2:
        return pd.DataFrame()
    ref = fin[fin.method == reference].set_index(["sparsity", "split", "seed"])
    rows = []
    for (sparsity, split, method), sub in fin[fin.method != reference].groupby(["sparsity", "split", "method"]):
        s = sub.set_index(["sparsity", "split", "seed"])
        common = s.index.intersection(ref.index)
        if common.empty:
            continue
        row = {"sparsity": sparsity, "split": split, "method": method, "reference": reference,
               "seeds": len(common)}
        for c in PAIRED:
            d = (s.loc[common, c] - ref.loc[common, c]).to_numpy(dtype=float)
            iv = t_interval(d, confidence=confidence)
            row.update({f"{c}_diff": iv.mean, f"{c}_lo": iv.lo, f"{c}_hi": iv.hi,
                        f"{c}_beyond_noise": iv.excludes_zero(), f"{c}_per_seed": json.dumps(d.tolist())})
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    out = pd.DataFrame(rows)
    out["_o"] = out.method.map(_method_rank(results, out.method))
    out["_s"] = out.split.map({"train": 0, "val": 1, "test": 2}).fillna(9)
    return out.sort_values(["sparsity", "_s", "_o", "method"]).drop(columns=["_o", "_s"]).reset_index(drop=True)


def mitigation_markdown(table: pd.DataFrame, *, split: str = "test") -> str:
    """The comparison table of one split as Markdown (percent, mean +- std over seeds)."""
    t = table[table.split == split]
    cols = [("acc_pruned", "accuracy"), ("max_psi", "max psi"), ("psi_pw", "Psi_PW"),
            ("accuracy_gap_pruned", "acc. gap"), ("xi", "xi"), ("loss_gap", "max|J_a-J|")]
    head = "| sparsity | method | " + " | ".join(c[1] for c in cols) + " | psi<=eps | EL tol | seeds |"
    lines = [head, "|" + "---|" * (len(cols) + 5)]
    for _, r in t.iterrows():
        vals = []
        for c, _ in cols:
            scale = 1.0 if c in ("xi", "loss_gap") else 100.0
            digits = 3 if scale == 1.0 else 2
            mean, std = r[f"{c}_mean"] * scale, r[f"{c}_std"] * scale
            vals.append(f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std == std else ""))  # one seed: no std
        lines.append(f"| {r.sparsity:g} | {r.method} | " + " | ".join(vals)
                     + f" | {r.psi_holds_share:.0%} | {r.el_holds_share:.0%} | {int(r.seeds)} |")
    return "\n".join(lines)


def dual_history(results: StudyResults) -> pd.DataFrame:
    """A row per (seed, method, sparsity, epoch, group) with the logged multiplier and violation. ``epoch`` is the
    1-based position in the cell's history, as ``selected_epoch`` is: under an iterative schedule each round numbers
    its epochs from 1 again, and the rounds' epochs are distinct points (they were merged, then averaged)."""
    rows = []
    for c in results.cells:
        if c.get("kind") != "prune":
            continue
        for position, rec in enumerate(c.get("history", []), start=1):
            lam, viol = rec.get("multipliers"), rec.get("violations")
            if lam is None:
                continue
            for a, (l, v) in enumerate(zip(lam, viol or [None] * len(lam))):
                rows.append({"seed": c["seed"], "method": c["method"], "sparsity": float(c["rate"]),
                             "epoch": position, "group_id": a, "multiplier": l,
                             "violation": np.nan if v is None else v, "val_max_psi": rec.get("val_max_psi")})
    return pd.DataFrame(rows)


# what each method's logged violation is (report/mitigation.py's dual_history; docs/mitigation.md)
VIOLATION = {"el": "\n|J_a − J| (train batches)", "el_rb": "\n|J_a − J| (buffers)", "ceag": "\nψ_a − ε (buffers)",
             "vkd": "\nψ_a − ε (val)"}


def figure_duals(results: StudyResults, path: str | Path, *, sparsity: float) -> Path | None:
    h = dual_history(results)
    if h.empty or not (h.sparsity == sparsity).any():
        return None
    h = h[h.sparsity == sparsity]
    methods = method_order(h.method.unique(), study_methods(results))
    bg = results.by_group  # the group names of whichever splits were evaluated
    names = dict(zip(bg.group_id, bg.group.astype(str))) if not bg.empty else {}
    fig, axes = plt.subplots(len(methods), 2, figsize=(11, 2.6 * len(methods)), squeeze=False)
    n_groups = h.group_id.nunique()
    order = {a: i for i, a in enumerate(sorted(h.group_id.unique()))}
    for row, method in zip(axes, methods):
        sub = h[h.method == method].groupby(["epoch", "group_id"])[["multiplier", "violation"]].mean().reset_index()
        for a, s in sub.groupby("group_id"):
            label, style = names.get(a, str(a)), group_style(order[a], n_groups)
            row[0].plot(s.epoch, s.multiplier, ms=3, label=label, **style)
            row[1].plot(s.epoch, s.violation, ms=3, label=label, **style)
        row[0].set_ylabel(f"{method}\nmultiplier")
        row[1].set_ylabel("violation" + VIOLATION.get(method, ""))
        row[1].axhline(0.0, color="k", lw=0.6)
        for ax in row:
            ax.grid(alpha=0.3)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    legend_outside(axes[0][1], fontsize=7)  # beside the panels: inside, it covered the lines
    fig.suptitle(f"{results.config.name}: multipliers and violations per epoch, sparsity {sparsity:g} "
                 "(mean over seeds)", fontsize=10)
    return save_figure(fig, path, dpi=110)


def write_mitigation_outputs(results: StudyResults, root: str | Path) -> dict[str, Path]:
    """mitigation.csv, mitigation_paired.csv (with NFT in the study) and figures/mitigation_duals_p<rate>.png when
    the study fine-tuned with a mitigation."""
    methods = set(results.measures.method.unique()) if not results.measures.empty else set()
    if not methods - {"dense", "nft"}:
        return {}
    root = Path(root)
    table = mitigation_table(results)
    paths = {"mitigation": root / "mitigation.csv"}
    atomic_write_text(paths["mitigation"], table.to_csv(index=False))
    paired = mitigation_paired_table(results)
    if not paired.empty:
        paths["mitigation_paired"] = root / "mitigation_paired.csv"
        atomic_write_text(paths["mitigation_paired"], paired.to_csv(index=False))
    for rate in sorted(table.sparsity.unique()):
        p = figure_duals(results, root / "figures" / f"mitigation_duals_p{rate:g}.png", sparsity=rate)
        if p is not None:
            paths[f"mitigation_duals_p{rate:g}"] = p
    return paths
