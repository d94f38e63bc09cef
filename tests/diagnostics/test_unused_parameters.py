"""A trainable parameter the forward pass does not use (an auxiliary head): zero gradient, zero rows and columns of
the Hessian, on every path (gradients, double backward, forward-over-reverse, the stacked operator)."""

import pytest
import torch
from torch import nn

from prunefair.diagnostics import (
    GroupHessian, StackedGroupHessian, diagnose_groups, full_gradient, group_gradient_norms, hessian_top_eigenvalue,
)
from tests.diagnostics.helpers import dense_hessian, tiny_data, trained


class AuxHead(nn.Module):
    """features -> hidden -> classes, with an auxiliary head ``aux`` that forward never calls."""

    def __init__(self, features: int = 5, classes: int = 3, hidden: int = 6):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(features, hidden), nn.Tanh())
        self.aux = nn.Linear(hidden, 2)  # registered between the used layers: its rows sit inside the vector
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.head(self.body(x))


def _model_and_data():
    data = tiny_data(n=60, groups=3)
    torch.manual_seed(0)
    model = trained(AuxHead(), data, steps=100).double()
    data = type(data)(data.x.double(), data.y, data.g, data.class_names, data.group_names)
    return model, data


def _aux_slice(model):
    start = 0
    for name, p in model.named_parameters():
        if name.startswith("aux"):
            yield slice(start, start + p.numel())
        start += p.numel()


def test_gradient_norms_treat_an_unused_parameter_as_zero_gradient():
    model, data = _model_and_data()
    res = group_gradient_norms(model, data, keep_vectors=True, check_full=True)
    params = list(model.parameters())
    for a in range(data.num_groups):
        sel = data.g == a
        loss = nn.functional.cross_entropy(model(data.x[sel]), data.y[sel])
        g = torch.autograd.grad(loss, params, allow_unused=True, materialize_grads=True)
        exact = torch.cat([t.reshape(-1) for t in g])
        assert res.norms[a] == pytest.approx(float(exact.norm()), rel=1e-10)
        for s in _aux_slice(model):
            assert (res.vectors[a][s] == 0).all()
    assert res.prop1_error < 1e-10
    assert full_gradient(model, data).shape == (sum(p.numel() for p in params),)


@pytest.mark.parametrize("method", ["double_backward", "forward_over_reverse"])
def test_hessian_products_and_top_eigenvalue_match_the_dense_hessian(method):
    model, data = _model_and_data()
    sel = data.g == 1
    x, y = data.x[sel], data.y[sel]
    H = dense_hessian(model, x, y)
    for s in _aux_slice(model):
        assert (H[s] == 0).all() and (H[:, s] == 0).all()
    op = GroupHessian(model, x, y, method=method)
    v = torch.randn(op.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(op(v), H @ v, rtol=1e-9, atol=1e-12)
    g = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), list(model.parameters()), allow_unused=True,
                            materialize_grads=True)
    torch.testing.assert_close(op.gradient(), torch.cat([t.reshape(-1) for t in g]), rtol=1e-9, atol=1e-12)
    res = hessian_top_eigenvalue(model, x, y, hvp=method, tol=1e-8, criterion="residual", max_iter=op.dim)
    assert res.value == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-6)


def test_stacked_operator_and_diagnose_groups_match_the_dense_hessian():
    model, data = _model_and_data()
    xs = [data.x[data.g == a] for a in range(data.num_groups)]
    ys = [data.y[data.g == a] for a in range(data.num_groups)]
    op = StackedGroupHessian(model, xs, ys)
    V = torch.randn(data.num_groups, op.dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    HV = op(V)
    tops = []
    for a in range(data.num_groups):
        H = dense_hessian(model, xs[a], ys[a])
        torch.testing.assert_close(HV[a], H @ V[a], rtol=1e-9, atol=1e-12)
        tops.append(float(torch.linalg.eigvalsh(H)[-1]))
    assert torch.isfinite(op.gradient()).all()
    for stacked in (False, True):
        d = diagnose_groups(model, data, stacked=stacked, tol=1e-8, criterion="residual", max_iter=op.dim,
                            trace_samples=2, max_samples=None)
        assert d.hessian_top_eigenvalue == pytest.approx(tops, rel=1e-6)
        assert (d.hessian_trace == d.hessian_trace).all()  # the trace ran too
