"""The group-size experiment (Figures 14-15, Prop. 1): one study per upsampling factor of one group
(``data.resample = {group, factor}``), each with its dense models' per-group gradient norms stored under
``diagnostics``; collected here into one table and one figure.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from prunefair.report.explain import diagnostics_table  # noqa: E402
from prunefair.report.plotting import group_style, legend_outside, save_figure  # noqa: E402

COLUMNS = ["factor", "upsampled", "seed", "group_id", "group", "grad_norm", "study"]


def group_size_table(study_dirs: list[str | Path]) -> pd.DataFrame:
    """A row per (study, seed, group): the upsampling factor of that study (1 without ``data.resample``), the
    upsampled group and each group's dense gradient norm. A folder without gradient norms, or one of another
    experiment (dataset, target, groups, model or upsampled group differ), is an error naming it."""
    from prunefair.study import StudyResults

    frames, seen = [], {}
    for d in study_dirs:
        res = StudyResults.from_store(d)
        rs = res.config.data.resample
        _check_same_experiment(seen, d, res.config)
        bad = [f"{r['name']}: {r.get('error')}" for r in res.failed if str(r.get("name", "")).endswith("_dense")]
        if bad:  # its gradient norms would be missing from the table, or blamed on the diagnostics
            raise ValueError(f"{d}: dense cell(s) failed or corrupt, their gradient norms are missing: "
                             + "; ".join(bad) + " (rerun the study)")
        diag = diagnostics_table(res.cells)
        diag = diag[diag.diagnostic == "grad_norm"]
        if diag.empty:
            raise ValueError(f"{d}: no per-group gradient norms stored in its dense cells (result.json "
                             "'diagnostics'); run the study with diagnostics first")
        split = "train" if "train" in set(diag.split) else sorted(diag.split)[0]
        diag = diag[diag.split == split]
        frames.append(diag.rename(columns={"value": "grad_norm"}).assign(
            factor=float(rs.factor) if rs else 1.0, upsampled=rs.group if rs else "", study=str(d)))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)[COLUMNS].sort_values(["factor", "seed", "group_id"], kind="stable")


def _check_same_experiment(seen: dict, study: str | Path, cfg) -> None:
    """``seen`` maps each field of the experiment to (value, the first study with it); a study with another
    value is an error naming both studies."""
    data, model, rs = cfg.data, cfg.model, cfg.data.resample
    fields = {"data.dataset": data.dataset, "data.target": data.target, "data.group": data.group,
              "model.name": model.name, "model.width": model.width, "data.resample.group": rs.group if rs else None}
    for key, value in fields.items():
        if value is None:  # the factor-1 study has no resample section
            continue
        want, other = seen.setdefault(key, (value, study))
        if value != want:
            raise ValueError(f"{study}: {key} = {value!r}, but {other} has {want!r}; the studies of one "
                             "group-size experiment differ only in the upsampling factor")


def figure_group_size(df: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """Each group's gradient norm against the upsampling factor (mean ± std over seeds); the upsampled group a dotted
    thick line, as in the paper's Figure 15."""
    df = df.assign(group=df.group.astype(str), upsampled=df.upsampled.fillna("").astype(str))  # "" read back as NaN
    up = {g for g in df.upsampled if g}
    s = df.groupby(["group_id", "group", "factor"]).grad_norm.agg(["mean", "std"]).fillna(0.0).reset_index()
    seeds = df.seed.nunique() if "seed" in df else 0
    spread = "one seed: no error bars" if seeds == 1 else f"mean ± std over {seeds} seeds"
    factors = sorted(s.factor.unique())
    pos = {f: i for i, f in enumerate(factors)}
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    n_groups = s.group_id.nunique()
    for i, ((gid, name), sub) in enumerate(s.groupby(["group_id", "group"], sort=True)):
        bold = name in up
        style = group_style(i, n_groups)  # distinct beyond 10 groups
        if bold:  # as the paper's Figure 15: the upsampled group a dotted thick line
            style = {**style, "linestyle": ":"}
        ax.errorbar([pos[f] for f in sub.factor], sub["mean"], yerr=sub["std"], ms=4 if bold else 3,
                    lw=2.6 if bold else 1.1, capsize=2, label=f"{name} (upsampled)" if bold else str(name),
                    zorder=3 if bold else 2, **style)
    ax.set_xticks(range(len(factors)), [f"{f:g}×" for f in factors])
    ax.set_xlabel("upsampling factor of " + (", ".join(sorted(up)) or "no group"))
    ax.set_ylabel("gradient norm ‖g_a‖ (dense, end of training)")
    ax.set_title(f"{title or 'group size vs gradient norm (Figures 14-15)'}\n({spread})", fontsize=10)
    ax.grid(alpha=0.3)
    legend_outside(ax, fontsize=7, ncol=2 if s.group.nunique() > 10 else 1)  # beside the lines, not over them
    return save_figure(fig, path, dpi=120)
