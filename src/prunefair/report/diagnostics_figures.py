"""The paper's Figures 12-13 and the diagnostics tables of a study, from the stored results alone.

- ``diagnostics.csv``: a row per (seed, group): every diagnostic of the dense model (dense cell's "diagnostics");
- ``theorem1.csv``: a row per (seed, method, sparsity, stage, group): both terms of Theorem 1, the bound and R(a),
  with R(a) measured on the split the diagnostics were computed on and d = ||theta_bar - theta*|| of that cell;
- ``correlations.csv``: Spearman rho across groups of each diagnostic vs the accuracy drop and R(a), mean and
  confidence interval over seeds (none with one seed) and a permutation p-value;
- ``figures/fig12_gradient_hessian.png``: per group, accuracy drop beside ||g_a|| and lambda(H_a);
- ``figures/fig13_boundary.png``: per group, accuracy drop beside the distance to the decision boundary.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from prunefair.diagnostics import GroupDiagnostics, spearman_across_groups, theorem1_check  # noqa: E402
from prunefair.study import StudyResults  # noqa: E402
from prunefair.study.store import atomic_write_text  # noqa: E402
from prunefair.report.figures import main_split, method_order, study_methods  # noqa: E402
from prunefair.report.plotting import legend_outside, save_figure  # noqa: E402

DIAGNOSTIC_LABELS = {
    "grad_norm": "gradient norm ‖g_a‖",
    "hessian_top_eigenvalue": "Hessian top eigenvalue λ(H_a)",
    "hessian_trace": "Hessian trace tr(H_a)",
    "gini": "closeness to boundary 1 − Σ p_c²",
    "f_one_minus_f": "closeness to boundary f(1 − f)",
    "margin": "logit margin z_y − max z_c",
}


def stored_diagnostics(results: StudyResults) -> dict[int, GroupDiagnostics]:
    """seed -> the dense model's diagnostics, for the dense cells that carry them."""
    out = {}
    for r in results.cells:
        d = r.get("diagnostics")
        if r.get("kind") == "dense" and isinstance(d, dict) and "grad_norm" in d:
            try:
                out[int(r["seed"])] = diag = GroupDiagnostics.from_dict(d)
                diag.frame()  # per-group lists of different lengths fail here, not in a later table
            except (KeyError, TypeError, ValueError) as exc:  # a hand-edited or damaged result.json: name it
                where = f"cells/{r.get('name', '?')}/result.json"
                raise ValueError(f"{where}: its 'diagnostics' cannot be read ({type(exc).__name__}: {exc})") from None
    return out


def diagnostics_frame(results: StudyResults) -> pd.DataFrame:
    """A row per (seed, group): every per-group diagnostic, then the seed's Proposition 1 check (the same on each
    of its rows): the full-data gradient norm, how far the group gradients cancel (||sum_a |D_a| g_a|| over
    sum_a |D_a| ||g_a||) and the identity's relative error against a plain full-data pass."""
    frames = []
    for seed, d in sorted(stored_diagnostics(results).items()):
        f = d.frame()
        f.insert(0, "group_id", np.arange(len(f)))
        f.insert(0, "split", d.split)
        f.insert(0, "seed", seed)
        f["full_grad_norm"], f["cancellation"] = d.full_grad_norm, d.cancellation
        f["prop1_error"] = np.nan if d.prop1_error is None else d.prop1_error
        frames.append(f)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def theorem1_frame(results: StudyResults) -> pd.DataFrame:
    """Theorem 1 per (seed, method, sparsity, stage, group), from the dense diagnostics and each cell's distance."""
    diags = stored_diagnostics(results)
    bg = results.by_group
    frames = []
    for r in results.cells:
        d = diags.get(int(r.get("seed", -1)))
        if r.get("kind") != "prune" or d is None or bg.empty:
            continue
        for stage, key in (("oneshot", "distance_oneshot"), ("finetuned", "distance")):
            rows = bg[(bg.seed == r["seed"]) & (bg.method == r["method"]) & (bg.sparsity == float(r["rate"]))
                      & (bg.stage == stage) & (bg.split == d.split)].sort_values("group_id")
            if len(rows) != len(d.group_names) or r.get(key) is None:
                continue
            rate = float(r["rate"])
            check = theorem1_check(group_names=d.group_names, grad_norm=d.grad_norm,
                                   hessian_top=d.hessian_top_eigenvalue, distances={rate: float(r[key])},
                                   excess_loss={rate: rows.excess_loss.to_numpy(float)})
            frames.append(check.table.assign(seed=r["seed"], method=r["method"], stage=stage, split=d.split))
    if not frames:
        return pd.DataFrame()
    t = pd.concat(frames, ignore_index=True)
    first = ["seed", "method", "rate", "stage", "split", "group_id", "group"]
    return t[first + [c for c in t.columns if c not in first]].sort_values(first[:4] + ["group_id"], kind="stable")


def correlation_frame(results: StudyResults, *, split: str | None = None) -> pd.DataFrame:
    """Spearman rho across groups, CI over seeds, per (method, sparsity, stage, diagnostic, outcome)."""
    diags = stored_diagnostics(results)
    bg = results.by_group
    if not diags or bg.empty:
        return pd.DataFrame()
    split = split or main_split(results)  # as the report reads it: test, else val, else train
    pruned = bg[(bg.stage != "dense") & (bg.split == split)]
    seeds = sorted(diags)
    rows = []
    for (method, rate, stage), sub in pruned.groupby(["method", "sparsity", "stage"]):
        by_seed = {s: t.sort_values("group_id") for s, t in sub.groupby("seed")}
        present = [s for s in seeds if s in by_seed]
        ys = {outcome: np.array([by_seed[s][outcome].to_numpy(float) for s in present])
              for outcome in ("accuracy_drop", "excess_loss")}
        for name in DIAGNOSTIC_LABELS:
            x = np.array([getattr(diags[s], name) for s in present], float)
            if x.size == 0 or not np.isfinite(x).any():
                continue
            for outcome, y in ys.items():
                if y.shape != x.shape:
                    continue
                c = spearman_across_groups(x, y)
                rows.append({"method": method, "sparsity": rate, "stage": stage, "split": split, "diagnostic": name,
                             "outcome": outcome, **c.to_dict()})
    return pd.DataFrame(rows)


def rho_text(row) -> str:
    """A correlation as the figure titles show it: '0.59 [0.21, 0.80]' with a 95% interval over seeds, else
    '0.59 (1 seed, p = 0.083)': one seed has no interval (a missing bound is never drawn as 'nan')."""
    text = f"{row['rho']:.2f}"
    lo, hi = float(row.get("low", np.nan)), float(row.get("high", np.nan))
    if np.isfinite(lo) and np.isfinite(hi):
        return f"{text} [{lo:.2f}, {hi:.2f}]"
    p = float(row.get("p_value", np.nan))
    seeds = int(row["n_seeds"]) if "n_seeds" in row and row["n_seeds"] == row["n_seeds"] else None
    why = [f"{seeds} seed{'' if seeds == 1 else 's'}" if seeds is not None else "no interval",
           *([f"p = {p:.2g}"] if np.isfinite(p) else [])]
    return f"{text} ({', '.join(why)})"


def _bars(ax, names, mean, std, title, color):
    pos = np.arange(len(names))
    ax.bar(pos, mean, yerr=std, color=color, capsize=2.5, alpha=0.85)
    ax.set_xticks(pos, names, rotation=45 if max(len(str(n)) for n in names) > 3 else 0, ha="right", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)


def _figure(results, diag: pd.DataFrame, columns: list[str], path: Path, title: str, *, rate: float | None,
            split: str, stage: str, corr: pd.DataFrame) -> Path | None:
    """Per group: the accuracy drop at each rate (up to the four highest; or ``rate``) beside each dense
    diagnostic, titled with its Spearman ρ against the drop at each of those rates. Showing every rate matters:
    at extreme sparsity a small model collapses onto a few classes and the ranking there is the collapse's."""
    bg = results.by_group
    pruned = bg[(bg.stage == stage) & (bg.split == split)]
    if diag.empty or pruned.empty:
        return None
    method = method_order(pruned.method.unique(), study_methods(results))[0]
    pruned = pruned[pruned.method == method]
    rates = [rate] if rate is not None else sorted(float(r) for r in pruned.sparsity.unique())[-4:]
    cols = [c for c in columns if c in diag.columns and diag[c].notna().any()]
    stats = diag.groupby(["group_id", "group"])[cols].agg(["mean", "std"])
    names = [g for _, g in stats.index]
    fig, axes = plt.subplots(1, 1 + len(cols), figsize=(3.8 * (1 + len(cols)), 3.2 + 0.25 * len(rates)),
                             squeeze=False)
    n_seeds = diag.seed.nunique()
    ax, pos, width = axes[0][0], np.arange(len(names)), 0.8 / len(rates)
    for i, r in enumerate(rates):
        drop = pruned[pruned.sparsity == r].groupby(["group_id", "group"])["accuracy_drop"].agg(["mean", "std"])
        drop = drop.reindex(stats.index)
        mean, std = drop["mean"].to_numpy(float) * 100, drop["std"].fillna(0).to_numpy(float) * 100
        # a drop lies in [-100, 100] points: the bars' +-std is cut there
        yerr = np.vstack([np.minimum(std, mean + 100), np.minimum(std, 100 - mean)]).clip(min=0)
        ax.bar(pos + (i - (len(rates) - 1) / 2) * width, mean, width, yerr=yerr,
               capsize=1.5, color=plt.cm.Reds(0.35 + 0.6 * (i + 1) / len(rates)), label=f"{r * 100:g}%")
    ax.set_xticks(pos, names, rotation=45 if max(len(str(n)) for n in names) > 3 else 0, ha="right", fontsize=8)
    ax.set_title(f"accuracy drop Δ_a ({method}, {stage})", fontsize=9)
    ax.set_ylabel("points (dense − pruned accuracy)", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    legend_outside(ax, fontsize=7, title="sparsity", title_fontsize=7)  # inside, it covered the tallest bars
    for ax, c, color in zip(axes[0][1:], cols, ["tab:blue", "tab:green", "tab:purple", "tab:orange"]):
        lines = []
        for r in rates if not corr.empty else []:
            m = corr[(corr.method == method) & (corr.sparsity == r) & (corr.stage == stage)
                     & (corr.diagnostic == c) & (corr.outcome == "accuracy_drop")]
            if len(m) and np.isfinite(m.rho.iloc[0]):
                lines.append(f"ρ vs Δ_a at {r * 100:g}%: {rho_text(m.iloc[0])}")
        _bars(ax, names, stats[(c, "mean")].to_numpy(), stats[(c, "std")].fillna(0).to_numpy(),
              "\n".join([f"{DIAGNOSTIC_LABELS.get(c, c)} (dense)", *lines]), color)
    fig.suptitle(f"{results.config.name}: {title} ({n_seeds} seed(s), diagnostics on {diag.split.iloc[0]}, "
                 f"drop on {split})", fontsize=10)
    return save_figure(fig, path, dpi=110)


def write_diagnostics_outputs(results: StudyResults, root: str | Path, *, rate: float | None = None,
                              stage: str = "finetuned") -> dict[str, Path]:
    """The diagnostics tables (CSV) and Figures 12-13 (PNG), if the study's dense cells carry diagnostics."""
    root = Path(root)
    diag = diagnostics_frame(results)
    if diag.empty:
        return {}
    paths = {"diagnostics": root / "diagnostics.csv"}
    atomic_write_text(paths["diagnostics"], diag.to_csv(index=False))
    corr = correlation_frame(results)
    for name, frame in (("theorem1", theorem1_frame(results)), ("correlations", corr)):
        if not frame.empty:  # none when, e.g., the diagnostics' split was not evaluated (the report says why)
            paths[name] = root / f"{name}.csv"
            atomic_write_text(paths[name], frame.to_csv(index=False))
    if results.by_group.empty:
        return paths
    split = main_split(results)
    if not corr.empty and split not in set(corr.split):
        corr = correlation_frame(results, split=split)
    figs = {
        "fig12_gradient_hessian": _figure(results, diag, ["grad_norm", "hessian_top_eigenvalue"],
                                          root / "figures" / "fig12_gradient_hessian.png",
                                          "gradient norm and Hessian top eigenvalue per group (as in Figs. 12-13)",
                                          rate=rate, split=split, stage=stage, corr=corr),
        "fig13_boundary": _figure(results, diag, ["f_one_minus_f", "gini", "margin"],
                                  root / "figures" / "fig13_boundary.png",
                                  "distance to the decision boundary per group (as in Figs. 12-13)",
                                  rate=rate, split=split, stage=stage, corr=corr),
    }
    paths.update({k: p for k, p in figs.items() if p is not None})
    return paths
