"""The per-group table printed at the end of a study (rich)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from prunefair.report.figures import main_split, method_order, study_methods
from prunefair.study import StudyResults


def _fmt(mean: float, std: float, scale: float = 100.0, digits: int = 1) -> str:
    if mean != mean:  # NaN
        return "-"
    if std != std:  # one seed (or a narrow terminal): no spread to show
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f}±{std * scale:.{digits}f}"


def group_table(results: StudyResults, *, split: str | None = None, method: str | None = None,
                spread: bool = True) -> Table:
    """Groups x sparsity: accuracy (%) mean±std over seeds, then the disparity measures, on ``split`` (default:
    test if evaluated, else val, else train). ``spread=False``: means only (for a narrow terminal)."""
    split = split or main_split(results)
    gs = results.group_summary()
    gs = gs[(gs.split == split)]
    methods = method_order((m for m in gs.method.unique() if m != "dense"), study_methods(results))
    method = method or (methods[0] if methods else "dense")
    dense = gs[gs.stage == "dense"]
    pruned = gs[(gs.stage == "finetuned") & (gs.method == method)]
    rates = sorted(pruned.sparsity.unique())
    n_seeds = results.measures.seed.nunique()
    fmt = _fmt if spread else (lambda mean, std, *a: _fmt(mean, float("nan"), *a))
    spread = "one seed" if n_seeds == 1 else f"mean±std over {n_seeds} seeds" if spread else \
        f"mean over {n_seeds} seeds (std in summary.csv)"
    summ = results.summary()
    summ = summ[(summ.split == split)]
    sd = summ[summ.stage == "dense"]
    sp = summ[(summ.stage == "finetuned") & (summ.method == method)]
    # a column over fewer seeds than the title says (a cell failed or pending): marked, and said below the table
    seeds = {"dense": int(sd.seeds.iloc[0]) if len(sd) else 0,
             **{f"{r * 100:g}%": int(sp[sp.sparsity == r].seeds.iloc[0]) if (sp.sparsity == r).any() else 0
                for r in rates}}
    fewer = {c: n for c, n in seeds.items() if n < n_seeds}
    caption = "; ".join(f"{c}: {n} of {n_seeds} seeds" for c, n in fewer.items()) if n_seeds > 1 else ""
    table = Table(box=box.SIMPLE_HEAD,
                  title=f"{results.config.name}: {split} accuracy per {results.config.data.group} (%), {method}, "
                        f"{spread}",
                  caption=f"* {caption} (cells failed or pending)" if caption else None)
    table.add_column(results.config.data.group, overflow="fold")
    for c in seeds:
        table.add_column(f"{c}*" if c in fewer and caption else c, justify="right", overflow="fold")
    for _, row in dense.iterrows():
        cells = [fmt(row.acc_dense_mean, row.acc_dense_std)]
        for r in rates:
            p = pruned[(pruned.sparsity == r) & (pruned.group == row.group)]
            cells.append(fmt(p.acc_pruned_mean.iloc[0], p.acc_pruned_std.iloc[0]) if len(p) else "-")
        table.add_row(str(row.group), *cells)
    table.add_section()
    for label, col, scale in [("overall acc", "acc_pruned", 100), ("acc gap", "accuracy_gap_pruned", 100),
                              ("max psi", "max_psi", 100), ("Psi_PW", "psi_pw", 100), ("xi (loss gap)", "xi", 1)]:
        dense_cell = "-"
        if len(sd) and col in ("acc_pruned", "accuracy_gap_pruned"):
            dense_cell = fmt(sd[f"{col}_mean"].iloc[0], sd[f"{col}_std"].iloc[0], scale, 1 if scale == 100 else 2)
        cells = [dense_cell]
        for r in rates:
            s = sp[sp.sparsity == r]
            cells.append(fmt(s[f"{col}_mean"].iloc[0], s[f"{col}_std"].iloc[0], scale, 1 if scale == 100 else 2)
                         if len(s) else "-")
        table.add_row(label, *cells, style="bold")
    return table


def print_group_table(results: StudyResults, *, split: str | None = None, console: Console | None = None) -> None:
    console = console or Console()
    table = group_table(results, split=split)
    wide = console.options.update_width(10**4)  # the table's natural width, not clamped to the console's
    if Measurement.get(console, wide, table).maximum > console.width:  # mean±std would be cut: the means alone
        table = group_table(results, split=split, spread=False)
    console.print(table)
