"""The paper's figures, drawn from a StudyResults (and so regenerable from the saved store)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from prunefair.study import StudyResults  # noqa: E402
from prunefair.report.plotting import group_style, save_figure  # noqa: E402


SPLIT_ORDER = ("test", "val", "train")  # the order the report reads the evaluated splits in


def main_split(results: StudyResults) -> str:
    """The split the report reads first: test if evaluated, else val, else train."""
    splits = set(results.by_group.split) if not results.by_group.empty else set()
    return next((s for s in SPLIT_ORDER if s in splits), "test")


KNOWN_METHODS = ("nft", "el", "el_rb", "ceag", "vkd")  # the order of methods a study file does not list


def study_methods(results: StudyResults) -> list[str]:
    """The methods in the order the study file lists them (``finetune.methods``)."""
    config = getattr(results, "config", None)
    return list(getattr(getattr(config, "finetune", None), "methods", None) or [])


def method_order(methods, study_order=()) -> list[str]:
    """Plain fine-tuning (nft) first, then the study file's order (``study_order``), then the known methods in
    their usual order, then any other alphabetically: every table and figure of a report lists them alike."""
    order = [m for m in study_order if m != "nft"] + [m for m in KNOWN_METHODS if m not in study_order]
    return sorted(methods, key=lambda m: (m != "nft", order.index(m) if m in order else len(order), m))


def group_accuracy_curves(results: StudyResults, *, split: str = "test", stage: str = "finetuned") -> pd.DataFrame:
    """Mean and std over seeds of each group's accuracy at each sparsity (dense at 0), per method."""
    bg = results.by_group
    dense = bg[(bg.stage == "dense") & (bg.split == split)]
    pruned = bg[(bg.stage == stage) & (bg.split == split)]
    frames = []
    for method in method_order(pruned.method.unique(), study_methods(results)) or ["dense"]:
        sub = pd.concat([dense.assign(method=method), pruned[pruned.method == method]])
        sub = sub.assign(acc=sub.acc_pruned.where(sub.stage != "dense", sub.acc_dense))
        g = sub.groupby(["sparsity", "group_id", "group"])["acc"]
        frames.append(g.agg(["mean", "std", "count"]).reset_index().assign(method=method))
    return pd.concat(frames, ignore_index=True).fillna({"std": 0.0})


def figure_group_accuracy(results: StudyResults, path: str | Path, *, split: str | None = None,
                          stage: str = "finetuned") -> Path:
    """Figure 1 of the paper: each group's accuracy against the pruning rate, error bars over seeds, on ``split``
    (default: the report's main split, test if evaluated)."""
    split = split or main_split(results)
    curves = group_accuracy_curves(results, split=split, stage=stage)
    methods = list(curves.method.unique())
    cols = min(2, len(methods))  # two panels a row: a report page shows them at a readable size
    rows = math.ceil(len(methods) / cols)
    # one y scale for every panel: methods are compared side by side, and a panel drawn on its own scale would
    # make a smaller drop look as steep as a larger one
    fig, axes = plt.subplots(rows, cols, figsize=(6.4 * cols, 4.2 * rows), squeeze=False, sharey=True)
    for ax in axes.flat[len(methods):]:
        ax.set_visible(False)
    rates = sorted(curves.sparsity.unique())
    pos = {r: i for i, r in enumerate(rates)}
    n_groups = curves.group_id.nunique()
    for ax, method in zip(axes.flat, methods):
        c = curves[curves.method == method]
        for i, ((gid, name), sub) in enumerate(c.groupby(["group_id", "group"], sort=True)):
            sub = sub.sort_values("sparsity")
            ax.errorbar([pos[r] for r in sub.sparsity], sub["mean"] * 100, yerr=sub["std"] * 100, ms=3.5,
                        capsize=2.5, lw=1.3, label=str(name), **group_style(i, n_groups))
        ax.set_xticks(range(len(rates)), [f"{r * 100:g}%" if r else "dense" for r in rates])
        ax.set_xlabel("pruning rate")
        ax.set_ylabel(f"{split} accuracy (%)")
        ax.yaxis.set_tick_params(labelleft=True)  # shared scale, but each panel keeps its numbers
        n_seeds = int(c["count"].max()) if len(c) else 0
        spread = "mean ± std over" if n_seeds > 1 else "no error bars:"
        title = (f"{results.config.name}: per-group accuracy ({method}, {stage}; {spread} {n_seeds} "
                 f"seed{'' if n_seeds == 1 else 's'})")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(max(-2.0, ax.get_ylim()[0]), min(102.0, ax.get_ylim()[1]))
        ax.grid(alpha=0.3)
        ax.legend(title=results.config.data.group, fontsize=7, ncol=2 if c.group.nunique() > 5 else 1)
    return save_figure(fig, path, dpi=120)


def write_figures(results: StudyResults, root: str | Path) -> dict[str, Path]:
    root = Path(root) / "figures"
    return {"fig1_group_accuracy": figure_group_accuracy(results, root / "fig1_group_accuracy.png")}
