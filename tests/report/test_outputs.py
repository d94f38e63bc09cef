"""The study folder's tables: per-group summary, per-layer sparsity, Proposition 1, no std from one seed."""

from __future__ import annotations

import json
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
