"""The study folder's tables: per-group summary, per-layer sparsity, Proposition 1, no std from one seed."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from prunefair.api import write_outputs
from prunefair.report.terminal import group_table
from prunefair.study import StudyResults


@pytest.fixture()
def folder(study, tmp_path):
    root = tmp_path / "study"
    shutil.copytree(study[0], root)
    return root


def test_group_summary_is_the_mean_and_sample_std_of_table_csv(folder):
    write_outputs(StudyResults.from_store(folder), folder)
    table = pd.read_csv(folder / "table.csv")
    gs = pd.read_csv(folder / "group_summary.csv")
    rows = table[(table.method == "nft") & (table.sparsity == 0.9) & (table.stage == "finetuned")
                 & (table.split == "test")]
    for group, sub in rows.groupby("group"):
        got = gs[(gs.method == "nft") & (gs.sparsity == 0.9) & (gs.stage == "finetuned") & (gs.split == "test")
                 & (gs.group == group)].iloc[0]
        a = sub.acc_pruned.to_numpy()
        assert got.seeds == 2 == len(a)
        assert got.acc_pruned_mean == pytest.approx(a.mean())
        assert got.acc_pruned_std == pytest.approx(abs(a[0] - a[1]) / np.sqrt(2))  # ddof 1 of two values


def test_layer_sparsity_csv_holds_every_cells_stored_layers(folder):
    write_outputs(StudyResults.from_store(folder), folder)
    ls = pd.read_csv(folder / "layer_sparsity.csv")
    cells = [json.loads(p.read_text()) for p in sorted((folder / "cells").glob("s*_p*/result.json"))]
    assert len(ls) == sum(len(c["layer_sparsity"]) for c in cells) > 0
    for c in cells:
        sub = ls[(ls.seed == c["seed"]) & (ls.method == c["method"]) & (ls.sparsity == c["rate"])]
        assert list(sub.layer) == list(c["layer_sparsity"])  # the model's order
        np.testing.assert_allclose(sub.achieved, list(c["layer_sparsity"].values()))
    html = (folder / "report.html").read_text()
    assert "achieved sparsity per layer (%), mean over seeds and methods" in html


def test_diagnostics_csv_carries_proposition_1_and_the_report_states_it(folder):
    write_outputs(StudyResults.from_store(folder), folder)
    diag = pd.read_csv(folder / "diagnostics.csv")
    for seed in (0, 1):
        stored = json.loads((folder / "cells" / f"s{seed}_dense" / "result.json").read_text())["diagnostics"]
        sub = diag[diag.seed == seed]
        np.testing.assert_allclose(sub.prop1_error, stored["prop1_error"], rtol=1e-12)
        np.testing.assert_allclose(sub.cancellation, stored["cancellation"], rtol=1e-12)
        assert stored["prop1_error"] < 1e-4  # an identity: float rounding only
    html = (folder / "report.html").read_text()
    worst = max(json.loads((folder / "cells" / f"s{s}_dense" / "result.json").read_text())["diagnostics"]
                ["prop1_error"] for s in (0, 1))
    assert f"largest relative error {worst:.1e} over 2 seed(s)" in html


def test_one_seed_has_no_std_in_the_csvs_nor_the_terminal_table(folder):
    for p in (folder / "cells").glob("s1_*"):
        shutil.rmtree(p)
    results = StudyResults.from_store(folder)
    write_outputs(results, folder)
    summary = pd.read_csv(folder / "summary.csv")
    assert (summary.seeds == 1).all()
    assert summary.filter(like="_std").isna().all().all()  # undefined, not 0
    assert pd.read_csv(folder / "group_summary.csv").filter(like="_std").isna().all().all()
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(group_table(results))
    text = console.export_text()
    assert "±" not in text and "one seed" in text


def test_theorem1_csv_is_not_written_empty(folder):
    results = StudyResults.from_store(folder)
    (folder / "theorem1.csv").write_text("stale\n")
    results.by_group = results.by_group[results.by_group.split != "train"]  # the diagnostics' split not evaluated
    paths = write_outputs(results, folder)
    assert "theorem1" not in paths and not (folder / "theorem1.csv").exists()


def _measures(rows):
    cols = ["seed", "method", "sparsity", "stage", "split", "acc_pruned", "max_psi", "psi_pw"]
    return pd.DataFrame(rows, columns=cols)


def test_mitigation_paired_table_pairs_seeds_and_matches_a_loop():
    from types import SimpleNamespace

    from scipy import stats

    from prunefair.report.mitigation import mitigation_paired_table

    rng = np.random.default_rng(0)
    rows = []
    for seed in range(4):
        for method in ("nft", "ceag"):
            if method == "ceag" and seed == 3:
                continue  # a failed cell: seed 3 has no ceag, so it is left out of the pairs
            rows.append([seed, method, 0.9, "finetuned", "test", *rng.uniform(0, 1, 3)])
            rows.append([seed, method, 0.9, "oneshot", "test", 0.5, 0.5, 0.5])  # not compared
    m = _measures(rows)
    out = mitigation_paired_table(SimpleNamespace(measures=m))
    assert len(out) == 1 and out.loc[0, "method"] == "ceag" and out.loc[0, "seeds"] == 3
    for c in ("acc_pruned", "max_psi", "psi_pw"):
        d = []
        for seed in range(3):  # brute force
            pick = lambda meth: m[(m.seed == seed) & (m.method == meth) & (m.stage == "finetuned")][c].item()  # noqa: E731
            d.append(pick("ceag") - pick("nft"))
        half = stats.t.ppf(0.975, 2) * np.std(d, ddof=1) / np.sqrt(3)
        assert out.loc[0, f"{c}_diff"] == pytest.approx(np.mean(d), abs=1e-12)
        assert out.loc[0, f"{c}_lo"] == pytest.approx(np.mean(d) - half, abs=1e-12)
        assert out.loc[0, f"{c}_hi"] == pytest.approx(np.mean(d) + half, abs=1e-12)
        assert json.loads(out.loc[0, f"{c}_per_seed"]) == pytest.approx(d, abs=1e-12)
        assert out.loc[0, f"{c}_beyond_noise"] == bool(abs(np.mean(d)) > half)


def test_mitigation_paired_table_one_seed_and_no_reference():
    from types import SimpleNamespace

    from prunefair.report.mitigation import mitigation_paired_table

    one = _measures([[0, "nft", 0.9, "finetuned", "test", 0.8, 0.1, 0.2],
                     [0, "el", 0.9, "finetuned", "test", 0.7, 0.05, 0.1]])
    out = mitigation_paired_table(SimpleNamespace(measures=one))
    assert out.loc[0, "acc_pruned_diff"] == pytest.approx(-0.1)
    assert np.isnan(out.loc[0, "acc_pruned_lo"]) and not out.loc[0, "acc_pruned_beyond_noise"]  # no interval
    assert mitigation_paired_table(SimpleNamespace(measures=one[one.method == "el"])).empty


def test_without_test_split_the_correlations_use_val_and_every_embedded_figure_stays_on_disk(tmp_path):
    from prunefair import run_study
    from tests.conftest import tiny_study

    with pytest.warns(UserWarning, match="the Theorem 1 check needs"):  # the config's own warning
        run_study(tiny_study(tmp_path, seeds=[0, 1], prune={"rates": [0.9]}, eval={"splits": ["val"]}), quiet=True)
    root = tmp_path / "study"
    corr = pd.read_csv(root / "correlations.csv")
    assert set(corr.split) == {"val"}  # the report's main split (test is not evaluated), not train (not evaluated)
    html = (root / "report.html").read_text()
    assert 'id="correlations"' in html
    for name in re.findall(r'alt="[^"]*?([\w.-]+\.png)', html):
        assert (root / "figures" / name).is_file(), name  # shown in the report, so kept under figures/


def test_unreadable_diagnostics_keep_their_old_files_and_the_report_is_written(folder):
    path = folder / "cells" / "s0_dense" / "result.json"
    cell = json.loads(path.read_text())
    if "diagnostics" not in cell:
        pytest.skip("the shared study has no diagnostics")
    write_outputs(StudyResults.from_store(folder), folder)
    before = (folder / "diagnostics.csv").read_bytes()
    cell["diagnostics"]["grad_norm"] = cell["diagnostics"]["grad_norm"][:-1]  # a hand-edited, damaged record
    path.write_text(json.dumps(cell))
    (folder / "report.html").unlink()
    with pytest.warns(UserWarning, match="diagnostics tables and figures not rewritten"):
        write_outputs(StudyResults.from_store(folder), folder)
    assert (folder / "report.html").is_file() and (folder / "diagnostics.csv").read_bytes() == before


def test_group_names_take_the_possessive_of_their_spelling():
    from prunefair.report.narrative import possessive

    assert possessive("Others") == "Others'" and possessive("class 3") == "class 3's" and possessive("0-2") == "0-2's"


def test_group_size_figure_says_when_it_has_one_seed(monkeypatch, tmp_path):
    import prunefair.report.group_size as gs

    shown = {}
    monkeypatch.setattr(gs, "save_figure", lambda fig, path, **kw: shown.setdefault("title", fig.axes[0].get_title()))
    rows = [{"factor": f, "seed": 0, "group_id": a, "group": g, "grad_norm": 1.0 / f + a, "upsampled": "f"}
            for f in (1, 5) for a, g in enumerate(("f", "m"))]
    gs.figure_group_size(pd.DataFrame(rows), tmp_path / "x.png", title="t")
    assert shown["title"] == "t\n(one seed: no error bars)"


def test_dual_figure_names_groups_without_the_train_split(folder, monkeypatch):
    import prunefair.report.mitigation as mit

    results = StudyResults.from_store(folder)
    results.by_group = results.by_group.assign(group="digit " + results.by_group.group.astype(str))  # not "0".."9"
    names = list(results.by_group.drop_duplicates("group_id").sort_values("group_id").group)
    history = pd.DataFrame([{"seed": 0, "method": "el", "sparsity": 0.9, "epoch": e, "group_id": a, "multiplier": 0.1,
                             "violation": 0.0, "val_max_psi": None} for e in (1, 2) for a in range(len(names))])
    monkeypatch.setattr(mit, "dual_history", lambda r: history)
    results.by_group = results.by_group[results.by_group.split != "train"]  # as with eval.splits = ["val", "test"]
    for cell in results.cells:
        cell.get("metrics", {}).pop("train", None)
    shown = {}
    monkeypatch.setattr(mit, "save_figure", lambda fig, path, **kw: shown.setdefault(
        "legend", [t.get_text() for t in fig.axes[1].get_legend().get_texts()]))
    mit.figure_duals(results, folder / "d.png", sparsity=0.9)
    assert shown["legend"] == names


def test_group_size_figure_redraws_from_its_csv(tmp_path):
    """group_size.csv writes the not-upsampled rows' empty 'upsampled' field, which pandas reads back as NaN."""
    from prunefair.report.group_size import figure_group_size

    rows = [{"factor": f, "upsampled": "" if f == 1 else "female", "seed": 0, "group_id": a, "group": g,
             "grad_norm": 1.0 + a / f, "study": f"f{f}"} for f in (1, 5) for a, g in enumerate(("male", "female"))]
    pd.DataFrame(rows).to_csv(tmp_path / "group_size.csv", index=False)
    back = pd.read_csv(tmp_path / "group_size.csv")
    assert back.upsampled.isna().any()
    assert figure_group_size(back, tmp_path / "g.png").is_file()
