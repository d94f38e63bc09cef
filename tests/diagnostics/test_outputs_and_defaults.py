"""What the audit and diagnose outputs hold, the counts of a rank correlation, and diagnose_groups's defaults."""

import inspect
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from prunefair.audit import DiagnoseResult
from prunefair.config.sections import DiagnosticsConfig
from prunefair.data import GroupedData
from prunefair.diagnostics import diagnose_groups, spearman_across_groups
from prunefair.report.audit_tables import audit_diagnostics_table, correlation_table, diagnose_table
from tests.diagnostics.helpers import tiny_data, tiny_model, trained


def _render(renderable) -> str:
    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()


def test_rank_correlation_counts_only_the_seeds_and_groups_that_entered():
    X = np.array([[1, 2, 3, 4, 5], [2, 1, 3, 4, 5], [1, 3, 2, 5, 4]], float)
    Y = np.array([[1, 2, 3, 4, 5], [1, 2, 3, 5, 4], [0, 0, 0, 0, 0]], float)  # seed 2: constant outcome, no rho
    r = spearman_across_groups(X, Y)
    assert np.isnan(r.per_seed[2]) and r.interval == "seeds-t"
    assert r.n_seeds == 2 and r.n_groups == 5
    # a group without data in every seed (no samples on this split): not counted
    Xg = X.copy()
    Xg[:, 3] = np.nan
    assert spearman_across_groups(Xg, Y).n_groups == 4
    # no rho at all: no seed entered; the groups with data are counted (2: why there is no rho)
    two = spearman_across_groups([1.0, 2.0], [2.0, 1.0])
    assert np.isnan(two.rho) and two.n_seeds == 0 and two.n_groups == 2


def test_fewer_than_three_groups_is_one_line_not_a_table_of_dashes():
    rows = [{"split": "test", "diagnostic": d, "outcome": o,
             **spearman_across_groups([1.0, 2.0], [2.0, 1.0]).to_dict()}
            for d in ("grad_norm", "gini") for o in ("accuracy_drop", "excess_loss")]
    text = _render(correlation_table(SimpleNamespace(correlations=pd.DataFrame(rows))))
    assert "not defined with fewer than 3 groups (2 on test)" in text
    assert "grad_norm" not in text and len(text.strip().splitlines()) == 1
    # a split with enough groups keeps its table; the other is named under it
    rows += [{"split": "train", "diagnostic": "gini", "outcome": "excess_loss",
              **spearman_across_groups([1.0, 2.0, 3.0], [1.0, 3.0, 2.0]).to_dict()}]
    text = _render(correlation_table(SimpleNamespace(correlations=pd.DataFrame(rows))))
    assert "0.5" in text and "fewer than 3 groups (2 on test)" in text and "grad_norm" not in text


def _binary_data_with_an_empty_group():
    data = tiny_data(n=60, groups=2, classes=2)
    return GroupedData(data.x, data.y, data.g, data.class_names, ("g0", "g1", "nobody"))


def _binary_diagnostics():
    data = _binary_data_with_an_empty_group()
    model = trained(tiny_model(classes=2, batch_norm=False), data, steps=50)
    return diagnose_groups(model, data, trace_samples=3, split="train")


def test_terminal_diagnostics_table_shows_the_trace_and_f_one_minus_f():
    d = _binary_diagnostics()
    text = _render(audit_diagnostics_table(SimpleNamespace(diagnostics=d)))
    assert "tr(H_a)" in text and "± SE" in text and "f(1−f)" in text
    assert f"{d.hessian_trace[0]:.3g}" in text and f"{d.f_one_minus_f[1]:.3g}" in text


def test_diagnose_table_ranks_a_group_without_samples_as_a_dash():
    d = _binary_diagnostics()
    harm = DiagnoseResult(d, {0.5: 1.0}, {0.5: d.predicted_harm(1.0)})
    text = _render(diagnose_table(harm, 0.5))
    line = next(ln for ln in text.splitlines() if "nobody" in ln)
    assert "<NA>" not in text and line.split()[0] == "-"


def test_multi_class_terminal_table_leaves_f_one_minus_f_out_and_without_trace_tr():
    data = tiny_data(n=60, groups=3, classes=3)
    model = tiny_model(batch_norm=False)
    d = diagnose_groups(model, data, trace_samples=0)
    text = _render(audit_diagnostics_table(SimpleNamespace(diagnostics=d)))
    assert "f(1−f)" not in text and "tr(H_a)" not in text and "λ(H_a)" in text


def test_diagnose_csv_holds_the_trace_and_f_one_minus_f(tmp_path):
    data = _binary_data_with_an_empty_group()
    model = tiny_model(classes=2, batch_norm=False)
    d = diagnose_groups(model, data, trace_samples=3)
    DiagnoseResult(d, {0.5: 1.0}, {0.5: d.predicted_harm(1.0)}).write(tmp_path)
    t = pd.read_csv(tmp_path / "diagnose.csv").set_index("group")
    assert {"hessian_trace", "hessian_trace_se", "f_one_minus_f"} <= set(t.columns)
    assert t.loc["g0", "hessian_trace"] == pytest.approx(d.hessian_trace[0])
    assert t.loc["g1", "f_one_minus_f"] == pytest.approx(d.f_one_minus_f[1])
    assert np.isnan(t.loc["nobody", "hessian_trace"])
    assert list(pd.read_csv(tmp_path / "diagnose.csv").columns) == [  # earlier versions' columns in their places
        "group", "n", "grad_norm", "hessian_top_eigenvalue", "gradient_term", "curvature_term", "bound", "gini",
        "margin", "rank", "rate", "distance", "hessian_trace", "hessian_trace_se", "f_one_minus_f"]


def test_python_defaults_are_the_diagnostics_sections():
    """diagnose_groups(model, data) computes what a study, `audit` and `diagnose` compute by default."""
    params = inspect.signature(diagnose_groups).parameters
    fields = DiagnosticsConfig.model_fields
    pairs = {"max_samples": "max_samples", "trace_samples": "trace_samples", "batch_size": "batch_size",
             "eigen_method": "eigen_method", "hvp": "hvp", "max_iter": "iterations", "tol": "tol", "seed": "seed"}
    for mine, theirs in pairs.items():
        assert params[mine].default == fields[theirs].default, mine


def test_default_diagnose_groups_computes_the_trace():
    data = tiny_data(n=30, groups=2)
    d = diagnose_groups(tiny_model(batch_norm=False), data)
    assert np.isfinite(d.hessian_trace).all() and d.settings["trace_samples"] == 10
    assert d.settings["max_samples"] == 256



def test_diagnose_table_says_which_term_decides_the_ranking():
    d = _binary_diagnostics()
    g, lam = np.asarray(d.grad_norm[:2]), np.asarray(d.hessian_top_eigenvalue[:2])  # the two groups with samples
    for dist in (1e-9, 1.0, 1e6):
        harm = DiagnoseResult(d, {0.5: dist}, {0.5: d.predicted_harm(dist)})
        text = " ".join(_render(diagnose_table(harm, 0.5)).split())
        share = (0.5 * lam * dist**2).sum() / (g * dist + 0.5 * lam * dist**2).sum()  # by hand
        assert f"½ λ d² is {share:.0%} of the summed bound" in text
        assert ("(the ranking is λ(H_a)'s)" in text) == (share >= 0.9)
        assert ("(the ranking is ‖g_a‖'s)" in text) == (share <= 0.1)
    assert share > 0.99  # the far distance is the curvature's, the near one the gradient's


def test_diagnose_table_names_no_deciding_term_where_the_bound_ranks_otherwise():
    # ½ λ d² is 95% of the summed bound, but g0's larger gradient puts it first although g1 has the larger λ: the
    # ranking is not λ's (nor ‖g_a‖'s: not said either at a small curvature share where λ reorders the groups)
    import dataclasses

    d = _binary_diagnostics()
    d = dataclasses.replace(d, grad_norm=np.array([0.5, 0.01, np.nan]),
                            hessian_top_eigenvalue=np.array([10.0, 10.1, np.nan]))
    harm = DiagnoseResult(d, {0.5: 1.0}, {0.5: d.predicted_harm(1.0)})
    assert list(harm.rankings[0.5].group[:2]) == ["g0", "g1"]  # by the bound: 5.5 > 5.06
    text = " ".join(_render(diagnose_table(harm, 0.5)).split())
    assert "½ λ d² is 95% of the summed bound" in text and "the ranking is" not in text
    d = dataclasses.replace(d, grad_norm=np.array([1.0, 1.001, np.nan]), hessian_top_eigenvalue=np.array([0.1, 0.0, np.nan]))
    harm = DiagnoseResult(d, {0.5: 0.1}, {0.5: d.predicted_harm(0.1)})  # 0.1 + 0.0005 > 0.1001: g0 first
    text = " ".join(_render(diagnose_table(harm, 0.5)).split())
    assert "½ λ d² is 0% of the summed bound" in text and "the ranking is" not in text
