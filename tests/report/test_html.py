"""The self-contained HTML report: content, numbers, escaping, optional sections, CLI."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from prunefair import run_study
from prunefair.report.html import write_report
from prunefair.report.stats import interval_table, t_interval
from prunefair.study import StudyResults
from prunefair.study.cells import DenseCell, diagnostics_key
from tests.conftest import tiny_study


def _html(root: Path) -> str:
    return (root / "report.html").read_text()


def _edit_cells(root: Path, fn) -> None:
    for p in sorted((root / "cells").glob("*/result.json")):
        r = json.loads(p.read_text())
        fn(r)
        p.write_text(json.dumps(r))


def test_t_interval_against_closed_form():
    iv = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / np.sqrt(3)  # t_{0.975, 2} from tables, s = 1
    assert iv.mean == 2.0 and iv.std == 1.0 and iv.n == 3
    assert iv.lo == pytest.approx(2 - half) and iv.hi == pytest.approx(2 + half)
    one = t_interval([5.0, float("nan")])
    assert one.n == 1 and not one.has_ci and one.std == 0.0
    import pandas as pd

    df = pd.DataFrame({"k": [0, 0, 0, 0, 1, 1, 1, 2, 2], "v": [0.1, 0.4, 0.2, 0.9, 3.0, 1.0, np.inf, -np.inf, 2.0]})
    tab = interval_table(df, ["k"], ["v"]).set_index("k")
    for k, sub in df.groupby("k"):
        ref = t_interval(sub.v)
        assert tab.loc[k, "v_lo"] == pytest.approx(ref.lo, nan_ok=True)
        assert tab.loc[k, "v_hi"] == pytest.approx(ref.hi, nan_ok=True)
        assert tab.loc[k, "v_mean"] == pytest.approx(ref.mean)  # +-inf skipped, as t_interval does
        assert tab.loc[k, "v_std"] == pytest.approx(ref.std) and tab.loc[k, "n"] == ref.n


def test_report_is_self_contained_with_figures_and_tables(study):
    root, results = study
    html = _html(root)  # written by run_study (api.write_outputs)
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html, re.I)
    assert "<script" not in html.lower() and "<link" not in html.lower() and "@import" not in html
    imgs = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(imgs) >= 1
    assert base64.b64decode(imgs[0]) == (root / "figures" / "fig1_group_accuracy.png").read_bytes()
    assert html.count("<table") >= 5
    for section in ("reading", "accuracy", "measures", "failed", "settings"):
        assert f'<section id="{section}">' in html
    # sections appear exactly when their data exist: diagnostics if the runner stored them (on by default)
    has_diag = any("grad_norm" in (r.get("diagnostics") or {}) for r in results.cells)
    for optional in ("diagnostics", "theorem1", "correlations"):
        assert (f'<section id="{optional}">' in html) == has_diag
    for optional in ("mitigation", "group-size"):  # one method, no group-size studies
        assert f'<section id="{optional}">' not in html
    names = results.by_group.group.unique()
    assert all(f"<td>{n}</td>" in html for n in names)
    assert "All 6 stored cells of this configuration finished." in html


def test_table_cells_equal_independent_means_and_t_intervals(study):
    root, results = study
    html = _html(root)
    bg = results.by_group
    sub = bg[(bg.method == "nft") & (bg.sparsity == 0.9) & (bg.stage == "finetuned") & (bg.split == "test")]
    for gid, g in sub.groupby("group_id"):
        x = g.sort_values("seed").acc_pruned.to_numpy() * 100
        mean, sd = x.mean(), x.std(ddof=1)
        half = stats.t.ppf(0.975, len(x) - 1) * sd / np.sqrt(len(x))
        lo, hi = max(mean - half, 0.0), min(mean + half, 100.0)
        cell = f"{mean:.1f} ± {sd:.1f}<span class=ci>[{lo:.1f}, {hi:.1f}]</span>"
        assert cell in html, (gid, cell)


def test_reading_is_computed_from_the_numbers(study):
    root, results = study
    html = _html(root)
    m = results.measures
    drop = m[(m.method == "nft") & (m.sparsity == 0.9) & (m.stage == "finetuned") & (m.split == "test")]
    iv = t_interval(drop.accuracy_drop)
    assert (f"At 90% sparsity (nft, after fine-tuning), test accuracy fell by {iv.mean * 100:.1f} points "
            f"(95% CI {max(iv.lo, -1) * 100:.1f} to {min(iv.hi, 1) * 100:.1f}) overall") in html
    bg = results.by_group
    g = bg[(bg.method == "nft") & (bg.sparsity == 0.9) & (bg.stage == "finetuned") & (bg.split == "test")]
    worst = g.groupby("group").accuracy_drop.mean().idxmax()
    assert f"for class {worst}, while" in html
    gap = m[(m.stage == "dense") & (m.split == "test")].accuracy_gap_pruned.mean() * 100
    assert f"class grew from {gap:.1f} points (dense)" in html or f"class shrank from {gap:.1f}" in html


def test_text_from_data_is_escaped(study, tmp_path):
    import shutil

    root = tmp_path / "study"
    shutil.copytree(study[0], root)
    toml = (root / "config.toml").read_text()
    (root / "config.toml").write_text(toml.replace('name = "tiny"', 'name = "<img src=x onerror=alert(1)>"', 1))

    def poison(r):
        for metrics in [r.get("metrics", {}), r.get("oneshot", {})]:
            for split in metrics.values():
                split["group_names"][0] = "<script>alert('x')</script>"
                split["group_names"][1] = 'Black & "White"'
        if r["name"] == "s1_p0.9_nft":
            r.update(status="failed", error="ValueError: <b>boom</b> & <script>bad()</script>")

    _edit_cells(root, poison)
    described = json.loads((root / "data.json").read_text())  # the data's own group names, poisoned alike
    described["group_names"][:2] = ["<script>alert('x')</script>", 'Black & "White"']
    (root / "data.json").write_text(json.dumps(described))
    html = write_report(StudyResults.from_store(root), root).read_text()
    assert "<script" not in html and "<img src=x" not in html and "<b>boom" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "Black &amp; &quot;White&quot;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "ValueError: &lt;b&gt;boom&lt;/b&gt; &amp; &lt;script&gt;bad()&lt;/script&gt;" in html
    assert '<section id="failed">' in html and "1 of 6 cells failed" in html


def _dense_drops(results, seed):
    bg = results.by_group
    g = bg[(bg.seed == seed) & (bg.method == "nft") & (bg.sparsity == 0.9) & (bg.stage == "finetuned") &
           (bg.split == "test")].sort_values("group_id")
    return g.accuracy_drop.to_numpy()


def test_diagnostics_theorem1_and_correlations_from_the_store(study, tmp_path):
    import shutil

    src, results = study
    root = tmp_path / "study"
    shutil.copytree(src, root)
    lam = np.linspace(1.0, 10.0, 10)

    def add(r):
        if r["kind"] == "dense":  # the shape GroupDiagnostics.to_dict() writes
            names = r["metrics"]["train"]["group_names"]
            grad = (_dense_drops(results, r["seed"]) + 0.01 * np.arange(10)).tolist()
            r["diagnostics"] = {"key": diagnostics_key(results.config, DenseCell(r["seed"], r["key"])),
                                "split": None, "group_names": names, "grad_norm": grad,
                                "hessian_top_eigenvalue": lam.tolist(), "gini": [0.1] * 10,
                                "f_one_minus_f": [None] * 10,
                                "per_group": [{"group": n, "count": 1} for n in names], "settings": {"seed": 0}}

    _edit_cells(root, add)
    res = StudyResults.from_store(root)
    from prunefair.report.sections import Context

    ctx = Context.build(res)
    assert set(ctx.diag.diagnostic) == {"grad_norm", "hessian_top_eigenvalue", "boundary_distance"}
    assert set(ctx.diag.split) == {"train"}
    # Theorem 1 by hand for one cell
    cell = json.loads((root / "cells" / "s1_p0.9_nft" / "result.json").read_text())
    dense = json.loads((root / "cells" / "s1_dense" / "result.json").read_text())
    d = cell["distance_oneshot"]
    g = np.asarray(dense["diagnostics"]["grad_norm"])
    r_a = np.asarray(cell["oneshot"]["train"]["loss"]) - np.asarray(dense["metrics"]["train"]["loss"])
    t1 = ctx.theorem1
    row = t1[(t1.seed == 1) & (t1.sparsity == 0.9) & (t1.stage == "oneshot")].sort_values("group_id")
    np.testing.assert_allclose(row.bound, g * d + 0.5 * lam * d ** 2)
    np.testing.assert_allclose(row.excess_loss, r_a, rtol=1e-9)
    assert list(row.holds) == list(r_a <= g * d + 0.5 * lam * d ** 2)
    # grad_norm was built to rank the groups as their accuracy drop does (ties broken): rho is 1 for every seed
    c = ctx.corr
    top = c[(c.method == "nft") & (c.sparsity == 0.9) & (c.stage == "finetuned") & (c.diagnostic == "grad_norm") &
            (c.outcome == "accuracy_drop")]
    ref = [stats.spearmanr(_dense_drops(results, s) + 0.01 * np.arange(10), _dense_drops(results, s)).statistic
           for s in (0, 1)]
    assert top.rho_mean.iloc[0] == pytest.approx(np.mean(ref))
    html = write_report(res, root).read_text()
    for section in ("diagnostics", "theorem1", "correlations"):
        assert f'<section id="{section}">' in html
    assert (root / "figures" / "fig12_13_diagnostics.png").stat().st_size > 5000
    assert html.count("data:image/png;base64,") == 2
    assert "ρ = " in html and "Theorem 1 bound on the excess loss holds for" in html
    # a failed diagnostics run is shown (escaped), the other seed's diagnostics still used
    p = root / "cells" / "s0_dense" / "result.json"
    r = json.loads(p.read_text())
    key = r["diagnostics"]["key"]
    r["diagnostics"] = {"key": key, "error": "RuntimeError: lanczos <did not> converge"}
    p.write_text(json.dumps(r))
    html = write_report(StudyResults.from_store(root), root).read_text()
    assert "diagnostics of s0_dense failed: RuntimeError: lanczos &lt;did not&gt; converge" in html
    assert '<section id="theorem1">' in html
    # diagnostics computed under another [diagnostics] section are not shown as this study's
    r["diagnostics"] = {"key": "computed-with-other-settings", "error": "RuntimeError: old"}
    p.write_text(json.dumps(r))
    html = write_report(StudyResults.from_store(root), root).read_text()
    assert "RuntimeError: old" not in html and "did not" not in html


def test_diagnostics_reader_accepts_documented_shapes():
    from prunefair.report.explain import diagnostics_table

    base = {"kind": "dense", "seed": 0, "metrics": {"train": {"group_names": ["White", "Black"]}}}
    flat = {**base, "diagnostics": {"split": "train", "grad_norm": [1.0, 2.0], "hessian_top": [3.0, 4.0]}}
    by_split = {**base, "diagnostics": {"train": {"group_names": ["White", "Black"], "grad_norm": [1.0, 2.0],
                                                  "hessian_top_eigenvalue": [3.0, 4.0]}}}
    records = {**base, "diagnostics": {"split": "train", "groups": [
        {"group": "White", "grad_norm": 1.0, "lambda_max": 3.0, "count": 5},
        {"group": "Black", "grad_norm": 2.0, "lambda_max": 4.0, "count": 6}]}}
    tables = [diagnostics_table([c]).sort_values(["diagnostic", "group_id"]).reset_index(drop=True)
              for c in (flat, by_split, records)]
    for t in tables:
        assert list(t.group) == ["White", "Black"] * 2
        assert list(t.diagnostic) == ["grad_norm"] * 2 + ["hessian_top_eigenvalue"] * 2
        assert list(t.value) == [1.0, 2.0, 3.0, 4.0] and set(t.split) == {"train"}


@pytest.mark.slow
def test_mitigation_section_compares_methods(tmp_path):
    results = run_study(tiny_study(tmp_path, seeds=[0, 1], prune={"rates": [0.9]},
                                   finetune={"epochs": 2, "methods": ["nft", "ceag"]}))
    html = _html(tmp_path / "study")
    assert '<section id="mitigation">' in html and "final dual multipliers" in html
    # both methods prune the same dense model with the same mask: one-shot tables once, not once per method
    shared = "every method (one dense model and mask per seed and rate)"
    assert html.count(f"<summary>{shared}: one-shot (before fine-tuning), test</summary>") == 1
    assert "<summary>ceag: one-shot" not in html and "-0.00" not in html
    from PIL import Image

    with Image.open(tmp_path / "study" / "figures" / "fig1_group_accuracy.png") as im:
        assert im.size == (1536, 504)  # two methods side by side (6.4 in each at 120 dpi)
    m = results.measures
    sel = (m.sparsity == 0.9) & (m.stage == "finetuned") & (m.split == "test")
    a = m[sel & (m.method == "nft")].max_psi.mean() * 100
    b = m[sel & (m.method == "ceag")].max_psi.mean() * 100
    assert f"ceag moved max ψ from {a:.1f} (nft) to {b:.1f} points" in html
    assert html.count("class=best") == 1  # one outlined method per rate (one rate here), in the test table only
    # report/mitigation.py's outputs are embedded too: the dual figure and the constraint shares
    assert "mitigation_duals_p0.9.png</figcaption>" in html and "constraints met (share of seeds)" in html
    # the paired comparison, recomputed from the cells' raw counts
    assert "each method minus nft on the same seeds" in html
    paired = pd.read_csv(tmp_path / "study" / "mitigation_paired.csv")
    row = paired[(paired.split == "test") & (paired.method == "ceag")].iloc[0]
    cells = {c["name"]: c for c in results.cells}

    def accs(cell):
        t = cell["metrics"]["test"]
        return np.array(t["correct"]) / np.array(t["count"]), sum(t["correct"]) / sum(t["count"])

    diffs = {"acc": [], "psi": []}
    for seed in (0, 1):
        per = {}
        for method in ("nft", "ceag"):
            cell = cells[f"s{seed}_p0.9_{method}"]
            (ga, oa), (gd, od) = accs(cell), accs(cells[cell["dense"]])
            per[method] = (oa, ((gd - ga) - (od - oa)).max())
        diffs["acc"].append(per["ceag"][0] - per["nft"][0])
        diffs["psi"].append(per["ceag"][1] - per["nft"][1])
    assert row.acc_pruned_diff == pytest.approx(np.mean(diffs["acc"]), abs=1e-9)
    assert row.max_psi_diff == pytest.approx(np.mean(diffs["psi"]), abs=1e-9)
    # a failed nft cell of seed 1: the sentence compares both methods on seed 0 alone, not nft's 1 seed with ceag's 2
    failed = tmp_path / "study" / "cells" / "s1_p0.9_nft" / "result.json"
    failed.write_text(json.dumps({**json.loads(failed.read_text()), "status": "failed", "error": "gone"}))
    from prunefair.api import write_outputs

    write_outputs(StudyResults.from_store(tmp_path / "study"), tmp_path / "study")
    html = _html(tmp_path / "study")
    psi0 = {k: m[sel & (m.method == k) & (m.seed == 0)].max_psi.item() * 100 for k in ("nft", "ceag")}
    assert f"ceag moved max ψ from {psi0['nft']:.1f} (nft) to {psi0['ceag']:.1f} points" in html


def test_cli_report_writes_and_prints_the_report(study, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from prunefair.cli import app

    root = tmp_path / "study"
    shutil.copytree(study[0], root)
    (root / "report.html").unlink()
    out = CliRunner().invoke(app, ["report", str(root), "--quiet"])
    assert out.exit_code == 0, out.output
    assert f"report: {root / 'report.html'}" in out.output.replace("\n", "")
    assert (root / "report.html").stat().st_size > 20_000


@pytest.mark.slow
def test_group_size_experiment_from_several_studies(tmp_path):
    from typer.testing import CliRunner

    from prunefair.cli import app

    dirs = []
    for f in (1.0, 5.0):
        cfg = tiny_study(tmp_path / f"f{f:g}", prune={"rates": [0.5]}, data={"resample": {"group": "3", "factor": f}},
                         diagnostics={"trace_samples": 0, "max_samples": 16, "iterations": 3})
        run_study(cfg)
        dirs.append(tmp_path / f"f{f:g}" / "study")

        def add(r, f=f):  # known gradient norms in the stored diagnostics (group 3 shrinks with its size)
            if r["kind"] == "dense":
                assert "grad_norm" in r["diagnostics"]  # the runner stored them
                r["diagnostics"]["grad_norm"] = [1.0 / f if i == 3 else 1.0 + 0.1 * i for i in range(10)]
        _edit_cells(dirs[-1], add)
    args = ["report", str(dirs[0]), "--quiet"] + [a for d in dirs for a in ("--group-size", str(d))]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    gs = __import__("pandas").read_csv(dirs[0] / "group_size.csv", dtype={"group": str, "upsampled": str})
    assert sorted(gs.factor.unique()) == [1.0, 5.0] and set(gs.upsampled) == {"3"} and len(gs) == 20
    assert gs[(gs.factor == 5.0) & (gs.group == "3")].grad_norm.iloc[0] == pytest.approx(0.2)
    html = (dirs[0] / "report.html").read_text()
    assert '<section id="group-size">' in html and (dirs[0] / "figures" / "fig14_15_group_size.png").is_file()
    assert "Upsampling 3 from 1x to 5x changed its dense gradient norm from 1.000 to 0.200" in html
    # a folder without gradient norms is a clear error naming it
    bad = CliRunner().invoke(app, ["report", str(dirs[0]), "--group-size", str(tmp_path / "nope")])
    assert bad.exit_code == 2 and "nope" in bad.output


def test_one_seed_and_all_failed_studies_still_read_well(study, tmp_path):
    import shutil

    root = tmp_path / "study"
    shutil.copytree(study[0], root)
    for p in (root / "cells").glob("s1_*"):
        shutil.rmtree(p)  # seed 1 pending: one seed left, so no intervals
    html = write_report(StudyResults.from_store(root), root).read_text()
    assert "With a single seed there are no confidence intervals" in html
    reading = html.split('<section id="reading">')[1].split("</section>")[0]
    assert "<span class=ci>n=1</span>" in html
    assert re.search(r"test accuracy (fell by \d+\.\d points overall but by \d+\.\d points for|(rose|changed) by "
                     r"\d+\.\d points overall; for )", reading)  # never "fell by -1.4"

    def fail(r):
        r.update(status="failed", error=f"RuntimeError: cell {r['name']} broke")

    _edit_cells(root, fail)
    html = write_report(StudyResults.from_store(root), root).read_text()
    assert "No pruned cell has finished yet (0 done, 3 failed)" in html
    assert html.count("RuntimeError: cell ") == 3 and '<section id="accuracy">' not in html


def test_report_says_why_theorem1_is_missing_when_its_split_is_not_evaluated(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the config warns about exactly this
        results = run_study(tiny_study(tmp_path, prune={"rates": [0.5]}, eval={"splits": ["test"]},
                                       diagnostics={"trace_samples": 0, "max_samples": 16}), quiet=True)
    html = write_report(results, tmp_path / "study").read_text()
    assert "Not computed: the diagnostics are on the train split, which the study did not evaluate" in html


def test_reading_leaves_out_a_group_without_test_samples(tmp_path):
    """A group with one sample lands in train only: the reading names it as absent, never as 'nan%'."""
    from prunefair.data import register_arrays
    from prunefair.report.narrative import reading
    from prunefair.report.sections import Context

    rng = np.random.default_rng(0)
    x = rng.normal(size=(301, 6)).astype("float32")
    y = (x[:, 0] > 0).astype(int)
    grp = np.array(["A"] + ["B", "C"] * 150)
    register_arrays("reading_rare_group", x, y, attributes={"grp": grp})
    results = run_study(tiny_study(tmp_path, seeds=[0, 1], data={"dataset": "reading_rare_group", "group": "grp"},
                                   prune={"rates": [0.5]}, diagnostics={"enabled": False}), quiet=True)
    text = " ".join(reading(results, Context.build(results)))
    assert "nan" not in text.lower()
    assert "grp A has no test samples and is left out of this reading" in text or \
        "A has no test samples and is left out of this reading" in text
    assert "With a single seed" not in text


def test_outputs_the_config_no_longer_produces_are_removed(tmp_path):
    cfg = tiny_study(tmp_path, prune={"rates": [0.5]}, finetune={"methods": ["nft", "el"]},
                     diagnostics={"enabled": False})
    run_study(cfg, quiet=True)
    root = tmp_path / "study"
    assert (root / "mitigation.csv").is_file() and (root / "figures" / "mitigation_duals_p0.5.png").is_file()
    run_study({**cfg, "finetune": {**cfg["finetune"], "methods": ["nft"]}}, quiet=True)
    assert not (root / "mitigation.csv").exists() and not (root / "figures" / "mitigation_duals_p0.5.png").exists()
    assert (root / "figures" / "fig1_group_accuracy.png").is_file() and (root / "table.csv").is_file()


def test_report_with_every_pruning_cell_failed_shows_the_dense_accuracies(tmp_path):
    from prunefair.api import CellsFailed

    with pytest.warns(CellsFailed):
        results = run_study(tiny_study(tmp_path, prune={"rates": [0.5]}, finetune={"lr": 1e12},
                                       diagnostics={"enabled": False}), quiet=True)
    assert len(results.failed) == 1 and not results.measures.empty
    html = write_report(results, tmp_path / "study").read_text()
    assert '<section id="accuracy">' in html and "No pruning cell has finished" in html
    assert "Figure 1:" in html and '<section id="figures">' not in html


def test_report_without_a_test_split_with_dollar_names_and_normalised_accuracy(tmp_path):
    """eval.splits without test: the report reads val (it failed on an empty test figure); a '$' in a group name
    is drawn literally (matplotlib read it as mathtext and stopped the report); nft leads the figures."""
    from prunefair.data import register_arrays
    from prunefair.report.figures import group_accuracy_curves, method_order

    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 5)).astype("float32")
    grp = np.array(["$5-$10", r"$\alpha_{x$ & 1"] * 120)
    register_arrays("dollar_groups", x, (x[:, 0] > 0).astype(int), attributes={"grp": grp})
    results = run_study(tiny_study(tmp_path, data={"dataset": "dollar_groups", "group": "grp"},
                                   prune={"rates": [0.5]}, eval={"splits": ["train", "val"]},
                                   finetune={"methods": ["nft", "el"]}, diagnostics={"enabled": False}), quiet=True)
    root = tmp_path / "study"
    html = (root / "report.html").read_text()
    assert (root / "figures" / "fig1_group_accuracy.png").stat().st_size > 5000
    assert "val accuracy per grp" in html and "normalised accuracy" in html
    assert method_order(["el", "ceag", "nft"]) == ["nft", "el", "ceag"]  # no study order: the known methods' order
    assert method_order(["zz", "el", "ceag", "nft"], ["ceag", "el"]) == ["nft", "ceag", "el", "zz"]
    curves = group_accuracy_curves(results, split="val")
    by_hand = results.by_group.query("split == 'val' and stage == 'finetuned' and method == 'nft'")
    assert sorted(curves[(curves.method == "nft") & (curves.sparsity == 0.5)]["mean"]) == \
        pytest.approx(sorted(by_hand.groupby("group").acc_pruned.mean()))


def test_reading_compares_the_gap_on_the_seeds_both_cells_have(tmp_path):
    import shutil

    from prunefair.report.narrative import reading
    from prunefair.report.sections import Context

    run_study(tiny_study(tmp_path, seeds=[0, 1, 2], prune={"rates": [0.5, 0.9]}, diagnostics={"enabled": False}),
              quiet=True)
    root = tmp_path / "study"
    for s in (1, 2):
        shutil.rmtree(root / "cells" / f"s{s}_p0.9_nft")
    res = StudyResults.from_store(root)
    text = " ".join(reading(res, Context.build(res)))
    ms = res.measures
    seed0 = ms[(ms.seed == 0) & (ms.stage == "dense") & (ms.split == "test")].accuracy_gap_pruned.iloc[0]
    everyone = ms[(ms.stage == "dense") & (ms.split == "test")].accuracy_gap_pruned.mean()
    assert f"{seed0 * 100:.1f} points (dense)" in text or f"about {seed0 * 100:.1f} points (dense" in text
    if f"{everyone * 100:.1f}" != f"{seed0 * 100:.1f}":
        assert f"{everyone * 100:.1f} points (dense)" not in text


def test_group_styles_stay_distinct_beyond_ten_groups_and_numbers_never_read_minus_zero():
    from prunefair.report.html import interval, num, signed
    from prunefair.report.plotting import group_style
    from prunefair.report.stats import Interval

    for n in (3, 10, 12, 20, 45):
        styles = {(group_style(i, n)["color"], group_style(i, n)["marker"], group_style(i, n)["linestyle"])
                  for i in range(n)}
        assert len(styles) == n, n
    assert num(-0.0004, 2) == "0.00" and num(-0.006, 2) == "-0.01" and signed(-0.001) == "+0.00"
    assert str(interval(Interval(-0.001, 0.19, -0.24, 0.23, 3), scale=1, digits=2)).startswith("0.00 ± 0.19")


def test_every_table_and_figure_lists_the_methods_in_the_study_files_order(tmp_path):
    """finetune.methods = [nft, el_rb, ceag, el]: Figure 1's panels, the report's tables and the mitigation table
    all read them so (Figure 1 had sorted them alphabetically, the mitigation outputs by a fixed order, while the
    report's tables followed the study file)."""
    from prunefair.report.figures import group_accuracy_curves
    from prunefair.report.mitigation import dual_history, mitigation_table
    from prunefair.report.sections import Context

    results = run_study(tiny_study(tmp_path, prune={"rates": [0.5]}, finetune={"methods": ["nft", "el_rb", "ceag", "el"]},
                                   diagnostics={"enabled": False}), quiet=True)
    want = ["nft", "el_rb", "ceag", "el"]
    assert list(group_accuracy_curves(results).method.unique()) == want
    assert Context.build(results).methods == want
    table = mitigation_table(results)
    assert list(table[table.split == "test"].method) == want
    assert set(dual_history(results).method) == {"el_rb", "ceag", "el"}


def test_the_report_says_what_was_done_and_names_its_words_before_the_reading(tmp_path):
    """A reader who has not read the paper: the page once never said what sparsity, one-shot or nft meant, nor how
    long anything was trained. 'What was done' now comes first, from config.toml, with the methods of this study."""
    run_study(tiny_study(tmp_path, seeds=[0, 1], prune={"rates": [0.5, 0.9]}, finetune={"methods": ["nft", "ceag"]},
                         diagnostics={"enabled": False}), quiet=True)
    html = (tmp_path / "study" / "report.html").read_text()
    start, reading = html.index('<section id="protocol">'), html.index('<section id="reading">')
    assert start < reading and '<a href="#protocol">What was done</a>' in html
    done = html[start:reading].replace("&#x27;", "'")
    assert "For each of 2 seeds, a model 'mlp' (width 0.5) was trained for 3 epochs" in done
    assert "pruned at the sparsities 50%, 90%" in done and "fine-tuned for 1 epoch with each method (nft, ceag)" in done
    assert "plain fine-tuning" in done and "constrained excess accuracy gap" in done
    assert "equal loss" not in done  # only the methods this study ran
