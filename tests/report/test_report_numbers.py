"""Every number in report.html's tables, recomputed here from the saved CSVs (table.csv, measures.csv,
layer_sparsity.csv, diagnostics.csv, theorem1.csv, correlations.csv) with pandas and scipy and formatted
independently: the page is parsed with the standard library's HTML parser, table by table, by caption."""

from __future__ import annotations

import ast
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats


class Tables(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables, self.section, self.caption = [], None, None
        self._cap = None
        self._tab = None
        self._cell = None
        self._row = None
        self._in_ci = False
        self._stack = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.section = a.get("id")
        if tag == "div" and a.get("class") == "cap":
            self._cap = []
        if tag == "table":
            self._tab = {"section": self.section, "caption": self.caption, "header": [], "rows": [],
                         "cls": a.get("class")}
            self.caption = None
        if tag == "tr" and self._tab is not None:
            self._row = []
        if tag in ("td", "th") and self._row is not None:
            self._cell = {"main": [], "ci": [], "tag": tag, "attrs": a}
        if tag == "span" and a.get("class") == "ci":
            self._in_ci = True
        self._stack.append(tag)

    def handle_endtag(self, tag):
        if tag == "div" and self._cap is not None:
            self.caption = "".join(self._cap)
            self._cap = None
        if tag == "span":
            self._in_ci = False
        if tag in ("td", "th") and self._cell is not None:
            c = self._cell
            self._row.append(("".join(c["main"]).strip(), "".join(c["ci"]).strip(), c["tag"], c["attrs"]))
            self._cell = None
        if tag == "tr" and self._row is not None and self._tab is not None:
            if all(t == "th" for _, _, t, _ in self._row):
                self._tab["header"] = [m for m, *_ in self._row]
            else:
                self._tab["rows"].append(self._row)
            self._row = None
        if tag == "table" and self._tab is not None:
            self.tables.append(self._tab)
            self._tab = None

    def handle_data(self, data):
        if self._cap is not None:
            self._cap.append(data)
        if self._cell is not None:
            (self._cell["ci"] if self._in_ci else self._cell["main"]).append(data)


def fixed(x, d):
    t = f"{x:.{d}f}"
    return t[1:] if t.startswith("-") and float(t) == 0 else t


def fmt(values, scale=100.0, digits=1, bounds=None):
    """(main, ci) as the report should print them, computed here independently."""
    x = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), float)
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return ("–", "")
    m = x.mean()
    if n == 1:
        return (fixed(m * scale, digits), "n=1")
    s = x.std(ddof=1)
    h = stats.t.ppf(0.975, n - 1) * s / math.sqrt(n)
    lo, hi = m - h, m + h
    if bounds:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return (f"{fixed(m * scale, digits)} ± {fixed(s * scale, digits)}",
            f"[{fixed(lo * scale, digits)}, {fixed(hi * scale, digits)}]")


def rate_of(label):
    return 0.0 if label == "dense" else round(float(label.rstrip("%")) / 100, 10)


def close_rate(series, r):
    return np.isclose(series.astype(float), r, atol=1e-9)


MEAS = {"achieved sparsity (%)": ("achieved_sparsity", 100, 2, (0, 1)), "‖θ̄ − θ*‖": ("distance", 1, 2, (0, math.inf)),
        "accuracy (%)": ("acc_pruned", 100, 1, (0, 1)), "drop Δ (pts)": ("accuracy_drop", 100, 1, (-1, 1)),
        "accuracy gap (pts)": ("accuracy_gap_pruned", 100, 1, (0, 1)), "max ψ (pts)": ("max_psi", 100, 1, (0, 1)),
        "Ψ_PW (pts)": ("psi_pw", 100, 1, (0, 2)), "ξ (loss gap)": ("xi", 1, 3, (0, math.inf)),
        "overall accuracy": ("acc_pruned", 100, 1, (0, 1))}

DIAG_LABELS = {"gradient norm ‖g_a‖": "grad_norm", "Hessian top eigenvalue λ(H_a)": "hessian_top_eigenvalue",
               "Hessian trace tr(H_a)": "hessian_trace", "closeness to boundary 1 − Σ p_c²": "gini",
               "closeness to boundary f(1 − f)": "f_one_minus_f", "logit margin z_y − max z_c": "margin"}


def recompute(root):
    """(cells that match, mismatches, tables not checked) for the report of the study folder ``root``."""
    root = Path(root)
    p = Tables()
    p.feed((root / "report.html").read_text())
    tab = pd.read_csv(root / "table.csv", dtype={"group": str}, keep_default_na=False, na_values=[""])
    ms = pd.read_csv(root / "measures.csv")
    ok, bad, skipped = 0, [], []

    def cmp(where, got, want):
        nonlocal ok
        g = (got[0], got[1])
        if g == want:
            ok += 1
        else:
            bad.append(f"{where}: html {g!r} != recomputed {want!r}")

    for t in p.tables:
        cap, hdr, rows = t["caption"] or "", t["header"], t["rows"]
        m = re.match(r"^(\w+) accuracy per (.+?) \(%\), (\S+), (\w+): ", cap)
        if m:
            split, group, method, stage = m.groups()
            rates = [rate_of(h) for h in hdr[3:]]
            bg = tab[tab.split == split]
            for row in rows:
                name = row[0][0]
                if name in MEAS or name in ("accuracy gap (pts)",):
                    col, sc, dg, bd = MEAS[name]
                    d = ms[(ms.stage == "dense") & (ms.split == split)]
                    want = fmt(d[col], sc, dg, bd) if col in ("acc_pruned", "accuracy_gap_pruned") else ("–", "")
                    cmp(f"{cap[:40]}|{name}|dense", row[2], want)
                    for j, r in enumerate(rates):
                        sub = ms[(ms.method == method) & (ms.stage == stage) & (ms.split == split) & close_rate(ms.sparsity, r)]
                        cmp(f"{cap[:40]}|{name}|{r}", row[3 + j], fmt(sub[col], sc, dg, bd))
                    continue
                g = bg[bg.group == name]
                cmp(f"{cap[:40]}|{name}|n", row[1], (str(int(g.n.iloc[0])) if len(g) else "0", ""))
                dense = g[g.stage == "dense"]
                cmp(f"{cap[:40]}|{name}|dense", row[2], fmt(dense.acc_dense, 100, 1, (0, 1)))
                for j, r in enumerate(rates):
                    sub = g[(g.method == method) & (g.stage == stage) & close_rate(g.sparsity, r)]
                    cmp(f"{cap[:40]}|{name}|{r}", row[3 + j], fmt(sub.acc_pruned, 100, 1, (0, 1)))
                    # the tint: red where the mean drop > 0.5 points
                    style = row[3 + j][3].get("style", "")
                    dm = sub.accuracy_drop.mean() * 100
                    want_tint = "" if not np.isfinite(dm) or abs(dm) < 0.5 else ("214,40,40" if dm > 0 else "18,183,106")
                    if want_tint not in style or (not want_tint and style):
                        bad.append(f"tint {name} {r}: {style!r} vs drop {dm}")
            continue
        m = re.match(r"^(\w+) normalised accuracy acc_a\(pruned\) / acc_a\(dense\), (\S+), after", cap)
        if m:
            split, method = m.groups()
            rates = [rate_of(h) for h in hdr[1:]]
            for row in rows:
                g = tab[(tab.split == split) & (tab.group == row[0][0]) & (tab.method == method) & (tab.stage == "finetuned")]
                for j, r in enumerate(rates):
                    cmp(f"norm|{row[0][0]}|{r}", row[1 + j],
                        fmt(g[close_rate(g.sparsity, r)].normalized_accuracy, 1, 3, (0, math.inf)))
            continue
        m = re.match(r"^(\S+), (\w+), (\w+): mean ± std over seeds", cap)
        if m and hdr and hdr[0] == "rate":
            method, stage, split = m.groups()
            for row in rows:
                r = rate_of(row[0][0])
                for j, h in enumerate(hdr[1:]):
                    col, sc, dg, bd = MEAS[h]
                    if r == 0:
                        d = ms[(ms.stage == "dense") & (ms.split == split)]
                        want = fmt(d[col], sc, dg, bd) if col in ("acc_pruned", "accuracy_gap_pruned") else ("–", "")
                    else:
                        sub = ms[(ms.method == method) & (ms.stage == stage) & (ms.split == split) & close_rate(ms.sparsity, r)]
                        want = fmt(sub[col], sc, dg, bd)
                    cmp(f"measures {method} {stage} {split}|{r}|{h}", row[1 + j], want)
            continue
        if cap.startswith("achieved sparsity per layer"):
            ls = pd.read_csv(root / "layer_sparsity.csv")
            rates = [rate_of(h) for h in hdr[1:]]
            for row in rows:
                for j, r in enumerate(rates):
                    v = ls[(ls.layer == row[0][0]) & close_rate(ls.sparsity, r)].achieved.mean()
                    cmp(f"layers {row[0][0]} {r}", row[1 + j], (f"{v * 100:.1f}" if v == v else "–", ""))
            continue
        m = re.match(r"^dense model, (\w+) data: mean ± std", cap)
        if m:
            dsplit = m.group(1)
            dg = pd.read_csv(root / "diagnostics.csv", dtype={"group": str}, keep_default_na=False, na_values=[""])
            dg = dg[dg.split == dsplit]
            for row in rows:
                g = dg[dg.group == row[0][0]]
                for j, h in enumerate(hdr[1:]):
                    mm = re.match(r"accuracy drop at (\S+) \((\w+), pts\)", h)
                    if mm:
                        r, sp = rate_of(mm.group(1)), mm.group(2)
                        meth = "nft"
                        sub = tab[(tab.group == row[0][0]) & (tab.split == sp) & (tab.method == meth) & (tab.stage == "finetuned") & close_rate(tab.sparsity, r)]
                        cmp(f"diag drop {row[0][0]}", row[1 + j], fmt(sub.accuracy_drop, 100, 1, (-1, 1)))
                    else:
                        col = DIAG_LABELS[h]
                        cmp(f"diag {row[0][0]} {col}", row[1 + j], fmt(g[col], 1, 3))
            continue
        m = re.match(r"^(right after pruning \(one-shot\)|after fine-tuning): means over groups and seeds", cap)
        if m:
            stage = "oneshot" if "one-shot" in m.group(1) else "finetuned"
            t1 = pd.read_csv(root / "theorem1.csv", dtype={"group": str})
            for row in rows:
                meth, r = row[0][0], rate_of(row[1][0])
                sub = t1[(t1.method == meth) & (t1.stage == stage) & close_rate(t1.rate, r)]
                sub = sub[np.isfinite(sub.excess_loss) & np.isfinite(sub.bound)]
                want = [f"{sub.distance.mean():.2f}", f"{sub.gradient_term.mean():.3f}", f"{sub.curvature_term.mean():.3f}",
                        f"{sub.bound.mean():.3f}", f"{sub.excess_loss.mean():.3f}",
                        f"{int((sub.excess_loss <= sub.bound).sum())}/{len(sub)}"]
                for j, w in enumerate(want):
                    cmp(f"thm1 {stage} {meth} {r} {hdr[2 + j]}", (row[2 + j][0], row[2 + j][1]), (w, ""))
            continue
        if hdr[:2] == ["method", hdr[1]] and len(hdr) == 7 and hdr[2] == "‖g_a‖·d":
            # per group at the top rate, one-shot
            t1 = pd.read_csv(root / "theorem1.csv", dtype={"group": str})
            top = t1.rate.max()
            for row in rows:
                sub = t1[(t1.method == row[0][0]) & (t1.group == row[1][0]) & (t1.stage == "oneshot") & close_rate(t1.rate, top)]
                want = [f"{sub.gradient_term.mean():.3f}", f"{sub.curvature_term.mean():.3f}", f"{sub.bound.mean():.3f}",
                        f"{sub.excess_loss.mean():.3f}", f"{int(sub.holds.sum())}/{len(sub)}"]
                for j, w in enumerate(want):
                    cmp(f"thm1 group {row[1][0]} {hdr[2 + j]}", row[2 + j], (w, ""))
            continue
        m = re.match(r"^(.+), (finetuned|oneshot): Spearman ρ$", cap)
        if m:
            who, stage = m.groups()
            meth = "nft" if who.startswith("every method") else who
            cr = pd.read_csv(root / "correlations.csv")
            rates = [rate_of(h) for h in hdr[2:]]
            for row in rows:
                dname = DIAG_LABELS[row[0][0]]
                outcome = "accuracy_drop" if row[1][0] == "accuracy drop" else "excess_loss"
                for j, r in enumerate(rates):
                    c = cr[(cr.method == meth) & (cr.stage == stage) & (cr.diagnostic == dname) & (cr.outcome == outcome) & close_rate(cr.sparsity, r)]
                    if c.empty:
                        cmp(f"rho {dname} {outcome} {r}", row[2 + j], ("–", ""))
                        continue
                    per = [v for v in ast.literal_eval(c.per_seed.iloc[0].replace("nan", "None")) if v is not None]
                    w = fmt(per, 1, 2)
                    if c.n_seeds.iloc[0] >= 2 and np.isfinite(c.low.iloc[0]):
                        w = (w[0], f"[{fixed(c.low.iloc[0], 2)}, {fixed(c.high.iloc[0], 2)}]")
                    if abs(np.mean(per) - c.rho.iloc[0]) > 1e-12:
                        bad.append(f"rho mean vs per_seed {dname} {r}")
                    pv = c.p_value.iloc[0]
                    w = (w[0], w[1] + (f"p={pv:.2g}" if pv == pv else ""))
                    cmp(f"rho {stage} {dname} {outcome} {r}", (row[2 + j][0], row[2 + j][1].replace(" ", "")),
                        (w[0], w[1].replace(" ", "")))
            continue
        skipped.append((t["section"], cap[:70], hdr[:4]))
    return ok, bad, skipped


def test_every_number_in_the_report_tables_equals_a_recomputation_from_the_saved_csvs(study, tmp_path):
    import shutil

    from prunefair.api import write_outputs
    from prunefair.study import StudyResults

    root = tmp_path / "study"
    shutil.copytree(study[0], root)
    write_outputs(StudyResults.from_store(root), root)
    ok, bad, skipped = recompute(root)
    assert bad == []
    assert {s[0] for s in skipped} == {"settings"}  # every other table was recognised and checked
    assert ok > 300
