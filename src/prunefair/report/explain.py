"""Tidy tables for the report's explanation sections, read from the stored cells alone.

Per-group diagnostics are read from each dense cell's ``result.json`` under ``"diagnostics"``. Accepted shapes
(the reader is deliberately tolerant; the first three are the documented ones):

1. ``{"split": "train", "group_names": [...], "grad_norm": [g_0, ...], "hessian_top_eigenvalue": [...], ...}``:
   every list of G numbers is one diagnostic (G = number of groups);
2. ``{"train": {<shape 1 without split>}, "test": {...}}``: one entry per split;
3. ``{"split": "train", "groups": [{"group": "White", "grad_norm": 0.3, ...}, ...]}``: a record per group;
4. any of the above nested one level deeper (e.g. ``{"by_group": {...}}``); scalars and other lists are ignored.

Theorem 1 (Tran et al. 2022; docs/diagnostics.md): R(a) <= ||g_a|| d + 1/2 lambda(H_a) d^2 with d = ||theta_bar - theta*|| (the cell's
``distance_oneshot`` for one-shot, ``distance`` for fine-tuned). Correlations are Spearman's rho across groups,
per seed, between a dense-model diagnostic and the accuracy drop / excess loss of a pruned model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from prunefair.diagnostics.bound import theorem1_terms
from prunefair.diagnostics.correlation import spearman_across_groups

# Names under which a diagnostic may be stored -> (canonical name, label for people)
ALIASES = {
    "grad_norm": ("grad_norm", "gradient norm ‖g_a‖"),
    "gradient_norm": ("grad_norm", "gradient norm ‖g_a‖"),
    "group_gradient_norm": ("grad_norm", "gradient norm ‖g_a‖"),
    "group_gradient_norms": ("grad_norm", "gradient norm ‖g_a‖"),
    "hessian_top_eigenvalue": ("hessian_top_eigenvalue", "Hessian top eigenvalue λ(H_a)"),
    "hessian_top": ("hessian_top_eigenvalue", "Hessian top eigenvalue λ(H_a)"),
    "hessian_eigenvalue": ("hessian_top_eigenvalue", "Hessian top eigenvalue λ(H_a)"),
    "top_eigenvalue": ("hessian_top_eigenvalue", "Hessian top eigenvalue λ(H_a)"),
    "lambda_max": ("hessian_top_eigenvalue", "Hessian top eigenvalue λ(H_a)"),
    "hessian_trace": ("hessian_trace", "Hessian trace tr(H_a)"),
    "trace": ("hessian_trace", "Hessian trace tr(H_a)"),
    "f_one_minus_f": ("f_one_minus_f", "closeness to boundary f(1 − f)"),
    "boundary_distance": ("boundary_distance", "closeness to boundary 1 − Σ p_c²"),
    "distance_to_boundary": ("boundary_distance", "closeness to boundary 1 − Σ p_c²"),
    "gini": ("boundary_distance", "closeness to boundary 1 − Σ p_c²"),
    "margin": ("logit_margin", "logit margin z_y − max z_c"),
    "logit_margin": ("logit_margin", "logit margin z_y − max z_c"),
}
SPLITS = ("train", "val", "test")
# Per-group arrays stored beside the diagnostics that are not diagnostics themselves
NOT_DIAGNOSTICS = {"count", "group_id", "loss", "accuracy", "hessian_samples", "trace_se", "n"}


def label(name: str) -> str:
    return ALIASES.get(name, (name, name.replace("_", " ")))[1]


def _canonical(name: str) -> str:
    return ALIASES.get(name, (name, name))[0]


def _is_numbers(v, g: int) -> bool:
    return (isinstance(v, list) and len(v) == g and g > 0
            and all(isinstance(x, (int, float)) or x is None for x in v))


def _blocks(obj, split: str, names: list[str], depth: int = 0):
    """Yield (split, group_names, {diagnostic: values}) from one of the accepted shapes."""
    if not isinstance(obj, dict) or depth > 3:
        return
    split = str(obj.get("split") or split)
    gnames = [str(n) for n in obj.get("group_names", names)]
    g = len(gnames)
    if isinstance(obj.get("groups"), list) and all(isinstance(r, dict) for r in obj["groups"]):
        recs = obj["groups"]
        gnames = [str(r.get("group", r.get("name", i))) for i, r in enumerate(recs)]
        keys = {k for r in recs for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                and k not in NOT_DIAGNOSTICS}
        yield split, gnames, {k: [r.get(k) for r in recs] for k in sorted(keys)}
        return
    values = {k: v for k, v in obj.items() if _is_numbers(v, g) and k not in NOT_DIAGNOSTICS
              and any(x is not None for x in v)}
    if values:
        yield split, gnames, values
    for k, v in obj.items():
        if isinstance(v, dict):
            yield from _blocks(v, k if k in SPLITS else split, gnames, depth + 1)


def diagnostics_table(cells: list[dict]) -> pd.DataFrame:
    """A row per (seed, split, group, diagnostic) from the dense cells that carry ``diagnostics``."""
    rows = []
    for r in cells:
        if r.get("kind") != "dense" or not isinstance(r.get("diagnostics"), dict):
            continue
        metrics = r.get("metrics", {})
        names = next((m["group_names"] for m in metrics.values() if "group_names" in m), [])
        for split, gnames, values in _blocks(r["diagnostics"], "train", [str(n) for n in names]):
            for key, vals in values.items():
                for gid, (gname, v) in enumerate(zip(gnames, vals)):
                    rows.append({"seed": r["seed"], "split": split, "group_id": gid, "group": gname,
                                 "diagnostic": _canonical(key), "value": np.nan if v is None else float(v)})
    cols = ["seed", "split", "group_id", "group", "diagnostic", "value"]
    return pd.DataFrame(rows, columns=cols).drop_duplicates(["seed", "split", "group_id", "diagnostic"])


def diagnostics_errors(cells: list[dict]) -> list[tuple[str, str]]:
    """(cell name, error) of the dense cells whose diagnostics failed (stored as ``{"error": ...}``)."""
    return [(r.get("name", "?"), str(r["diagnostics"]["error"])) for r in cells
            if r.get("kind") == "dense" and isinstance(r.get("diagnostics"), dict) and "error" in r["diagnostics"]]


def _outcomes(results, split: str) -> pd.DataFrame:
    bg = results.by_group
    return bg[(bg.stage != "dense") & (bg.split == split)]


def theorem1_table(results, diag: pd.DataFrame) -> pd.DataFrame:
    """Per (seed, method, sparsity, stage, group): both terms of the Theorem 1 bound, the bound and R(a).

    Uses the diagnostics' split (train if several) for R(a), so the bound and the loss are on the same data.
    A pair whose R(a) or bound is not a number (a group absent from that split) is left out: nothing to check,
    as in diagnostics.theorem1_check.
    """
    need = {"grad_norm", "hessian_top_eigenvalue"}
    if diag.empty or not need <= set(diag.diagnostic):
        return pd.DataFrame()
    split = "train" if "train" in set(diag.split) else sorted(diag.split)[0]
    wide = diag[diag.split == split].pivot_table(index=["seed", "group_id"], columns="diagnostic", values="value")
    wide = wide[list(need)].reset_index()
    dist = {}
    for r in results.cells:
        if r.get("kind") == "prune":
            dist[(r["seed"], r["method"], float(r["rate"]), "oneshot")] = r.get("distance_oneshot", np.nan)
            dist[(r["seed"], r["method"], float(r["rate"]), "finetuned")] = r.get("distance", np.nan)
    out = _outcomes(results, split).merge(wide, on=["seed", "group_id"], how="inner")
    if out.empty:
        return pd.DataFrame()
    d = np.array([dist.get((s, m, float(p), st), np.nan) for s, m, p, st in
                  zip(out.seed, out.method, out.sparsity, out.stage)], dtype=float)
    first, second, bound = theorem1_terms(out.grad_norm.to_numpy(float), out.hessian_top_eigenvalue.to_numpy(float), d)
    out = out.assign(split=split, distance=d, first_order=first, second_order=second, bound=bound)
    out = out[np.isfinite(out.excess_loss) & np.isfinite(out.bound)].reset_index(drop=True)
    out["holds"] = out.excess_loss <= out.bound
    return out[["seed", "method", "sparsity", "stage", "split", "group_id", "group", "distance", "grad_norm",
                "hessian_top_eigenvalue", "first_order", "second_order", "bound", "excess_loss", "holds"]]


def correlation_table(results, diag: pd.DataFrame, *, outcome_split: str | None = None,
                      n_perm: int = 2000) -> pd.DataFrame:
    """Spearman rho across groups of each dense diagnostic vs the accuracy drop and R(a).

    A row per (method, sparsity, stage, diagnostic, outcome): rho averaged over seeds with a 95% t interval over
    seeds (none with one seed) and a permutation p-value, from diagnostics.spearman_across_groups. The outcome is measured
    on ``outcome_split`` (by default the report's main split: test if evaluated, else val, else train).
    """
    if diag.empty or results.by_group.empty:
        return pd.DataFrame()
    splits = set(results.by_group.split)
    dsplit = "train" if "train" in set(diag.split) else sorted(diag.split)[0]
    outcome_split = outcome_split or next((s for s in ("test", "val", "train") if s in splits), dsplit)
    wide = diag[diag.split == dsplit].pivot_table(index=["seed", "group_id"], columns="diagnostic", values="value")
    out = _outcomes(results, outcome_split).merge(wide.reset_index(), on=["seed", "group_id"], how="inner")
    rows = []
    cols = [*wide.columns, "accuracy_drop", "excess_loss"]
    for (method, rate, stage), sub in out.groupby(["method", "sparsity", "stage"]):
        mat = sub.set_index(["seed", "group_id"])[cols].unstack("group_id")  # seeds x (column, group)
        for dname in wide.columns:
            for outcome in ("accuracy_drop", "excess_loss"):
                rc = spearman_across_groups(mat[dname].to_numpy(float), mat[outcome].to_numpy(float), n_perm=n_perm)
                per = np.asarray(rc.per_seed, float)
                per = per[np.isfinite(per)]
                rows.append({"method": method, "sparsity": rate, "stage": stage, "diagnostic": dname,
                             "outcome": outcome, "rho_mean": rc.rho,
                             "rho_std": float(per.std(ddof=1)) if per.size > 1 else 0.0,
                             "rho_lo": rc.low, "rho_hi": rc.high, "n": int(per.size), "interval": rc.interval,
                             "p_value": rc.p_value})
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).assign(split=outcome_split, diagnostics_split=dsplit)


def multiplier_table(cells: list[dict]) -> pd.DataFrame:
    """Final dual multipliers per group from a mitigation cell's history (``multipliers`` or ``lambda``)."""
    rows = []
    for r in cells:
        hist = r.get("history") or []
        if r.get("kind") != "prune" or not hist or not isinstance(hist[-1], dict):
            continue
        sel = (r.get("mitigation") or {}).get("selected_epoch")
        last = hist[sel - 1] if isinstance(sel, int) and 1 <= sel <= len(hist) else hist[-1]
        lam = next((last[k] for k in ("multipliers", "lambda", "lambdas", "duals") if k in last), None)
        if isinstance(lam, dict):
            lam = list(lam.values())
        if not isinstance(lam, list) or not lam:
            continue
        names = next((m["group_names"] for m in r.get("metrics", {}).values() if "group_names" in m), [])
        for gid, v in enumerate(lam):
            if isinstance(v, (int, float)):
                rows.append({"seed": r["seed"], "method": r["method"], "sparsity": float(r["rate"]), "group_id": gid,
                             "group": str(names[gid]) if gid < len(names) else str(gid), "multiplier": float(v),
                             "epochs": len(hist)})
    return pd.DataFrame(rows)
