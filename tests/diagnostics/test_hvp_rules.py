"""The rewritten second-order rules (eval-mode batch norm, 2-d convolution) give the same gradient and the same
Hessian-vector products as plain autograd, and the dense Hessian's."""

import numpy as np
import pytest
import torch
from torch import nn

from prunefair.diagnostics import GroupHessian
from prunefair.diagnostics.conv_rules import _conv_add_
from prunefair.diagnostics.hvp_rules import _gather_windows, conv_bn_pairs, second_order_rules
from prunefair.models import build_model
from tests.diagnostics.helpers import dense_hessian


def conv_net(*, stride=1, dilation=1, groups=1, bias=False, affine=True, pool=None, seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, bias=bias),
        nn.BatchNorm2d(4, affine=affine), nn.Tanh(), pool if pool is not None else nn.Identity(),
        nn.Conv2d(4, 4, 3, stride=stride, padding=dilation, dilation=dilation, groups=groups, bias=True),
        nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    )
    for m in net.modules():  # running statistics away from (0, 1), so the rewrite has something to get wrong
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            if m.affine:
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.3, 0.3)
    return net.eval()


def small_batch(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, 6, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


@pytest.mark.parametrize("kw", [{}, {"stride": 2}, {"dilation": 2}, {"groups": 2}, {"bias": True},
                                {"affine": False}, {"pool": nn.MaxPool2d(2)},
                                {"pool": nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)}])
def test_products_equal_plain_autograd_and_the_dense_hessian(kw):
    net = conv_net(**kw)
    x, y = small_batch()
    H = dense_hessian(net, x, y)
    v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(2))
    ours = GroupHessian(net, x, y, method="double_backward")
    plain = GroupHessian(net, x, y, method="double_backward", rules=False)
    torch.testing.assert_close(ours(v), plain(v), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours(v).double(), H @ v.double(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.gradient(), plain.gradient(), rtol=1e-5, atol=1e-7)


def test_the_swap_is_undone_and_covers_only_what_it_can():
    net = conv_net()
    net.append(nn.Unflatten(1, (3, 1)))
    net.append(nn.BatchNorm1d(3).train())  # training-mode batch norm is left as it is
    assert conv_bn_pairs(net) == [("0", "1"), ("4", "5")]
    with second_order_rules(net) as count:
        assert count == 5  # two convolution + batch-norm pairs, one ReLU
        assert all("forward" not in m.__dict__ for m in net.modules() if isinstance(m, (nn.Linear, nn.BatchNorm1d)))
    assert all("forward" not in m.__dict__ for m in net.modules())
    with second_order_rules(net, enabled=False) as count:
        assert count == 0
    with pytest.raises(RuntimeError, match="boom"), second_order_rules(net):
        raise RuntimeError("boom")
    assert all("forward" not in m.__dict__ for m in net.modules())


def test_batch_norm_1d_on_features():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 3)).eval()
    net[1].running_mean.uniform_(-1, 1)
    net[1].running_var.uniform_(0.5, 2)
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(8, 5, generator=g), torch.randint(0, 3, (8,), generator=g)
    H = dense_hessian(net, x, y)
    v = torch.randn(H.shape[0], generator=g)
    torch.testing.assert_close(GroupHessian(net, x, y, method="double_backward")(v).double(), H @ v.double(),
                               rtol=1e-4, atol=1e-5)


class TwoUses(nn.Module):
    """The convolution's output goes to the batch norm and to the skip: no fusion, per-layer rules."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.bn, self.head = nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2), nn.Linear(2, 3)
        self.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        h = self.conv(x)
        return self.head(torch.relu(self.bn(h) + h).mean((2, 3)))


class Untraceable(TwoUses):
    def forward(self, x):
        h = self.bn(self.conv(x))
        if float(h.detach().sum()) > 1e9:  # data-dependent control flow: fx cannot trace it
            h = -h
        return self.head(torch.relu(h).mean((2, 3)))


@pytest.mark.parametrize("net,pairs", [(TwoUses(), []), (Untraceable(), [])])
def test_no_fusion_where_it_would_change_the_function(net, pairs):
    net.eval()
    assert conv_bn_pairs(net) == pairs
    x, y = small_batch()
    H = dense_hessian(net, x, y)
    v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(GroupHessian(net, x, y, method="double_backward")(v).double(), H @ v.double(),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["resnet20", "cnn"])
def test_the_library_models_fuse_every_pair_and_keep_their_products(name):
    net = build_model(name, num_classes=3, input_shape=(2, 8, 8), width=0.25).eval()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(conv_bn_pairs(net)) == len(convs)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
    x, y = small_batch(n=5)
    x = torch.nn.functional.interpolate(x, size=(8, 8))
    ours = GroupHessian(net, x, y, method="double_backward")
    plain = GroupHessian(net, x, y, method="double_backward", rules=False)
    v = torch.randn(ours.dim, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(ours(v), plain(v), rtol=1e-4, atol=1e-5)
    assert all("forward" not in m.__dict__ for m in net.modules())


@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 1, 1, 1), (2, 1, 1, 1), (1, 2, 2, 1), (1, 1, 1, 2)])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_in_place_convolution_sum_adds_exactly_one_convolution(stride, padding, dilation, groups, layout, dtype,
                                                                   monkeypatch):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 4, 9, 9, generator=g, dtype=dtype).contiguous(memory_format=layout)
    w = torch.randn(6, 4 // groups, 3, 3, generator=g, dtype=dtype).contiguous(memory_format=layout)
    expected_conv = torch.nn.functional.conv2d(x, w, None, stride, padding, dilation, groups)
    out = torch.randn(expected_conv.shape, generator=g, dtype=dtype)
    before = out.clone()
    meta = ((stride, stride), (padding, padding), (dilation, dilation), groups, False)
    result = _conv_add_(out, x, w, meta)
    assert result.data_ptr() == out.data_ptr()  # in place
    torch.testing.assert_close(result, before + expected_conv, rtol=1e-6, atol=1e-5)
    monkeypatch.setattr("prunefair.diagnostics.conv_rules._REFUSED", {meta})  # where the fused kernel refuses
    torch.testing.assert_close(_conv_add_(before.clone(), x, w, meta), before + expected_conv, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("pool", [(2, 2, 0), (3, 2, 1)])  # kernel, stride, padding (overlapping windows)
def test_the_max_pool_selection_picks_each_windows_argmax(layout, pool):
    kernel, stride, padding = pool
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 3, 7, 7, generator=g).contiguous(memory_format=layout)
    gg = torch.randn(2, 3, 7, 7, generator=g).contiguous(memory_format=layout)
    _, idx = torch.ops.aten.max_pool2d_with_indices(x, [kernel] * 2, [stride] * 2, [padding] * 2, [1, 1], False)
    picked = _gather_windows(gg, idx)
    expected = torch.empty(idx.shape)
    for n, c, i, j in np.ndindex(*idx.shape):  # brute force: the window's largest input, then gg there
        top, left = i * stride - padding, j * stride - padding
        best, where = -float("inf"), None
        for a in range(max(top, 0), min(top + kernel, 7)):
            for b in range(max(left, 0), min(left + kernel, 7)):
                if x[n, c, a, b] > best:
                    best, where = float(x[n, c, a, b]), (a, b)
        expected[n, c, i, j] = gg[n, c, where[0], where[1]]
    assert torch.equal(picked, expected)


def _same_products(net, x, y, seed=3):
    """The rewritten product equals plain autograd's on the same model (float64)."""
    net = net.double()
    n = sum(p.numel() for p in net.parameters())
    v = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    plain = GroupHessian(net, x.double(), y, method="double_backward", rules=False)(v)
    ours = GroupHessian(net, x.double(), y, method="double_backward")(v)
    torch.testing.assert_close(ours, plain, rtol=1e-10, atol=1e-12)


class _LeNet(nn.Module):
    """The PyTorch tutorial's shape: .view() after convolution and max-pool (no channels_last there)."""

    def __init__(self):
        super().__init__()
        self.conv, self.pool, self.fc = nn.Conv2d(2, 3, 3), nn.MaxPool2d(2), nn.Linear(3 * 2 * 2, 3)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv(x)))
        return self.fc(x.view(-1, 3 * 2 * 2))


class _ReuseAfterInplace(nn.Module):
    """h is overwritten by the in-place ReLU, so a + h is 2 relu(h) in PyTorch."""

    def __init__(self):
        super().__init__()
        self.conv, self.relu = nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(inplace=True)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 3))

    def forward(self, x):
        h = self.conv(x)
        a = self.relu(h)
        return self.head(a + h)


class _Unbatched(nn.Module):
    """Convolution and max-pool called on (C, H, W) samples one at a time."""

    def __init__(self):
        super().__init__()
        self.conv, self.pool, self.fc = nn.Conv2d(2, 3, 3, padding=1), nn.MaxPool2d(2), nn.Linear(27, 3)

    def forward(self, x):
        return torch.stack([self.fc(self.pool(self.conv(s)).flatten()) for s in x])


@pytest.mark.parametrize("make", [_LeNet, _ReuseAfterInplace, _Unbatched])
def test_user_models_the_rules_once_broke_or_changed(make):
    torch.manual_seed(0)
    x, y = small_batch()
    _same_products(make(), x, y)


@pytest.mark.parametrize("where", ["conv_hook", "bn_pre_hook", "bn_hook"])
def test_hooks_on_a_fusable_pair_see_what_they_see_without_the_rules(where):
    net = conv_net()
    conv, bn = net[0], net[1]
    if where == "conv_hook":
        conv.register_forward_hook(lambda m, i, o: o * torch.tensor([0.5, 2.0, 1.0, 1.0]).view(1, -1, 1, 1).to(o))
    elif where == "bn_pre_hook":
        bn.register_forward_pre_hook(lambda m, i: (2 * i[0],))
    else:
        bn.register_forward_hook(lambda m, i, o: o + i[0])
    x, y = small_batch()
    _same_products(net, x, y)


def test_tracing_hides_hooks_and_follows_edits_of_the_model():
    net = nn.Sequential(conv_net())  # a hook on a block that fx traces through (not a leaf module)
    seen = []
    net[0].register_forward_hook(lambda m, i, o: seen.append(type(o).__name__))
    x, y = small_batch()
    _same_products(net, x, y)
    assert seen and set(seen) == {"Tensor"}  # never an fx Proxy
    assert conv_bn_pairs(net) == [("0.0", "0.1"), ("0.4", "0.5")]
    net[0].insert(1, nn.ReLU())  # conv -> ReLU -> batch norm: that pair is no longer fusable
    assert conv_bn_pairs(net) == [("0.5", "0.6")]
    _same_products(net, x, y)
