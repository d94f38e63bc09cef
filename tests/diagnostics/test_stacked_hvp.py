import pytest
import torch

from prunefair.diagnostics import GroupHessian, lanczos_top_eigenvalue
from prunefair.diagnostics.eigen import lanczos_lockstep
from prunefair.diagnostics.stacked_hvp import StackedGroupHessian
from prunefair.models import build_model
from tests.diagnostics.helpers import dense_hessian, tiny_data, tiny_model, trained


@pytest.fixture(scope="module")
def groups():
    data = tiny_data(n=90, groups=3)
    model = trained(tiny_model(batch_norm=True), data, steps=150)
    xs = [data.x[data.g == a] for a in range(3)]
    ys = [data.y[data.g == a] for a in range(3)]
    assert len({len(x) for x in xs}) > 1  # unequal sizes: the padding is exercised
    return model, xs, ys


@pytest.mark.parametrize("chunk_size", [5, 1000])
def test_every_row_goes_through_its_own_groups_dense_hessian(groups, chunk_size):
    model, xs, ys = groups
    op = StackedGroupHessian(model, xs, ys, chunk_size=chunk_size)
    V = torch.randn(3, op.dim, generator=torch.Generator().manual_seed(0))
    out = op(V)
    for a in range(3):
        H = dense_hessian(model, xs[a], ys[a])
        torch.testing.assert_close(out[a].double(), H @ V[a].double(), rtol=1e-4, atol=1e-5)
        grad = torch.autograd.grad(torch.nn.functional.cross_entropy(model(xs[a]), ys[a]), list(model.parameters()))
        torch.testing.assert_close(op.gradient()[a], torch.cat([g.reshape(-1) for g in grad]), rtol=1e-4, atol=1e-6)


def test_lockstep_lanczos_equals_one_run_per_group(groups):
    model, xs, ys = groups
    op = StackedGroupHessian(model, xs, ys)
    starts = list(op.gradient())
    together = lanczos_lockstep(op, op.dim, 3, starts=starts, tol=1e-4, seed=2)
    for a in range(3):
        single = GroupHessian(model, xs[a], ys[a], method="double_backward")
        alone = lanczos_top_eigenvalue(single, single.dim, tol=1e-4, seed=2, start=single.gradient())
        top = float(torch.linalg.eigvalsh(dense_hessian(model, xs[a], ys[a]))[-1])
        assert together[a].iterations == alone.iterations
        assert together[a].value == pytest.approx(alone.value, rel=1e-5)
        assert together[a].value == pytest.approx(top, rel=1e-4)
    assert op.products == max(r.iterations for r in together)


def test_a_cnn_with_batch_norm_matches_the_per_group_operator():
    model = build_model("cnn", num_classes=4, input_shape=(3, 16, 16), width=0.25).eval()
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(n, 3, 16, 16, generator=g) for n in (7, 12)]
    ys = [torch.randint(0, 4, (len(x),), generator=g) for x in xs]
    op = StackedGroupHessian(model, xs, ys)
    V = torch.randn(2, op.dim, generator=g)
    out = op(V)
    for a in range(2):
        ref = GroupHessian(model, xs[a], ys[a], method="double_backward")(V[a])
        torch.testing.assert_close(out[a], ref, rtol=1e-3, atol=1e-4)


def test_an_empty_group_is_refused(groups):
    model, xs, ys = groups
    with pytest.raises(ValueError, match="at least one sample"):
        StackedGroupHessian(model, [xs[0], xs[1][:0]], [ys[0], ys[1][:0]])
