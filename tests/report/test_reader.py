"""The report as a reader meets it: rebuilt byte for byte, figures that say what they show (as the paper's), cells
that count only the seeds they average, and a damaged group_size.csv that costs Figures 14-15 only."""

from __future__ import annotations

import json
import shutil
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prunefair.api import write_outputs
from prunefair.study import StudyResults


@pytest.fixture()
def folder(study, tmp_path):
    root = tmp_path / "study"
    shutil.copytree(study[0], root)
    return root


def _outputs(root: Path) -> dict[str, bytes]:
    """Every file the report writes (tables, figures, report.html), by path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.relative_to(root).parts[0] == "cells"}


class _TickingClock(datetime):
    """A clock that moves on a minute at every reading: a page that printed it would differ at each rebuild."""

    calls = 0

    @classmethod
    def now(cls, tz=None):
        cls.calls += 1
        return datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=cls.calls)


def test_rebuilding_gives_the_same_page_figures_and_tables_byte_for_byte(folder, monkeypatch):
    import prunefair.report.html as html

    monkeypatch.setattr(html, "datetime", _TickingClock, raising=False)
    write_outputs(StudyResults.from_store(folder), folder)
    first = _outputs(folder)
    shutil.rmtree(folder / "figures")  # the figures come back from the saved results alone
    write_outputs(StudyResults.from_store(folder), folder)
    again = _outputs(folder)
    assert sorted(again) == sorted(first)
    assert [k for k in first if first[k] != again[k]] == []
    assert {"report.html", "figures/fig1_group_accuracy.png", "figures/fig12_gradient_hessian.png"} <= set(first)


def test_a_cell_counts_only_the_seeds_with_a_finite_value():
    """A normalised accuracy over a dense accuracy of 0 is infinite: that seed is not counted, and a cell with one
    finite value reads 'n=1', not '± 0.000' over two seeds."""
    from prunefair.report.html import interval
    from prunefair.report.sections import _iv
    from prunefair.report.stats import interval_table, t_interval

    df = pd.DataFrame({"k": [0, 0, 1, 1, 1], "acc_dense": [0.5, 0.0, 0.4, 0.5, 0.6],
                       "normalized_accuracy": [0.9, np.inf, 0.8, np.nan, 0.7]})
    tab = interval_table(df, ["k"], ["acc_dense", "normalized_accuracy"]).set_index("k")
    for k, sub in df.groupby("k"):
        for col in ("acc_dense", "normalized_accuracy"):
            assert tab.loc[k, f"{col}_n"] == t_interval(sub[col]).n
    row = tab.reset_index().iloc[0]
    assert _iv(row, "normalized_accuracy").n == 1 and _iv(row, "acc_dense").n == 2
    assert interval(_iv(row, "normalized_accuracy"), scale=1, digits=3) == "0.900<span class=ci>n=1</span>"
    two = tab.reset_index().iloc[1]  # two finite values of three: the interval over those two
    ref = t_interval([0.8, 0.7])
    assert _iv(two, "normalized_accuracy").n == 2 and two["normalized_accuracy_lo"] == pytest.approx(ref.lo)


def test_the_report_says_n_1_where_one_seed_of_two_has_a_finite_normalised_accuracy(folder):
    p = folder / "cells" / "s0_dense" / "result.json"
    r = json.loads(p.read_text())
    m = r["metrics"]["test"]
    m["accuracy"][0] = 0.0  # group 0's dense test accuracy in seed 0: its normalised accuracy is not a number
    if "correct" in m:
        m["correct"][0] = 0
    p.write_text(json.dumps(r))
    results = StudyResults.from_store(folder)
    bg = results.by_group
    sel = bg[(bg.split == "test") & (bg.group_id == 0) & (bg.stage == "finetuned") & (bg.sparsity == 0.9)]
    assert sorted(np.isfinite(sel.normalized_accuracy)) == [False, True]  # the edit reached the table
    html = write_outputs(results, folder)["report"].read_text()
    cap = html.index("test normalised accuracy acc_a(pruned) / acc_a(dense), nft")
    row = html[cap:].split("<tr>")[2].split("</tr>")[0]  # the header, then group 0's row
    value = sel.normalized_accuracy[np.isfinite(sel.normalized_accuracy)].iloc[0]
    assert f"<td>{value:.3f}<span class=ci>n=1</span></td>" in row
    assert "± 0.000<span class=ci>n=2" not in row


def test_diagnostics_figures_never_print_nan_for_a_missing_interval(folder, monkeypatch):
    """With one seed the correlation has no interval: the titles give the seed count and permutation p, as the
    report's tables do, never '[nan, nan]'."""
    import prunefair.report.diagnostics_figures as dfig

    for cell in (folder / "cells").glob("s1_*"):
        shutil.rmtree(cell)
    results = StudyResults.from_store(folder)
    assert set(results.measures.seed) == {0}
    titles = []

    def grab(fig, path, **kw):
        titles.extend(ax.get_title() for ax in fig.axes)
        titles.extend(ax.get_ylabel() for ax in fig.axes)
        return Path(path)

    monkeypatch.setattr(dfig, "save_figure", grab)
    dfig.write_diagnostics_outputs(results, folder)
    rho = [t for t in titles if "ρ vs Δ_a" in t]
    assert rho and not any("nan" in t for t in titles)
    assert all("(1 seed, p = " in line for t in rho for line in t.splitlines() if line.startswith("ρ"))
    assert "points (dense − pruned accuracy)" in titles  # the drop panel says its unit
    corr = pd.read_csv(folder / "correlations.csv")
    c = corr[(corr.sparsity == 0.9) & (corr.diagnostic == "grad_norm") & (corr.outcome == "accuracy_drop")
             & (corr.stage == "finetuned")].iloc[0]
    assert f"ρ vs Δ_a at 90%: {c.rho:.2f} (1 seed, p = {c.p_value:.2g})" in "\n".join(titles)


def test_rho_text_with_an_interval():
    from prunefair.report.diagnostics_figures import rho_text

    assert rho_text(pd.Series({"rho": 0.5, "low": 0.1, "high": 0.9, "n_seeds": 3, "p_value": 0.01})) == \
        "0.50 [0.10, 0.90]"
    assert rho_text(pd.Series({"rho": 0.5, "low": np.nan, "high": np.nan, "n_seeds": 1, "p_value": np.nan})) == \
        "0.50 (1 seed)"


def test_figure1_title_and_caption_say_when_there_is_one_seed(folder, monkeypatch):
    import prunefair.report.figures as figs

    for cell in (folder / "cells").glob("s1_*"):
        shutil.rmtree(cell)
    results = StudyResults.from_store(folder)
    html = write_outputs(results, folder)["report"].read_text()
    assert "accuracy against the pruning rate (one seed: no error bars; fig1_group_accuracy.png)" in html
    shown = {}
    monkeypatch.setattr(figs, "save_figure", lambda fig, path, **kw: shown.setdefault("t", fig.axes[0].get_title()))
    figs.figure_group_accuracy(results, folder / "f.png")
    assert shown["t"].endswith("(nft, finetuned; no error bars: 1 seed)")


def test_group_size_figure_draws_the_upsampled_group_as_a_dotted_thick_line(monkeypatch, tmp_path):
    """As the paper's Figure 15: 'the upsampled groups are highlighted with dotted thick lines'."""
    import prunefair.report.group_size as gs

    shown = {}
    monkeypatch.setattr(gs, "save_figure", lambda fig, path, **kw: shown.setdefault("ax", fig.axes[0]))
    rows = [{"factor": f, "upsampled": "" if f == 1 else "female", "seed": s, "group_id": a, "group": g,
             "grad_norm": 1.0 + a / f + s / 10}
            for f in (1, 5, 10) for s in (0, 1) for a, g in enumerate(("male", "female"))]
    gs.figure_group_size(pd.DataFrame(rows), tmp_path / "g.png")
    lines = {c.get_label(): c.lines[0] for c in shown["ax"].containers}  # errorbar: (data line, caps, bars)
    assert lines["female (upsampled)"].get_linestyle() == ":" and lines["female (upsampled)"].get_linewidth() > 2
    assert lines["male"].get_linestyle() == "-" and lines["male"].get_linewidth() < 2


@pytest.mark.parametrize("text, says", [
    ("", "No columns to parse"),
    ("factor,group\n1,a\n", "no column grad_norm"),
    ("factor,upsampled,seed,group_id,group,grad_norm,study\n1,,0,0,a,abc,s\n", "column grad_norm holds 'abc'"),
])
def test_a_damaged_group_size_csv_is_named_and_the_rest_is_reported(folder, text, says):
    (folder / "group_size.csv").write_text(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = write_outputs(StudyResults.from_store(folder), folder)
    msgs = [str(w.message) for w in caught if type(w.message).__name__ == "UnreadGroupSize"]
    assert len(msgs) == 1 and str(folder / "group_size.csv") in msgs[0] and says in msgs[0]
    html = paths["report"].read_text()
    assert '<section id="accuracy">' in html and '<section id="unread">' in html
    assert says.replace("'", "&#x27;") in html and '<section id="group-size">' not in html
    assert "fig1_group_accuracy" in "".join(paths)


def test_cli_report_on_a_damaged_group_size_csv_names_it_and_writes_the_report(folder):
    from typer.testing import CliRunner

    from prunefair.cli import app

    (folder / "group_size.csv").write_text("")
    (folder / "report.html").unlink()
    res = CliRunner().invoke(app, ["report", "-q", str(folder)])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    flat = "".join(res.output.split())  # the console wraps long lines
    assert f"{folder}/group_size.csv:notagroup-sizetable" in flat and "Traceback" not in res.output
    assert (folder / "report.html").is_file()


def test_figure1_draws_every_method_on_one_accuracy_scale(monkeypatch, tmp_path):
    """Methods are compared panel by panel: a panel on its own y scale makes a 5-point drop look like a 50-point one."""
    from types import SimpleNamespace

    import prunefair.report.figures as figs

    rows = []
    for seed in (0, 1):
        for gid in (0, 1):
            rows.append({"seed": seed, "method": "dense", "sparsity": 0.0, "stage": "dense", "split": "test",
                         "group_id": gid, "group": str(gid), "acc_dense": 0.95, "acc_pruned": 0.95})
            for method, acc in (("nft", 0.40 + 0.1 * gid), ("el", 0.90 + 0.01 * gid)):
                rows.append({"seed": seed, "method": method, "sparsity": 0.9, "stage": "finetuned", "split": "test",
                             "group_id": gid, "group": str(gid), "acc_dense": 0.95, "acc_pruned": acc})
    results = SimpleNamespace(by_group=pd.DataFrame(rows),
                              config=SimpleNamespace(name="t", data=SimpleNamespace(group="class")))
    shown = {}
    monkeypatch.setattr(figs, "save_figure", lambda fig, path, **kw: shown.setdefault("axes", fig.axes))
    figs.figure_group_accuracy(results, tmp_path / "f.png")
    visible = [ax for ax in shown["axes"] if ax.get_visible()]
    assert len(visible) == 2 and visible[0].get_ylim() == visible[1].get_ylim()
    assert visible[0].get_ylim()[0] < 40 < 95 < visible[0].get_ylim()[1]


@pytest.mark.parametrize("text", ["{not json", json.dumps({"groups": ["a"]})])
def test_an_unreadable_data_json_is_named_and_the_results_are_reported_unchecked(folder, text):
    """data.json is what stored results are checked against (other data: left out); unreadable, nothing can be
    checked: every result is reported, and the page and a warning say so, naming the file."""
    (folder / "data.json").write_text(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = write_outputs(StudyResults.from_store(folder), folder)
    msgs = [str(w.message) for w in caught if type(w.message).__name__ == "UnreadDataDescription"]
    assert len(msgs) == 1 and msgs[0].startswith(f"{folder / 'data.json'}: cannot be read")
    html = paths["report"].read_text()
    assert '<section id="unread">' in html and "could not be checked against the data" in html
