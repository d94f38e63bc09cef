"""audit / diagnose on a user's own pair, checked against independent computations and for the inputs a user hits."""

import copy

import pytest
import torch

from prunefair.audit import audit_pair
from prunefair.models import build_model
from prunefair.prune import global_magnitude_masks
from prunefair.study.store import save_checkpoint

CFG = {"data": {"dataset": "digits"}, "model": {"name": "mlp", "width": 0.25},
       "diagnostics": {"max_samples": 16, "trace_samples": 0, "iterations": 3}}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("user_pair")
    torch.manual_seed(0)
    dense = build_model("mlp", num_classes=10, input_shape=(1, 8, 8), width=0.25)
    pruned = copy.deepcopy(dense)
    global_magnitude_masks(pruned, 0.8).bind(pruned).apply()
    save_checkpoint(tmp / "dense.safetensors", dense.state_dict())
    torch.save(pruned.state_dict(), tmp / "pruned.pt")  # masks baked in: exact zeros, no mask file
    return tmp / "dense.safetensors", tmp / "pruned.pt"


def test_a_split_without_samples_is_named_when_asked_and_left_out_of_eval_splits(pair, caplog):
    # data.val_fraction = 0 (every sample to train or test): an audit on 'val' was a table of NaN
    # ("overall acc nan% -> nan%") and a CSV of empty cells, with only pruning_impact's warning
    cfg = {**CFG, "data": {"dataset": "digits", "val_fraction": 0.0}}
    with pytest.raises(ValueError, match=r"split 'val' has no samples \(data\.val_fraction = 0\).*train, test"):
        audit_pair(cfg, *pair, splits=["val"])
    with pytest.raises(ValueError, match=r"split 'val' has no samples"):
        audit_pair({**cfg, "eval": {"splits": ["train", "val"]}}, *pair, splits=["test", "val"])
    with caplog.at_level("WARNING", logger="prunefair.audit"):
        r = audit_pair(cfg, *pair)  # eval.splits = train, val, test (the default)
    assert list(r.impacts) == ["train", "test"]
    assert "eval.splits: split 'val' has no samples (data.val_fraction = 0); left out" in caplog.text


@pytest.mark.parametrize("kw,message", [
    ({"trace_samples": 1}, r"trace_samples = 1: 0 \(no trace\) or at least 2"),
    ({"trace_samples": -3}, r"trace_samples = -3: 0 \(no trace\) or at least 2"),
    ({"max_iter": 0}, r"max_iter = 0: at least 1"),
    ({"tol": 0.0}, r"tol = 0.0: a relative tolerance > 0"),
    ({"tol": -1e-3}, r"tol = -0.001: a relative tolerance > 0"),
    ({"hvp": "fast"}, r"unknown hvp method 'fast'"),
    ({"criterion": "resid"}, r"unknown criterion 'resid'"),
])
def test_diagnose_groups_checks_its_settings_before_any_pass(kw, message, monkeypatch):
    # trace_samples = 1 and an unknown hvp failed only after the gradient pass and the first group's Hessian;
    # max_iter = 0 returned a one-product Rayleigh quotient as lambda(H_a); tol <= 0 ran every iteration
    from prunefair.data import load_dataset
    from prunefair.diagnostics import diagnose, diagnose_groups

    def no_pass(*a, **k):
        raise AssertionError("a pass over the data ran before the settings were checked")

    monkeypatch.setattr(diagnose, "evaluate_groups", no_pass)
    torch.manual_seed(0)
    model = build_model("mlp", num_classes=10, input_shape=(1, 8, 8), width=0.25)
    with pytest.raises(ValueError, match=message):
        diagnose_groups(model, load_dataset("digits").train, **kw)


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_an_eigenvalue_run_of_no_products_or_no_tolerance_is_refused(method):
    from prunefair.diagnostics import top_eigenvalue

    H = torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="max_iter = 0: at least 1"):
        top_eigenvalue(lambda v: H @ v, 3, method=method, max_iter=0, dtype=torch.float64)
    with pytest.raises(ValueError, match="tol = -1: a relative tolerance > 0"):
        top_eigenvalue(lambda v: H @ v, 3, method=method, tol=-1, dtype=torch.float64)
    assert top_eigenvalue(lambda v: H @ v, 3, method=method, max_iter=200, tol=1e-10,
                          dtype=torch.float64).value == pytest.approx(3.0, rel=1e-8)


def test_a_linear_binary_model_matches_every_closed_form_in_float64():
    # logistic regression with two logits: grad = mean (p - e_y) x~^T, H = mean (diag p - p p^T) kron x~ x~^T,
    # f(1-f) with f = p_1, 1 - sum p^2 = 2 f(1-f), margin z_y - z_other; numpy against diagnose_groups
    import numpy as np
    from torch import nn

    from prunefair.data.tensors import grouped_from_arrays
    from prunefair.diagnostics import diagnose_groups

    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 4))
    y = (x[:, 0] + 0.5 * rng.normal(size=90) > 0).astype(int)
    data = grouped_from_arrays(x, y, attributes={"site": np.array(["a", "b", "c"])[rng.integers(0, 3, 90)]},
                               group="site")
    torch.manual_seed(0)
    model = nn.Linear(4, 2).double()
    d = diagnose_groups(model, data, max_samples=None, criterion="residual", tol=1e-12, max_iter=100,
                        trace_samples=0)
    W, b = model.weight.detach().numpy(), model.bias.detach().numpy()
    xs, ys, gs = data.x.numpy(), data.y.numpy(), data.g.numpy()
    for a in range(data.num_groups):
        xa, ya = xs[gs == a], ys[gs == a]
        n = len(ya)
        z = xa @ W.T + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        xt = np.hstack([xa, np.ones((n, 1))])
        grad = (p - np.eye(2)[ya]).T @ xt / n  # rows: classes; columns: features, then the bias
        H = sum(np.kron(np.diag(p[i]) - np.outer(p[i], p[i]), np.outer(xt[i], xt[i])) for i in range(n)) / n
        order = [c * 5 + j for c in range(2) for j in range(4)] + [4, 9]  # torch's order: weight rows, then bias
        f = p[:, 1]
        assert d.grad_norm[a] == pytest.approx(np.linalg.norm(grad), rel=1e-12)
        assert d.hessian_top_eigenvalue[a] == pytest.approx(np.linalg.eigvalsh(H[np.ix_(order, order)])[-1], rel=1e-9)
        assert d.f_one_minus_f[a] == pytest.approx((f * (1 - f)).mean(), rel=1e-12)
        assert d.gini[a] == pytest.approx(2 * d.f_one_minus_f[a], rel=1e-12)
        assert d.margin[a] == pytest.approx((z[np.arange(n), ya] - z[np.arange(n), 1 - ya]).mean(), rel=1e-12)
