"""Report sections that appear only when their data exist: diagnostics, Theorem 1, correlations,
mitigation and group size. Each takes the shared Context (plain DataFrames, see report/explain.py for the
stored formats) and returns ``Html`` or None.
"""

from __future__ import annotations

import re

import pandas as pd

from prunefair.report.explain import diagnostics_errors, label
from prunefair.report.html import Html, details, esc, figure, interval, num, para, section, signed, table
from prunefair.report.sections import BOUNDS, MEASURES, Context, rate_label
from prunefair.report.stats import t_interval


def _top_rate(ctx: Context) -> float | None:
    return ctx.rates[-1] if ctx.rates else None


def diagnostics_section(ctx: Context, results) -> Html | None:
    figs = ctx.take_figures("fig12", "fig13", "diag")
    errors = diagnostics_errors(results.cells)
    if ctx.diag.empty and not figs and not errors:
        return None
    parts = [figure(p, f"{k}.png: per-group diagnostics of the dense model beside the accuracy drop")
             for k, p in figs]
    parts += [Html(f"<p class=err>diagnostics of {esc(name)} failed: {esc(err)}</p>") for name, err in errors]
    if not ctx.diag.empty:
        dsplit = "train" if "train" in set(ctx.diag.split) else sorted(ctx.diag.split)[0]
        d = ctx.diag[ctx.diag.split == dsplit]
        names = list(dict.fromkeys(d.diagnostic))
        rate, method = _top_rate(ctx), (ctx.methods[0] if ctx.methods else None)
        header = [results.config.data.group, *[label(n) for n in names]]
        if rate is not None:
            header.append(f"accuracy drop at {rate_label(rate)} ({ctx.main_split}, pts)")
        rows = []
        for gid, gname in (ctx.names or list(d[["group_id", "group"]].drop_duplicates().itertuples(index=False))):
            row = [gname]
            for n in names:
                row.append(interval(t_interval(d[(d.group_id == gid) & (d.diagnostic == n)].value), scale=1,
                                    digits=3))
            if rate is not None:
                row.append(interval(ctx.g(method, rate, "finetuned", ctx.main_split, gid, "accuracy_drop"),
                                    bounds=BOUNDS["accuracy_drop"]))
            rows.append(row)
        parts.append(table(header, rows, caption=f"dense model, {dsplit} data: mean ± std over seeds, 95% CI below"))
        prop1 = _proposition1(results)
        if prop1 is not None:
            parts.append(prop1)
    return section("diagnostics", "Diagnostics: why some groups lose more (Figures 12-13)", *parts)


def _proposition1(results) -> Html | None:
    """One line on Proposition 1 (the group gradients, weighted by group size, add up to the full gradient)."""
    stored = [r["diagnostics"] for r in results.cells if r.get("kind") == "dense"
              and isinstance(r.get("diagnostics"), dict) and "cancellation" in r["diagnostics"]]
    errors = [float(d["prop1_error"]) for d in stored if d.get("prop1_error") is not None]
    cancel = [float(d["cancellation"]) for d in stored]
    if not stored:
        return None
    text = "Proposition 1 (Σ_a |D_a| g_a = |D| g: the group gradients, weighted by group size, add up to the " \
           "full-data gradient): "
    text += (f"largest relative error {max(errors):.1e} over {len(errors)} seed(s), float rounding; " if errors else
             "not checked against a plain full-data pass; ")
    spread = f"{min(cancel):.3g}" if f"{min(cancel):.3g}" == f"{max(cancel):.3g}" else \
        f"{min(cancel):.3g}–{max(cancel):.3g}"
    text += (f"the weighted group gradients cancel to {spread} of their summed norms "
             "(0 at an exact minimum of the training loss), so a group can have a large gradient while the model's "
             "is small.")
    return para(text, "note")


def _theorem1_missing(ctx: Context, results) -> Html | None:
    """Where diagnostics exist but the check could not run because their split was not evaluated, say so."""
    if ctx.diag.empty or results.by_group.empty:
        return None
    split = "train" if "train" in set(ctx.diag.split) else sorted(ctx.diag.split)[0]
    if split in set(results.by_group.split):
        return None
    return section("theorem1", "Theorem 1 check", para(
        f"Not computed: the diagnostics are on the {split} split, which the study did not evaluate (eval.splits = "
        f"{sorted(set(results.by_group.split))}), so there is no R(a) to compare the bound with. Add {split!r} to "
        "eval.splits to run it.", "note"))


def theorem1_section(ctx: Context, results) -> Html | None:
    t1 = ctx.theorem1
    if t1.empty:
        return _theorem1_missing(ctx, results)
    parts = [para("Theorem 1 bounds each group's excess loss by its dense gradient norm and Hessian: "
                  "R(a) ≤ ‖g_a‖·d + ½·λ(H_a)·d² + O(d³), with d = ‖θ̄ − θ*‖. Measured on the "
                  f"{t1.split.iloc[0]} split, per seed and group; 'holds' counts (seed, group) pairs with "
                  "R(a) ≤ bound (the O(d³) term is ignored, so it may fail at large d).", "note")]
    header = ["method", "rate", "d", "‖g_a‖·d", "½λ(H_a)·d²", "bound", "R(a)", "holds"]
    for stage in ("oneshot", "finetuned"):
        rows = []
        # one-shot models do not depend on the fine-tuning method: one row per rate
        for method in ctx.methods[:1] if stage == "oneshot" else ctx.methods:
            for rate in ctx.rates:
                sub = t1[(t1.method == method) & (t1.stage == stage) & (t1.sparsity == rate)]
                if len(sub):
                    rows.append([method, rate_label(rate), num(sub.distance.mean(), 2), num(sub.first_order.mean(), 3),
                                 num(sub.second_order.mean(), 3), num(sub.bound.mean(), 3),
                                 num(sub.excess_loss.mean(), 3), f"{int(sub.holds.sum())}/{len(sub)}"])
        if rows:
            cap = f"{'right after pruning (one-shot)' if stage == 'oneshot' else 'after fine-tuning'}: " \
                  "means over groups and seeds"
            tab = table(header, rows, caption=cap)
            parts.append(tab if stage == "oneshot" else details("after fine-tuning", tab))
    rate = _top_rate(ctx)
    top = t1[(t1.sparsity == rate) & (t1.stage == "oneshot") & (t1.method == (ctx.methods or ["nft"])[0])]
    if not top.empty:
        g = top.groupby(["method", "group_id", "group"], sort=True)
        per = g[["first_order", "second_order", "bound", "excess_loss"]].mean().join(g.holds.sum()).join(g.size()
                                                                                                      .rename("n"))
        prow = [[m, gname, num(r.first_order, 3), num(r.second_order, 3), num(r.bound, 3), num(r.excess_loss, 3),
                 f"{int(r.holds)}/{int(r.n)}"] for (m, _, gname), r in per.iterrows()]
        parts.append(details(f"per group at {rate_label(rate)}, one-shot",
                             table(["method", results.config.data.group, "‖g_a‖·d", "½λ(H_a)·d²", "bound",
                                    "R(a)", "holds"], prow)))
    return section("theorem1", "Theorem 1 check", *parts)


def correlations_section(ctx: Context, results) -> Html | None:
    c = ctx.corr
    if c.empty:
        return None
    parts = [para(f"Spearman's ρ across groups between each dense-model diagnostic ({c.diagnostics_split.iloc[0]} "
                  f"data) and each group's accuracy drop or excess loss R(a) on the {c.split.iloc[0]} split; "
                  "computed per seed, then mean ± std and 95% CI over seeds (no interval with one seed); p is a "
                  "permutation test of no association (outcomes shuffled across groups within each seed).", "note")]
    for method in ctx.methods:
        for stage in ("finetuned", "oneshot"):
            sub = c[(c.method == method) & (c.stage == stage)]
            if sub.empty or (stage == "oneshot" and method not in ctx.oneshot_methods()):
                continue
            rows = []
            for (dname, outcome), s in sub.groupby(["diagnostic", "outcome"], sort=True):
                by_rate = {r["sparsity"]: r for _, r in s.iterrows()}
                rows.append([label(dname), "accuracy drop" if outcome == "accuracy_drop" else "R(a)",
                             *[_rho(by_rate.get(r)) for r in ctx.rates]])
            who = ctx.oneshot_label(method) if stage == "oneshot" else method
            tab = table(["diagnostic", "vs", *[rate_label(r) for r in ctx.rates]], rows,
                        caption=f"{who}, {stage}: Spearman ρ")
            first = method == ctx.methods[0] and stage == "finetuned"
            parts.append(tab if first else details(f"{who}, {stage}", tab))
    return section("correlations", "Correlation summary", *parts)


def _rho(row) -> Html:
    if row is None:
        return Html("–")
    from prunefair.report.stats import Interval

    cell = interval(Interval(row["rho_mean"], row["rho_std"], row["rho_lo"], row["rho_hi"], int(row["n"])),
                    scale=1, digits=2)
    p = row.get("p_value", float("nan"))  # absent in tables computed before the permutation test
    return Html(f"{cell}<span class=ci>p={p:.2g}</span>") if cell != "–" and p == p else cell


def mitigation_section(ctx: Context, results) -> Html | None:
    figs = ctx.take_figures("mitigation", "fig_mitigation", "multipliers")
    if len(ctx.methods) < 2 and not figs:
        return None
    cols = [m for m in MEASURES if m[0] in ("acc_pruned", "accuracy_gap_pruned", "max_psi", "psi_pw", "xi")]
    splits = list(dict.fromkeys(s for s in (ctx.main_split, "train") if s in ctx.splits))
    parts = [para(f"Fine-tuning methods compared at each rate (after fine-tuning). Outlined: the lowest max ψ on "
                  f"{ctx.main_split} at that rate. Constraints are enforced on train; what matters is whether "
                  "disparity also falls on held-out data.", "note")]
    jpsi = 2 + [c for c, *_ in cols].index("max_psi")
    for split in splits if ctx.methods else []:
        rows, attrs, classes = [], {}, []
        for rate in ctx.rates:
            best = min(ctx.methods, key=lambda m: _key(ctx.m(m, rate, "finetuned", ctx.main_split, "max_psi").mean))
            for k, method in enumerate(ctx.methods):
                rows.append([rate_label(rate), method, *[interval(ctx.m(method, rate, "finetuned", split, c), scale=sc,
                                                                  digits=d, bounds=BOUNDS[c]) for c, _, sc, d in cols]])
                classes.append("sep" if k == 0 and len(rows) > 1 else "")
                if method == best and split == ctx.main_split and len(ctx.methods) > 1:
                    attrs[(len(rows) - 1, jpsi)] = " class=best"
        parts.append(table(["rate", "method", *[lab for _, lab, _, _ in cols]], rows, row_classes=classes,
                           cell_attrs=attrs, caption=f"{split} split: mean ± std over seeds, 95% CI below"))
    parts += _paired_table(results, ctx.main_split)
    parts += _constraint_table(results, splits)
    mult = ctx.multipliers
    if not mult.empty:
        top = mult[mult.sparsity == mult.sparsity.max()]
        piv = top.groupby(["group_id", "group", "method"]).multiplier.mean().unstack("method")
        piv = piv[[m for m in ctx.methods if m in piv.columns]]
        prow = [[gname, *[num(v, 4) for v in r]] for (_, gname), r in piv.iterrows()]
        parts.append(table([results.config.data.group, *piv.columns], prow,
                           caption=f"final dual multipliers λ_a at {rate_label(top.sparsity.iloc[0])} "
                                   "(mean over seeds)"))
    if figs:  # the highest rate's figure shown, the others folded
        figs = sorted(figs, key=lambda kp: _rate_of(kp[0]))
        parts.append(figure(figs[-1][1], f"{figs[-1][0]}.png"))
        if len(figs) > 1:
            parts.append(details(f"{len(figs) - 1} more figure(s)", *[figure(p, f"{k}.png") for k, p in figs[:-1]]))
    return section("mitigation", "Mitigation: NFT vs constrained fine-tuning", *parts)


def _rate_of(name: str) -> float:
    """The rate in a figure name such as mitigation_duals_p0.95 (0 when there is none)."""
    m = re.search(r"p(\d+(?:\.\d+)?)$", name)
    return float(m.group(1)) if m else 0.0


def _paired_table(results, split: str) -> list[Html]:
    """Each method minus NFT on the same seeds (mitigation_paired.csv), on the main split, in points."""
    from prunefair.report.mitigation import PAIRED, mitigation_paired_table

    pt = mitigation_paired_table(results)
    if pt.empty or not (pt.split == split).any():
        return []

    def cell(r, c) -> Html:
        mean, lo, hi = r[f"{c}_diff"] * 100, r[f"{c}_lo"] * 100, r[f"{c}_hi"] * 100
        text = signed(mean) + (f"<span class=ci>[{signed(lo)}, {signed(hi)}]</span>" if lo == lo else "")
        return Html(f"<b>{text}</b>" if r[f"{c}_beyond_noise"] else text)

    rows = [[rate_label(r["sparsity"]), r["method"], int(r["seeds"]), *[cell(r, c) for c in PAIRED]]
            for _, r in pt[pt.split == split].iterrows()]
    return [table(["rate", "method", "seeds", "Δ accuracy", "Δ max ψ", "Δ Ψ_PW"], rows,
                  caption=f"{split} split: each method minus nft on the same seeds (same dense model and mask), "
                          "points, mean and 95% t interval over seeds; bold where the interval excludes 0")]


def _constraint_table(results, splits: list[str]) -> list[Html]:
    """Share of seeds meeting CEAG's max ψ ≤ ε and EL's max_a |J_a − J| ≤ tolerance (report/mitigation.py)."""
    from prunefair.report.mitigation import mitigation_table

    mt = mitigation_table(results)
    if mt.empty or not {"psi_holds_share", "el_holds_share", "loss_gap_mean"} <= set(mt.columns):
        return []
    mit = results.config.mitigate
    rows = [[rate_label(r["sparsity"]), r["method"], r["split"], f"{r['psi_holds_share']:.0%}",
             f"{r['el_holds_share']:.0%}", num(r["loss_gap_mean"], 3)]
            for _, r in mt[mt.split.isin(splits)].iterrows()]
    return [details("constraints met (share of seeds), train and test",
                    table(["rate", "method", "split", f"max ψ ≤ ε = {mit.eps:g}",
                           f"max |J_a − J| ≤ {mit.el_tolerance:g}", "max |J_a − J| (mean)"], rows))]


def _key(x: float) -> float:
    return x if x == x else float("inf")


def group_size_section(ctx: Context, results) -> Html | None:
    figs = ctx.take_figures("fig14", "fig15", "group_size")
    gs = ctx.group_size
    if gs.empty and not figs:
        return None
    up = sorted({str(g) for g in gs.get("upsampled", pd.Series(dtype=str)).dropna() if str(g)})
    parts = [para("Group size (Prop. 1): one group is upsampled (1×, 5×, 10×, 20× in the paper) before training; "
                  "a larger group should end training with a smaller gradient norm. Upsampled here: "
                  f"{', '.join(up) or 'none recorded'}.", "note")]
    parts += [figure(p, f"{k}.png") for k, p in figs]
    if not gs.empty and {"factor", "group", "grad_norm"} <= set(gs.columns):
        piv = gs.groupby(["group", "factor"]).grad_norm.agg(list).unstack("factor")
        rows = [[g, *[interval(t_interval(v if isinstance(v, list) else []), scale=1, digits=3) for v in r]]
                for g, r in piv.iterrows()]
        parts.append(table(["group", *[f"{f:g}×" for f in piv.columns]], rows,
                           caption="gradient norm ‖g_a‖ at the end of training, mean ± std over seeds"))
    return section("group-size", "Group size and gradient norm (Figures 14-15)", *parts)


def as_frame(obj) -> pd.DataFrame:
    return obj if isinstance(obj, pd.DataFrame) else pd.DataFrame(obj or [])
