import json

import numpy as np
import pytest
import torch

from prunefair.data import load_dataset
from prunefair.diagnostics import GroupDiagnostics, diagnose_groups, group_gradient_norms
from prunefair.models import build_model
from prunefair.train import TrainSettings, fit


@pytest.fixture(scope="module")
def digits_model():
    splits = load_dataset("digits")
    torch.manual_seed(0)
    model = build_model("mlp", num_classes=10, input_shape=splits.train.input_shape, width=0.25)
    fit(model, splits.train, TrainSettings(epochs=3, batch_size=64, lr=0.05), seed=0)
    return model, splits.train


def test_diagnose_groups_end_to_end_and_round_trip(digits_model):
    model, data = digits_model
    d = diagnose_groups(model, data, max_samples=40, trace_samples=4, max_iter=40, tol=1e-3, seed=0, split="train")
    stored = d.to_dict()
    assert "f_one_minus_f" not in stored and len(stored["hessian_top_eigenvalue"]) == 10  # multi-class: no f(1-f)
    assert len(d.group_names) == 10 and (d.hessian_samples == 40).all()
    assert (d.grad_norm > 0).all() and (d.hessian_top_eigenvalue > 0).all() and np.isfinite(d.hessian_trace).all()
    assert ((d.gini > 0) & (d.gini < 0.9)).all() and np.isnan(d.f_one_minus_f).all()
    assert d.prop1_error < 1e-5 and d.settings["hvp_used"] in ("double_backward", "forward_over_reverse")
    assert all(e["converged"] for e in d.eigen)
    # gradient norms are over the whole group, not the Hessian subset
    exact = group_gradient_norms(model, data, batch_size=97)
    np.testing.assert_allclose(d.grad_norm, exact.norms, rtol=1e-5)
    back = GroupDiagnostics.from_dict(json.loads(json.dumps(d.to_dict())))
    np.testing.assert_array_equal(back.hessian_top_eigenvalue, d.hessian_top_eigenvalue)
    np.testing.assert_array_equal(back.hessian_trace_se, d.hessian_trace_se)
    np.testing.assert_array_equal(back.count, d.count)
    assert back.group_names == d.group_names and back.eigen == d.eigen
    harm = d.predicted_harm(2.0)
    assert harm["rank"].tolist() == sorted(harm["rank"].tolist()) and harm.bound.is_monotonic_decreasing
    assert harm.bound.to_numpy() == pytest.approx((harm.gradient_term + harm.curvature_term).to_numpy())
    again = diagnose_groups(model, data, max_samples=40, trace_samples=4, max_iter=40, tol=1e-3, seed=0)
    np.testing.assert_array_equal(again.hessian_top_eigenvalue, d.hessian_top_eigenvalue)  # same seed, same numbers


def test_stacked_groups_give_the_per_group_eigenvalues(digits_model):
    """All groups' Lanczos runs in lockstep on one stacked operator = one run per group."""
    model, data = digits_model
    kw = dict(max_samples=30, trace_samples=2, max_iter=40, tol=1e-4, seed=1)
    alone = diagnose_groups(model, data, stacked=False, hvp="double_backward", **kw)
    together = diagnose_groups(model, data, stacked=True, **kw)
    assert together.settings["hvp_used"] == "stacked" and alone.settings["hvp_used"] == "double_backward"
    np.testing.assert_allclose(together.hessian_top_eigenvalue, alone.hessian_top_eigenvalue, rtol=1e-4)
    assert [e["iterations"] for e in together.eigen] == [e["iterations"] for e in alone.eigen]
    np.testing.assert_allclose(together.hessian_trace, alone.hessian_trace, rtol=1e-4)  # traces: per group
    with pytest.raises(ValueError, match="allowed: gradient, random"):
        diagnose_groups(model, data, start="zeros")
