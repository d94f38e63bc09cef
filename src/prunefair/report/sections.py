"""The report's sections. Each renderer takes the study's tables and returns escaped HTML (``Html``).

Optional sections appear only when their data exist: diagnostics (dense cells' ``diagnostics``), the
Theorem 1 check and correlations (diagnostics plus pruned cells), mitigation (more than one fine-tuning
method), group size (``group_size`` DataFrame: columns factor, group, grad_norm, optional seed/upsampled).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from prunefair.report import explain
from prunefair.report.figures import SPLIT_ORDER, main_split, method_order, study_methods
from prunefair.report.html import Html, details, esc, figure, interval, para, section, table
from prunefair.report.stats import Interval, interval_table

ACC = (0.0, 1.0)  # accuracies and their gaps live in [0, 1]: intervals are clipped to it
BOUNDS = {"acc_pruned": ACC, "accuracy_gap_pruned": ACC, "max_psi": (0.0, 1.0), "psi_pw": (0.0, 2.0),
          "accuracy_drop": (-1.0, 1.0), "achieved_sparsity": ACC, "xi": (0.0, float("inf")),
          "distance": (0.0, float("inf"))}
GROUP_COLS = ["acc_dense", "acc_pruned", "accuracy_drop", "excess_loss", "psi", "normalized_accuracy"]
MEASURES = [  # (column, label, scale, digits)
    ("achieved_sparsity", "achieved sparsity (%)", 100, 2), ("distance", "‖θ̄ − θ*‖", 1, 2),
    ("acc_pruned", "accuracy (%)", 100, 1), ("accuracy_drop", "drop Δ (pts)", 100, 1),
    ("accuracy_gap_pruned", "accuracy gap (pts)", 100, 1), ("max_psi", "max ψ (pts)", 100, 1),
    ("psi_pw", "Ψ_PW (pts)", 100, 1), ("xi", "ξ (loss gap)", 1, 3),
]


def _iv(row, col: str) -> Interval:
    if row is None:
        return Interval(float("nan"), float("nan"), float("nan"), float("nan"), 0)
    n = row.get(f"{col}_n", row["n"])  # the seeds with a finite value of this column
    return Interval(row[f"{col}_mean"], row[f"{col}_std"], row[f"{col}_lo"], row[f"{col}_hi"], int(n))


def _oneshot_shared(bg: pd.DataFrame, methods: list) -> bool:
    """Whether every method's one-shot rows (per seed, rate, split, group) hold the same numbers."""
    one = bg[bg.stage == "oneshot"]
    if len(methods) < 2 or one.empty:
        return False
    keys, cols = ["seed", "sparsity", "split", "group_id"], ["acc_pruned", "loss_pruned"]
    frames = [one[one.method == m].sort_values(keys)[keys + cols].reset_index(drop=True) for m in methods]
    return all(len(f) and f.equals(frames[0]) for f in frames)


@dataclass
class Context:
    """Tables computed once from a StudyResults and shared by the sections and the narrative."""

    groups: dict = field(default_factory=dict)     # (method, rate, stage, split, gid) -> row
    measures: dict = field(default_factory=dict)   # (method, rate, stage, split) -> row
    names: list = field(default_factory=list)      # [(gid, group name)]
    methods: list = field(default_factory=list)
    rates: list = field(default_factory=list)
    splits: list = field(default_factory=list)
    main_split: str = "test"
    diag: pd.DataFrame = field(default_factory=pd.DataFrame)
    theorem1: pd.DataFrame = field(default_factory=pd.DataFrame)
    corr: pd.DataFrame = field(default_factory=pd.DataFrame)
    multipliers: pd.DataFrame = field(default_factory=pd.DataFrame)
    group_size: pd.DataFrame = field(default_factory=pd.DataFrame)
    figures: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)     # optional tables that could not be read
    oneshot_shared: bool = False                   # every method's one-shot models are the same ones

    def oneshot_methods(self) -> list:
        """The methods whose one-shot tables the report shows: the first alone when they all share the same
        one-shot models (one dense model and one mask per seed and rate: the usual case), else each."""
        return self.methods[:1] if self.oneshot_shared else self.methods

    def oneshot_label(self, method: str) -> str:
        return "every method (one dense model and mask per seed and rate)" if self.oneshot_shared else method

    @classmethod
    def build(cls, results, figures: dict | None = None, group_size: pd.DataFrame | None = None) -> "Context":
        ctx = cls(figures=dict(figures or {}))
        bg, ms = results.by_group, results.measures
        if not bg.empty:
            gi = interval_table(bg, ["method", "sparsity", "stage", "split", "group_id", "group"], GROUP_COLS)
            ctx.groups = {(r["method"], r["sparsity"], r["stage"], r["split"], r["group_id"]): r
                          for _, r in gi.iterrows()}
            ctx.names = list(bg[["group_id", "group"]].drop_duplicates("group_id").itertuples(index=False))
            cols = [c for c in ms.columns if c not in ("seed", "method", "sparsity", "stage", "split")]
            mi = interval_table(ms, ["method", "sparsity", "stage", "split"], cols)
            ctx.measures = {(r["method"], r["sparsity"], r["stage"], r["split"]): r for _, r in mi.iterrows()}
            found = set(bg.method) - {"dense"}
            ctx.methods = method_order(found, study_methods(results))
            ctx.rates = sorted(set(bg.sparsity) - {0.0})
            ctx.splits = [s for s in SPLIT_ORDER if s in set(bg.split)]
            ctx.main_split = main_split(results)
            ctx.oneshot_shared = _oneshot_shared(bg, ctx.methods)
        ctx.diag = ctx._safe("diagnostics", explain.diagnostics_table, results.cells)
        if not ctx.diag.empty:
            ctx.theorem1 = ctx._safe("Theorem 1 check", explain.theorem1_table, results, ctx.diag)
            ctx.corr = ctx._safe("correlations", explain.correlation_table, results, ctx.diag)
        ctx.multipliers = ctx._safe("dual multipliers", explain.multiplier_table, results.cells)
        ctx.group_size = group_size if group_size is not None else pd.DataFrame()
        return ctx

    def _safe(self, what: str, fn, *args) -> pd.DataFrame:
        """A table of an optional section, or an empty one plus an error shown in the report."""
        try:
            return fn(*args)
        except Exception as exc:  # stored data in a shape this report does not read
            self.errors.append(f"{what}: {type(exc).__name__}: {exc}")
            return pd.DataFrame()

    def g(self, method, rate, stage, split, gid, col) -> Interval:
        if stage == "dense":
            method, rate = "dense", 0.0
        return _iv(self.groups.get((method, rate, stage, split, gid)), col)

    def m(self, method, rate, stage, split, col) -> Interval:
        if stage == "dense":
            method, rate = "dense", 0.0
        return _iv(self.measures.get((method, rate, stage, split)), col)

    def take_figures(self, *prefixes: str) -> list[tuple[str, Path]]:
        """Remove and return the figures whose name starts with one of ``prefixes``."""
        out = [(k, p) for k, p in self.figures.items() if k.startswith(prefixes) and Path(p).is_file()]
        for k, _ in out:
            self.figures.pop(k)
        return out


def rate_label(r: float) -> str:
    return "dense" if r == 0 else f"{r * 100:g}%"


def _tint(drop: float) -> str:
    """A background tint proportional to an accuracy drop in points (red) or gain (green)."""
    if drop != drop or abs(drop) < 0.5:
        return ""
    a = min(0.45, abs(drop) / 60)
    rgb = "214,40,40" if drop > 0 else "18,183,106"
    return f' style="background:rgba({rgb},{a:.2f})"'


def group_accuracy_table(ctx: Context, results, *, method: str, split: str, stage: str = "finetuned") -> Html:
    group = results.config.data.group
    header = [group, "n", "dense", *[rate_label(r) for r in ctx.rates]]
    rows, attrs, classes = [], {}, []
    counts = results.by_group[results.by_group.split == split].groupby("group_id")["n"].first()
    for i, (gid, name) in enumerate(ctx.names):
        dense = ctx.g(method, 0, "dense", split, gid, "acc_dense")
        row = [name, int(counts.get(gid, 0)), interval(dense, bounds=ACC)]
        for j, r in enumerate(ctx.rates):
            row.append(interval(ctx.g(method, r, stage, split, gid, "acc_pruned"), bounds=ACC))
            attrs[(i, 3 + j)] = _tint(ctx.g(method, r, stage, split, gid, "accuracy_drop").mean * 100)
        rows.append(row)
        classes.append("")
    for k, (col, lab, scale, digits) in enumerate([("acc_pruned", "overall accuracy", 100, 1),
                                                   ("accuracy_gap_pruned", "accuracy gap (pts)", 100, 1),
                                                   ("max_psi", "max ψ (pts)", 100, 1), ("xi", "ξ (loss gap)", 1, 3)]):
        dense = interval(ctx.m(method, 0, "dense", split, col), scale=scale, digits=digits, bounds=BOUNDS[col]) \
            if col in ("acc_pruned", "accuracy_gap_pruned") else "–"
        rows.append([lab, "", dense, *[interval(ctx.m(method, r, stage, split, col), scale=scale, digits=digits,
                                                bounds=BOUNDS[col]) for r in ctx.rates]])
        classes.append("sum sep" if k == 0 else "sum")
    cap = (f"{split} accuracy per {group} (%), {method}, {stage}: mean ± std over seeds, 95% CI below; "
           "red tint = accuracy lost vs dense, green = gained")
    return table(header, rows, caption=cap, row_classes=classes, cell_attrs=attrs)


def normalized_accuracy_table(ctx: Context, results, *, method: str, split: str) -> Html:
    """Each group's pruned accuracy divided by its dense accuracy (the paper's normalised accuracy), per rate."""
    rows = [[name, *[interval(ctx.g(method, r, "finetuned", split, gid, "normalized_accuracy"), scale=1, digits=3,
                              bounds=(0.0, float("inf"))) for r in ctx.rates]] for gid, name in ctx.names]
    return table([results.config.data.group, *[rate_label(r) for r in ctx.rates]], rows,
                 caption=f"{split} normalised accuracy acc_a(pruned) / acc_a(dense), {method}, after fine-tuning: "
                         "mean ± std over seeds, 95% CI below (1 = no loss)")


def accuracy_section(ctx: Context, results) -> Html:
    seeds = int(results.measures.seed.nunique()) if not results.measures.empty else 0
    spread = f"mean ± std over {seeds} seeds" if seeds > 1 else "one seed: no error bars"
    parts = [figure(p, f"Figure 1: per-{results.config.data.group} {ctx.main_split} accuracy against the pruning "
                       f"rate ({spread}; {k}.png)") for k, p in ctx.take_figures("fig1_")]
    if not ctx.methods:  # only dense cells finished (every pruning cell failed or is pending)
        parts.append(para("No pruning cell has finished: the dense model's accuracies only (see Failed cells).",
                          "note"))
        parts.append(group_accuracy_table(ctx, results, method="dense", split=ctx.main_split))
    for i, method in enumerate(ctx.methods):
        main = group_accuracy_table(ctx, results, method=method, split=ctx.main_split)
        parts.append(main if i == 0 else details(f"{method}: {ctx.main_split} split, after fine-tuning", main))
        parts.append(details(f"{method}: normalised accuracy, {ctx.main_split}",
                             normalized_accuracy_table(ctx, results, method=method, split=ctx.main_split)))
        if method in ctx.oneshot_methods():
            parts.append(details(f"{ctx.oneshot_label(method)}: one-shot (before fine-tuning), {ctx.main_split}",
                                 group_accuracy_table(ctx, results, method=method, split=ctx.main_split,
                                                      stage="oneshot")))
        for split in ctx.splits[1:]:
            parts.append(details(f"{method}: {split} split",
                                 group_accuracy_table(ctx, results, method=method, split=split)))
    return section("accuracy", "Per-group accuracy", *parts)


def measures_table(ctx: Context, *, method: str, split: str, stage: str) -> Html:
    header = ["rate", *[lab for _, lab, _, _ in MEASURES]]
    rows = []
    for r in [0.0, *ctx.rates]:
        st = "dense" if r == 0 else stage
        rows.append([rate_label(r), *[interval(ctx.m(method, r, st, split, c), scale=s, digits=d, bounds=BOUNDS[c])
                                      if r or c in ("acc_pruned", "accuracy_gap_pruned") else "–"
                                      for c, _, s, d in MEASURES]])
    return table(header, rows, caption=f"{method}, {stage}, {split}: mean ± std over seeds, 95% CI below")


def measures_section(ctx: Context, results) -> Html:
    parts = [para("Δ = overall accuracy drop; accuracy gap = best minus worst group; ψ_a = Δ_a − Δ (a group's "
                  "excess drop, Balancing Act); Ψ_PW = max ψ − min ψ; ξ = max R(a) − min R(a), with "
                  "R(a) = J_a(pruned) − J_a(dense) the excess loss (Tran et al.).", "note")]
    for i, method in enumerate(ctx.methods):
        main = measures_table(ctx, method=method, split=ctx.main_split, stage="finetuned")
        parts.append(main if i == 0 else details(f"{method}: {ctx.main_split} split, after fine-tuning", main))
        if method in ctx.oneshot_methods():
            parts.append(details(f"{ctx.oneshot_label(method)}: one-shot (before fine-tuning)",
                                 measures_table(ctx, method=method, split=ctx.main_split, stage="oneshot")))
        for split in ctx.splits[1:]:
            parts.append(details(f"{method}: {split} split",
                                 measures_table(ctx, method=method, split=split, stage="finetuned")))
    layers = layer_sparsity_table(results)
    if layers is not None:
        parts.append(details("achieved sparsity per layer", layers))
    return section("measures", "Disparity measures per rate", *parts)


def layer_sparsity_table(results) -> Html | None:
    """Layers x rate: the share of each layer's weights the final masks zero (%), mean over seeds and methods (a
    global criterion prunes some layers far more than others; layer_sparsity.csv has every cell)."""
    ls = results.layer_sparsity()
    if ls.empty:
        return None
    mean = ls.groupby(["layer", "sparsity"], sort=False).achieved.mean().unstack("sparsity")
    rates = sorted(mean.columns)
    rows = [[layer, *[f"{mean.at[layer, r] * 100:.1f}" if mean.at[layer, r] == mean.at[layer, r] else "–"
                      for r in rates]] for layer in mean.index]
    return table(["layer", *[rate_label(r) for r in rates]], rows,
                 caption="achieved sparsity per layer (%), mean over seeds and methods")


def pending_sentence(results) -> str | None:
    """'1 of 6 planned cells is pending (s1_p0.9_nft) ...', with those holding results of other settings or data;
    None when every planned cell has a result."""
    pending = getattr(results, "pending", [])
    if not pending:
        return None
    n, planned = len(pending), getattr(results, "planned", 0) or len(pending)
    names = ", ".join(pending[:5]) + (f" and {n - 5} more" if n > 5 else "")
    why = []
    if k := len(getattr(results, "other_settings", [])):
        why.append(f"{k} of them hold a result of other settings than config.toml (edited after it ran?)")
    if k := len(getattr(results, "other_data", [])):
        why.append(f"{k} of them a result computed on other data than data.json records")
    return (f"{n} of {planned} planned cells {'is' if n == 1 else 'are'} pending ({names}) and missing from these "
            f"numbers{'; ' + '; '.join(why) if why else ''}: rerun the study to finish "
            f"{'it' if n == 1 else 'them'} (prunefair status shows whether a study is running).")


def failed_title(results) -> str:
    """The last section's title: it lists failed cells, and pending ones when there are any."""
    return "Failed and pending cells" if getattr(results, "pending", []) else "Failed cells"


def failed_section(results) -> Html:
    total = len(results.cells) + len(results.failed)
    pending = [para(s, "note")] if (s := pending_sentence(results)) else []
    if not results.failed:
        done = para(f"All {total} stored cells of this configuration finished.") if total else \
            para("No cell of this configuration has a stored result yet.")
        return section("failed", failed_title(results), done, *pending)
    rows = [[r.get("name", "?"), r.get("seed", ""), r.get("method", ""), r.get("rate", ""),
             Html(f"<span class=err>{esc(r.get('error', 'unknown error'))}</span>")] for r in results.failed]
    return section("failed", failed_title(results),
                   para(f"{len(results.failed)} of {total} cells failed; their numbers are missing from the "
                        "tables above. Rerun the study to retry them."),
                   table(["cell", "seed", "method", "rate", "error"], rows), *pending)


def _val(v) -> str:
    """A config value as the study file writes it (true, [0.5, 0.9], not set)."""
    if v is None:
        return "(not set)"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_val(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_val(x)}" for k, x in v.items()) + "}"
    return str(v)


def settings_section(results) -> Html:
    cfg = results.config.to_dict()
    top = {k: v for k, v in cfg.items() if not isinstance(v, dict)}
    blocks = [("study", top)] + [(k, v) for k, v in cfg.items() if isinstance(v, dict)]
    tables = "".join("<div>" + table(["key", "value"], [[k, _val(v)] for k, v in vals.items()], caption=f"[{name}]",
                                     cls="kv") + "</div>" for name, vals in blocks)
    toml = Html(f"<pre>{esc(results.config.to_toml())}</pre>")
    return section("settings", "Settings", para("The resolved configuration (config.toml of the study folder):"),
                   Html(f"<div class=kvgrid>{tables}</div>"), details("config.toml as stored", toml))


def other_figures_section(ctx: Context) -> Html | None:
    figs = ctx.take_figures("")
    if not figs:
        return None
    return section("figures", "Other figures", *[figure(p, f"{k}.png") for k, p in figs])


def all_sections(results, ctx: Context) -> list[tuple[str, str, Html]]:
    from prunefair.report import sections_extra as extra

    out = []
    if ctx.methods:
        out += [("accuracy", "Per-group accuracy", accuracy_section(ctx, results)),
                ("measures", "Disparity measures", measures_section(ctx, results))]
    elif ctx.names:
        out.append(("accuracy", "Per-group accuracy", accuracy_section(ctx, results)))
    for anchor, title, fn in [("diagnostics", "Diagnostics", extra.diagnostics_section),
                              ("theorem1", "Theorem 1 check", extra.theorem1_section),
                              ("correlations", "Correlations", extra.correlations_section),
                              ("mitigation", "Mitigation", extra.mitigation_section),
                              ("group-size", "Group size", extra.group_size_section)]:
        try:
            body = fn(ctx, results)
        except Exception as exc:  # a format this report does not know: say so, keep the rest of the report
            body = section(anchor, title, Html(f"<p class=err>This section could not be drawn from the stored data: "
                                               f"{esc(type(exc).__name__)}: {esc(exc)}</p>"))
        if body:
            out.append((anchor, title, body))
    if ctx.errors:
        out.append(("unread", "Unread data", section("unread", "Data this report could not read",
                                                     *[Html(f"<p class=err>{esc(e)}</p>") for e in ctx.errors])))
    other = other_figures_section(ctx)
    if other:
        out.append(("figures", "Other figures", other))
    out += [("failed", failed_title(results), failed_section(results)),
            ("settings", "Settings", settings_section(results))]
    return out
