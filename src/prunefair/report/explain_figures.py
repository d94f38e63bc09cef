"""Figures 12-13 of the paper from the store: each group's dense-model diagnostics beside its accuracy drop."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from prunefair.report.explain import label  # noqa: E402
from prunefair.report.figures import method_order, study_methods  # noqa: E402
from prunefair.report.plotting import save_figure  # noqa: E402


def figure_diagnostics(results, diag: pd.DataFrame, corr: pd.DataFrame, path: str | Path, *,
                       split: str = "test") -> Path | None:
    """Bars per group: accuracy drop at the highest rate, then each diagnostic (mean ± std over seeds),
    each panel titled with its Spearman rho against the drop (mean over seeds)."""
    bg = results.by_group
    pruned = bg[(bg.stage == "finetuned") & (bg.split == split)]
    if diag.empty or pruned.empty:
        return None
    method = method_order(pruned.method.unique(), study_methods(results))[0]
    rate = float(pruned.sparsity.max())
    drop = pruned[(pruned.method == method) & (pruned.sparsity == rate)].groupby(["group_id", "group"]).accuracy_drop
    drop = drop.agg(["mean", "std"]).fillna(0.0).reset_index().sort_values("group_id")
    dsplit = "train" if "train" in set(diag.split) else sorted(diag.split)[0]
    d = diag[diag.split == dsplit]
    names = list(dict.fromkeys(d.diagnostic))
    panels = 1 + len(names)
    ncols = min(3, panels)
    nrows = -(-panels // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.3 * nrows), squeeze=False)
    for ax in grid.flat[panels:]:
        ax.set_visible(False)
    axes = [list(grid.flat[:panels])]
    x = np.arange(len(drop))
    ticks = [str(g) for g in drop.group]
    ax = axes[0][0]
    ax.bar(x, drop["mean"] * 100, yerr=drop["std"] * 100, color="#d62828", alpha=0.8, capsize=2)
    ax.set_title(f"accuracy drop at {rate * 100:g}% ({method}, {split})", fontsize=9)
    ax.set_ylabel("points")
    for ax, name in zip(axes[0][1:], names):
        s = d[d.diagnostic == name].groupby("group_id").value.agg(["mean", "std"]).fillna(0.0)
        s = s.reindex(drop.group_id)
        ax.bar(x, s["mean"], yerr=s["std"], color="#2f5dab", alpha=0.85, capsize=2)
        title = f"{label(name)} ({dsplit})"
        if not corr.empty:
            c = corr[(corr.method == method) & (corr.sparsity == rate) & (corr.stage == "finetuned") &
                     (corr.diagnostic == name) & (corr.outcome == "accuracy_drop")]
            if len(c) and np.isfinite(c.rho_mean.iloc[0]):
                title += f"\nSpearman ρ vs drop = {c.rho_mean.iloc[0]:.2f}"
        ax.set_title(title, fontsize=9)
    for ax in axes[0]:
        ax.set_xticks(x, ticks, rotation=45 if len(ticks) > 6 else 0, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{results.config.name}: per-{results.config.data.group} diagnostics of the dense model",
                 fontsize=10)
    return save_figure(fig, path, dpi=110)
