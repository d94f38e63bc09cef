"""Rich tables for ``prunefair audit`` and ``prunefair diagnose``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from rich import box
from rich.table import Table
from rich.text import Text


def _f(v, digits: int = 3, scale: float = 1.0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v * scale:.{digits}g}" if abs(v * scale) < 1e4 else f"{v * scale:.3e}"


def audit_table(result, split: str) -> Table:
    """Per group on ``split``: accuracy dense and pruned, Δ_a, ψ_a, R(a) and the Theorem 1 bound (8 columns, so it
    reads at 80 columns; the dense model's diagnostics are one table of their own, ``audit_diagnostics_table``)."""
    t = result.group_table(split)
    table = Table(box=box.SIMPLE_HEAD, title=f"audit ({split}): sparsity {result.sparsity * 100:.1f}%, "
                  f"||θ̄ − θ*|| = {result.distance:.4g}")
    dsplit = result.diagnostics.split
    bound = ("bound", "bound") if split == dsplit else (f"bound ({dsplit})", f"bound_{dsplit}")  # ✗ only on dsplit
    cols = [("group", "group"), ("n", "n"), ("acc dense %", "acc_dense"), ("acc pruned %", "acc_pruned"),
            ("Δ_a %", "accuracy_drop"), ("ψ_a %", "psi"), ("R(a)", "excess_loss"), bound]
    for label, _ in cols:
        table.add_column(label, justify="left" if label == "group" else "right", overflow="fold")
    pct = {"acc_dense", "acc_pruned", "accuracy_drop", "psi"}
    for _, row in t.iterrows():
        cells = []
        for _, c in cols:
            v = row[c]
            cells.append(str(v) if c in ("group", "n") else _f(float(v), 4 if c in pct else 3, 100 if c in pct else 1))
        if "bound_holds" in row and not row.bound_holds:
            cells[-1] += " ✗"
        table.add_row(*cells)
    m = result.impacts[split].measures
    table.caption = (f"overall acc {m['acc_dense'] * 100:.2f}% → {m['acc_pruned'] * 100:.2f}%; accuracy gap "
                     f"{m['accuracy_gap_dense'] * 100:.2f} → {m['accuracy_gap_pruned'] * 100:.2f}; max ψ "
                     f"{m['max_psi'] * 100:.2f}; Ψ_PW {m['psi_pw'] * 100:.2f}; ξ {m['xi']:.4f}\n"
                     f"{result.bound.summary()} (R(a) on {result.diagnostics.split})")
    return table


def audit_diagnostics_table(result) -> Table:
    """The dense model's diagnostics per group (they do not depend on the split the pair is compared on)."""
    d = result.diagnostics
    table = Table(box=box.SIMPLE_HEAD, title=f"diagnostics of the dense model on {d.split}")
    cols = [("‖g_a‖", d.grad_norm), ("λ(H_a)", d.hessian_top_eigenvalue)]
    if np.isfinite(np.asarray(d.hessian_trace, float)).any():  # the trace, when asked (trace_samples > 0)
        cols += [("tr(H_a)", d.hessian_trace), ("± SE", d.hessian_trace_se)]
    cols.append(("1−Σp²", d.gini))
    if np.isfinite(np.asarray(d.f_one_minus_f, float)).any():  # binary tasks only
        cols.append(("f(1−f)", d.f_one_minus_f))
    cols.append(("margin", d.margin))
    table.add_column("group", justify="left", overflow="fold")
    for label, _ in cols:
        table.add_column(label, justify="right", overflow="fold")
    for a, name in enumerate(d.group_names):
        table.add_row(str(name), *(_f(float(values[a])) for _, values in cols))
    return table


def correlation_table(result) -> Table | Text:
    """Spearman ρ per split, diagnostic and outcome; a split with fewer than 3 groups (with data) has no ρ at all
    (a rank correlation of 2 points is ±1 by construction): one line says so instead of a table of "-"."""
    corr = result.correlations
    few = corr[corr.n_groups < 3] if len(corr) else corr
    short = {s: int(few[few.split == s].n_groups.max()) for s in dict.fromkeys(few.split)} if len(few) else {}
    note = ("Spearman ρ across groups: not defined with fewer than 3 groups ("
            + ", ".join(f"{n} on {s}" for s, n in short.items()) + ")") if short else ""
    rows = corr[corr.n_groups >= 3] if len(corr) else corr
    if short and rows.empty:
        return Text(note)
    table = Table(box=box.SIMPLE_HEAD, title="Spearman ρ across groups (p: permutation test of no association)")
    for c in ("split", "diagnostic", "outcome", "ρ", "p"):
        table.add_column(c, justify="right" if c in ("ρ", "p") else "left")
    for _, r in rows.iterrows():
        table.add_row(r.split, r.diagnostic, r.outcome, _f(r.rho, 2), _f(r.p_value, 3))
    if note:
        table.caption = note
    return table


def diagnose_table(result, rate: float) -> Table:
    t = result.rankings[rate]
    table = Table(box=box.SIMPLE_HEAD, title=f"predicted harm at pruning rate {rate:g} (one-shot ||θ̄ − θ*|| = "
                  f"{result.distances[rate]:.4g}): groups ranked by the Theorem 1 bound")
    for c in ("rank", "group", "n", "‖g_a‖", "λ(H_a)", "‖g_a‖ d", "½ λ d²", "bound", "1−Σp²", "margin"):
        table.add_column(c, justify="left" if c == "group" else "right", overflow="fold")
    for _, r in t.iterrows():
        rank = "-" if pd.isna(r["rank"]) else str(r["rank"])  # a group without samples has no bound, no rank
        table.add_row(rank, str(r.group), str(r.n), _f(r.grad_norm), _f(r.hessian_top_eigenvalue),
                      _f(r.gradient_term), _f(r.curvature_term), _f(r.bound), _f(r.gini), _f(r.margin))
    d = result.diagnostics
    rules = " with rules" if d.settings.get("hvp_rules") else ""
    table.caption = (f"diagnostics on {d.split} ({int(d.count.sum())} samples; Hessians on up to "
                     f"{d.settings.get('max_samples') or 'all'} per group, {d.settings.get('eigen_method')}, "
                     f"HVP {d.settings.get('hvp_used')}{rules}); Prop. 1: ||Σ|D_a| g_a|| / Σ|D_a| ||g_a|| = "
                     f"{d.cancellation:.3g}{_curvature_share(t)}")
    return table


def _curvature_share(t: pd.DataFrame) -> str:
    """'; ½ λ d² is 97% of the summed bound (the ranking is λ's)': which term decides the ranking at this rate."""
    total = float(np.nansum(t.bound))
    if not total > 0:
        return ""
    share = float(np.nansum(t.curvature_term)) / total
    ranked = t[np.isfinite(t.bound.to_numpy(float))]  # a term decides the ranking only where it ranks as the bound
    same = lambda c: ranked[c].rank(ascending=False, method="min").tolist() == \
        ranked.bound.rank(ascending=False, method="min").tolist()  # noqa: E731
    which = " (the ranking is λ(H_a)'s)" if share >= 0.9 and same("curvature_term") else \
        " (the ranking is ‖g_a‖'s)" if share <= 0.1 and same("gradient_term") else ""
    return f"; ½ λ d² is {share:.0%} of the summed bound{which}"
