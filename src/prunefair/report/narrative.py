"""The report's plain-language reading: sentences computed from the study's numbers, never canned text.

Every sentence is plain text (group names included as they come from the data); the HTML layer escapes it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prunefair.report import sections
from prunefair.report.explain import label
from prunefair.report.sections import Context, rate_label
from prunefair.report.stats import Interval, t_interval


def _pts(iv: Interval, lo: float = -1.0, hi: float = 1.0) -> str:
    """'2.1 points (95% CI 1.0 to 3.2)', the interval clipped to the quantity's range [lo, hi]."""
    if iv.n >= 2 and iv.std == 0:
        return f"{iv.mean * 100:.1f} points (the same in all {iv.n} seeds)"
    if iv.has_ci:
        return f"{iv.mean * 100:.1f} points (95% CI {max(iv.lo, lo) * 100:.1f} to {min(iv.hi, hi) * 100:.1f})"
    return f"{iv.mean * 100:.1f} points"


def _negated(iv: Interval) -> Interval:
    """-x over the same seeds: a drop read as a gain."""
    return Interval(-iv.mean, iv.std, -iv.hi, -iv.lo, iv.n, iv.confidence)


def _moved(iv: Interval) -> str:
    """An accuracy drop ``iv`` in words: 'fell by 2.1 points (...)', 'rose by 1.4 points (...)' for a gain (a
    negative drop), 'changed by 0.0 points' when it rounds to nothing."""
    shown = round(iv.mean * 100, 1)
    if shown < 0:
        return f"rose by {_pts(_negated(iv))}"
    if shown == 0:  # -0.04 would print as "-0.0"
        return "changed by less than 0.1 points"
    return f"fell by {_pts(iv)}"


def _pct(iv: Interval) -> str:
    if iv.n >= 2 and iv.std == 0:
        return f"{iv.mean * 100:.1f}% (the same in all {iv.n} seeds)"
    if iv.has_ci:
        return f"{iv.mean * 100:.1f}% (95% CI {max(iv.lo, 0) * 100:.1f} to {min(iv.hi, 1) * 100:.1f})"
    return f"{iv.mean * 100:.1f}%"


def _who(group: str, name) -> str:
    """A group as people read it: 'class 3' for bare numbers, else the dataset's own name ('White')."""
    text = str(name)
    try:
        float(text)
    except ValueError:
        return text
    return f"{group} {text}"


def _by_seed(ms: pd.DataFrame, sel: dict, col: str) -> pd.Series:
    m = ms
    for k, v in sel.items():
        m = m[m[k] == v]
    return m.set_index("seed")[col]


def possessive(name: str) -> str:
    """Others' (a name ending in s), class 3's."""
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def _paired(ms: pd.DataFrame, a: dict, b: dict, col: str) -> Interval:
    """t interval over seeds of (b - a) for a measure, pairing the two settings by seed."""
    x, y = _by_seed(ms, a, col), _by_seed(ms, b, col)
    common = x.index.intersection(y.index)
    return t_interval((y.loc[common] - x.loc[common]).to_numpy())


def _on_common_seeds(ms: pd.DataFrame, a: dict, b: dict, col: str) -> tuple[Interval, Interval]:
    """Intervals of a measure in two settings over the seeds both have (a cell missing in one seed would
    otherwise compare a mean over all seeds with a mean over some)."""
    x, y = _by_seed(ms, a, col), _by_seed(ms, b, col)
    common = x.index.intersection(y.index)
    return t_interval(x.loc[common].to_numpy()), t_interval(y.loc[common].to_numpy())


def reading(results, ctx: Context) -> list[str]:
    pending = sections.pending_sentence(results)
    if not ctx.methods or not ctx.rates:
        n = len(results.failed)
        return [f"No pruned cell has finished yet ({len(results.cells)} done, {n} failed); there is nothing to read.",
                *([pending] if pending else [])]
    out: list[str] = []
    split, group = ctx.main_split, results.config.data.group
    method = ctx.methods[0]
    ms = results.measures
    seeds = int(ms.seed.nunique())
    gname = {gid: _who(group, n) for gid, n in ctx.names}

    dense = ctx.m(method, 0, "dense", split, "acc_pruned")
    accs = {gid: ctx.g(method, 0, "dense", split, gid, "acc_dense").mean for gid, _ in ctx.names}
    accs = {gid: a for gid, a in accs.items() if np.isfinite(a)}  # a group without samples here has no accuracy
    empty = [gname[gid] for gid, _ in ctx.names if gid not in accs]
    if not accs:
        return [f"No group has {split} samples; there is nothing to read."]
    lo_g, hi_g = min(accs, key=accs.get), max(accs, key=accs.get)
    out.append(f"The dense model reaches {_pct(dense)} {split} accuracy over {seeds} seed(s); per {group}, "
               f"accuracy ranges from {gname[lo_g]} ({accs[lo_g] * 100:.1f}%) to {gname[hi_g]} "
               f"({accs[hi_g] * 100:.1f}%).")
    if empty:
        out.append(f"{', '.join(empty)} {'has' if len(empty) == 1 else 'have'} no {split} samples and "
                   f"{'is' if len(empty) == 1 else 'are'} left out of this reading.")

    out.append(_overall_sentence(method, [(r, ctx.m(method, r, "finetuned", split, "accuracy_drop").mean)
                                          for r in ctx.rates]))

    top = ctx.rates[-1]
    overall = ctx.m(method, top, "finetuned", split, "accuracy_drop")
    gd = {gid: ctx.g(method, top, "finetuned", split, gid, "accuracy_drop") for gid in accs}
    gd = {gid: iv for gid, iv in gd.items() if np.isfinite(iv.mean)}
    if not gd:
        return out
    worst = max(gd, key=lambda k: gd[k].mean)
    least = min(gd, key=lambda k: gd[k].mean)
    at = f"At {rate_label(top)} sparsity ({method}, after fine-tuning), {split} accuracy {_moved(overall)} overall"
    least_text = f"{gname[least]} {'gained' if round(gd[least].mean * 100, 1) < 0 else 'lost'} " \
                 f"{abs(gd[least].mean) * 100:.1f} points"  # a mean of -1e-17 (two seeds +-x) "lost 0.0"
    if gd[worst].mean - gd[least].mean < 0.0005:  # every group moved alike: no best and worst to name
        out.append(f"{at}, and by as much for every {group}.")
    elif round(overall.mean * 100, 1) > 0 and gd[worst].mean > overall.mean:  # the usual case: some lost more
        out.append(f"{at} but by {_pts(gd[worst])} for {gname[worst]}, while {least_text}.")
    else:  # overall accuracy held or rose: the group that fared worst, in words that fit its sign
        out.append(f"{at}; for {gname[worst]}, the {group} that fared worst, it {_moved(gd[worst])}, while "
                   f"{least_text}.")

    gap_d, gap_p = _on_common_seeds(
        ms, {"method": "dense", "sparsity": 0.0, "stage": "dense", "split": split},
        {"method": method, "sparsity": top, "stage": "finetuned", "split": split}, "accuracy_gap_pruned")
    verb = "grew" if gap_p.mean > gap_d.mean + 0.005 else "shrank" if gap_p.mean < gap_d.mean - 0.005 else "stayed"
    if verb == "stayed":
        out.append(f"The accuracy gap between the best and the worst {group} stayed at about "
                   f"{gap_d.mean * 100:.1f} points (dense; {_pts(gap_p, 0.0, 1.0)} at {rate_label(top)}).")
    else:
        out.append(f"The accuracy gap between the best and the worst {group} {verb} from {gap_d.mean * 100:.1f} "
                   f"points (dense) to {_pts(gap_p, 0.0, 1.0)} at {rate_label(top)}.")

    psi = ctx.g(method, top, "finetuned", split, worst, "psi")
    if psi.has_ci:
        verdict = ("larger than the overall drop beyond seed-to-seed noise" if psi.lo > 0 else
                   "not distinguishable from the overall drop at this number of seeds")
        out.append(f"{possessive(gname[worst])} excess drop ψ = {_pts(psi)} is {verdict}.")
    elif seeds <= 1:
        out.append("With a single seed there are no confidence intervals: rerun with more seeds (e.g. --seeds "
                   "0,1,2) to tell real differences from noise.")
    else:
        out.append(f"Only {psi.n} of the {seeds} seeds finished this cell, so it has no confidence interval; "
                   "rerun the study to complete the others.")

    if len(ctx.rates) >= 2:
        def psi_at(r, gid):
            v = ctx.g(method, r, "finetuned", split, gid, "psi").mean
            return v if np.isfinite(v) else -np.inf

        most = [max(gd, key=lambda gid: psi_at(r, gid)) for r in ctx.rates]
        top_g = max(set(most), key=most.count)
        if most.count(top_g) * 2 > len(most):
            out.append(f"{gname[top_g]} has the largest excess drop ψ at {most.count(top_g)} of {len(ctx.rates)} "
                       f"rates.")
        else:
            out.append("The group with the largest excess drop ψ changes with the rate: " +
                       ", ".join(f"{gname[g]} at {rate_label(r)}" for g, r in zip(most, ctx.rates)) + ".")

    for part in (lambda: _diagnostic_sentences(ctx, method, top), lambda: _mitigation_sentences(ctx, ms, top, split)):
        try:
            out += part()
        except Exception as exc:  # an unexpected stored format must not cost the rest of the reading
            out.append(f"(Part of this reading could not be computed: {type(exc).__name__}: {exc}.)")
    out += _group_size_sentences(ctx)
    if results.failed:
        out.append(f"{len(results.failed)} cell(s) failed and are missing from these numbers (see Failed cells).")
    if pending:
        out.append(pending)
    return [s[:1].upper() + s[1:] for s in out]


def _overall_sentence(method: str, drops: list[tuple[float, float]]) -> str:
    """How overall accuracy after fine-tuning compares with the dense model's across the rates (ascending), from
    the mean drop at each (a negative drop is a gain): within 1 point, never more than 1 point below (with a gain
    of more), or the first rate where it falls by more than 1 point."""
    drops = [(r, round(d * 100, 1) / 100) for r, d in drops]  # judged as printed (1.004 points is "1.0")
    first_bad = next((r for r, d in drops if d > 0.01), None)
    before = [(r, d) for r, d in drops if first_bad is None or r < first_bad]
    if not before:
        which = "the only rate studied" if len(drops) == 1 else "the lowest rate studied"
        return f"After fine-tuning ({method}), overall accuracy already falls by more than 1 point at " \
               f"{rate_label(first_bad)} sparsity, {which}."
    upto = f"{'at every rate studied, ' if first_bad is None else ''}up to {rate_label(before[-1][0])} sparsity"
    gains = [(r, d) for r, d in before if d < -0.01]  # rose by more than 1 point: not "within 1 point"
    if gains:
        r_best, d_best = min(gains, key=lambda x: x[1])
        held = f"is never more than 1 point below the dense model's {upto}, and rises above it by up to " \
               f"{-d_best * 100:.1f} points (at {rate_label(r_best)})"
    else:
        held = f"stays within 1 point of the dense model {upto}"
    tail = "" if first_bad is None else \
        f"; the first rate where it falls by more than 1 point is {rate_label(first_bad)}"
    return f"After fine-tuning ({method}), overall accuracy {held}{tail}."


def _diagnostic_sentences(ctx: Context, method: str, top: float) -> list[str]:
    out = []
    c = ctx.corr
    if not c.empty:
        sub = c[(c.method == method) & (c.sparsity == top) & (c.stage == "finetuned") &
                (c.outcome == "accuracy_drop")]
        unclear = []
        for _, r in sub.iterrows():
            iv = Interval(r.rho_mean, r.rho_std, r.rho_lo, r.rho_hi, int(r.n))
            if not np.isfinite(iv.mean):
                continue
            p = r.get("p_value", float("nan"))
            beyond_chance = p < 0.05 if p == p else True  # tables from before the permutation test: the interval
            if beyond_chance and (iv.excludes_zero() or (not iv.has_ci and iv.n == 1 and p == p)):
                more = "more" if iv.mean > 0 else "less"
                how = ", ".join([f"95% CI {iv.lo:.2f} to {iv.hi:.2f} over seeds" if iv.has_ci else "one seed",
                                 *([f"permutation p = {p:.2g}"] if p == p else [])])
                out.append(f"Groups with a larger dense-model {label(r.diagnostic)} lost {more} accuracy at "
                           f"{rate_label(top)}: Spearman ρ = {iv.mean:.2f} ({how}) across groups.")
            else:
                unclear.append(f"{label(r.diagnostic)} (ρ = {iv.mean:.2f})")
        if unclear:
            why = "their 95% intervals over seeds include zero, or a permutation test finds no association " \
                "(p >= 0.05)" if sub.rho_lo.notna().any() else "one seed: no interval, and a permutation p of 0.05 or more"
            out.append(f"At {rate_label(top)}, the dense model's {', '.join(unclear)} "
                       f"{'does' if len(unclear) == 1 else 'do'} not clearly rank the groups' accuracy drop "
                       f"({why}).")
    t1 = ctx.theorem1
    if not t1.empty:
        one = t1[(t1.stage == "oneshot") & (t1.method == method)]  # one-shot models are the same for all methods
        if not one.empty:
            held = int(one.holds.sum())
            fails = one[~one.holds].sparsity
            where = f"; it fails from {rate_label(fails.min())} on" if len(fails) else ""
            pos = one[(one.excess_loss > 0) & np.isfinite(one.bound)]
            ratio = f"; it is loose, with a median bound/R(a) ratio of {np.median(pos.bound / pos.excess_loss):.1f}" \
                if len(pos) else ""
            out.append(f"The second-order Theorem 1 bound on the excess loss holds for {held} of {len(one)} "
                       f"(seed, group, rate) cases right after pruning{where}{ratio}.")
    return out


def _mitigation_sentences(ctx: Context, ms: pd.DataFrame, top: float, split: str) -> list[str]:
    if len(ctx.methods) < 2:
        return []
    base, out = ctx.methods[0], []
    ref = {"method": base, "sparsity": top, "stage": "finetuned", "split": split}
    for m in ctx.methods[1:]:
        other = {**ref, "method": m}
        a, b = _on_common_seeds(ms, ref, other, "max_psi")  # a failed cell in one method: the seeds both have
        d_psi = _paired(ms, ref, other, "max_psi")
        d_acc = _paired(ms, ref, other, "acc_pruned")
        if not np.isfinite(b.mean):
            continue
        sig = (" (paired over seeds, 95% CI of the change "
               f"{d_psi.lo * 100:.1f} to {d_psi.hi * 100:.1f} points)") if d_psi.has_ci else ""
        out.append(f"At {rate_label(top)} on {split}, {m} moved max ψ from {a.mean * 100:.1f} ({base}) to "
                   f"{b.mean * 100:.1f} points{sig}, and overall accuracy by {d_acc.mean * 100:+.1f} points.")
    return out


def _group_size_sentences(ctx: Context) -> list[str]:
    gs = ctx.group_size
    if gs.empty or not {"factor", "group", "grad_norm", "upsampled"} <= set(gs.columns) or gs.factor.nunique() < 2:
        return []
    lo, hi = gs.factor.min(), gs.factor.max()
    out = []
    for up in sorted({str(u) for u in gs.upsampled.dropna() if str(u)}):
        mine = gs[gs.group.astype(str) == up]
        rest = gs[gs.group.astype(str) != up]
        a, b = mine[mine.factor == lo].grad_norm.mean(), mine[mine.factor == hi].grad_norm.mean()
        c, d = rest[rest.factor == lo].grad_norm.mean(), rest[rest.factor == hi].grad_norm.mean()
        out.append(f"Upsampling {up} from {lo:g}x to {hi:g}x changed its dense gradient norm from {a:.3f} to "
                   f"{b:.3f}, and the other groups' mean gradient norm from {c:.3f} to {d:.3f}.")
    return out
