"""Fused input adjoints (conv_rules.py): a layer input's two adjoint terms computed together give the same
products as autograd's separate terms (plain autograd's equal the dense Hessian's, and GroupHessian's products,
fused, are checked against the dense Hessian in test_hvp_rules.py), and nothing is lost when a hand-over goes
unclaimed."""

import pytest
import torch
from torch import nn

from prunefair.diagnostics import GroupHessian
from prunefair.diagnostics import conv_rules
from prunefair.diagnostics.conv_rules import _input_adjoint, fused_input_adjoints


def net_of(*convs: nn.Conv2d, seed: int = 0) -> nn.Sequential:
    """A first convolution (its input is the data: nothing to fuse), then the given ones, each after a tanh."""
    torch.manual_seed(seed)
    layers = [nn.Conv2d(2, convs[0].in_channels, 3, padding=1)]
    for c in convs:
        layers += [nn.Tanh(), c]
    layers += [nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(convs[-1].out_channels, 3)]
    return nn.Sequential(*layers).eval()


def batch(n=5, size=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, size, size, generator=g), torch.randint(0, 3, (n,), generator=g)


def count_claims(monkeypatch) -> list:
    """Record each fused input adjoint computed."""
    calls = []
    original = conv_rules._input_adjoint

    def counted(*args):
        calls.append(args[1].shape)
        return original(*args)

    monkeypatch.setattr(conv_rules, "_input_adjoint", counted)
    return calls


@pytest.mark.parametrize("convs,fused", [
    ((nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Conv2d(4, 3, 3, padding=1)), 2),  # both fused
    ((nn.Conv2d(3, 4, (3, 5), padding=(0, 2)), nn.Conv2d(4, 4, 1)), 2),  # non-square kernel, padding 0 and 1x1
    ((nn.Conv2d(3, 2, 3, stride=2, padding=1), nn.Conv2d(2, 2, 3, dilation=2, padding=2),
      nn.Conv2d(2, 2, 3, padding=1, groups=2), nn.Conv2d(2, 2, 3, padding=3)), 0),  # none of these is eligible
])
def test_fused_products_equal_plain_autograd_and_the_unfused_ones(convs, fused, monkeypatch):
    net = net_of(*convs).double()
    x, y = batch()
    x = x.double()
    plain = GroupHessian(net, x, y, method="double_backward", rules=False)  # equals the dense Hessian (test_hvp_rules)
    v = torch.randn(plain.dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    calls = count_claims(monkeypatch)
    op = GroupHessian(net, x, y, method="double_backward")
    ours = op(v)
    assert len(calls) == fused and op._fuse
    torch.testing.assert_close(ours, plain(v), rtol=1e-10, atol=1e-12)
    op._fuse = False
    torch.testing.assert_close(op(v), ours, rtol=1e-12, atol=1e-14)
    assert len(calls) == fused  # the second product ran without the fusion


def test_float32_cnn_products_are_unchanged_by_the_fusion(monkeypatch):
    from prunefair.models import build_model

    net = build_model("cnn", num_classes=3, input_shape=(2, 8, 8), width=0.25).eval()
    x, y = batch(n=6, size=8)
    calls = count_claims(monkeypatch)
    op = GroupHessian(net, x, y, method="double_backward")
    v = torch.randn(op.dim, generator=torch.Generator().manual_seed(3))
    fused = op(v)
    assert len(calls) == 5  # every convolution but the first (whose input is the data)
    op._fuse = False
    torch.testing.assert_close(fused, op(v), rtol=1e-5, atol=1e-6)


def test_an_unclaimed_hand_over_is_dropped_and_the_product_computed_again(monkeypatch):
    net = net_of(nn.Conv2d(3, 4, 3, padding=1)).double()
    x, y = batch()
    x = x.double()
    plain = GroupHessian(net, x, y, method="double_backward", rules=False)
    v = torch.randn(plain.dim, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    Hv = plain(v)
    op = GroupHessian(net, x, y, method="double_backward")
    op.gradient()  # the graph is built with the fusable node
    # a forward node that never claims (as if autograd ran it before the gradient graph's node)
    original = conv_rules._Conv2d.backward

    def unclaiming(ctx, grad_out):
        if torch.is_grad_enabled():  # building a gradient graph (create_graph): as it is
            return original(ctx, grad_out)
        link, ctx.link = ctx.link, None
        try:
            return original(ctx, grad_out)
        finally:
            ctx.link = link

    monkeypatch.setattr(conv_rules._Conv2d, "backward", staticmethod(unclaiming))
    torch.testing.assert_close(op(v), Hv, rtol=1e-10, atol=1e-12)
    assert not op._fuse  # and not tried again for this operator
    uncached = GroupHessian(net, x, y, method="double_backward", cache_graph=False)
    retained, grad = [], torch.autograd.grad

    def recorded(*args, **kwargs):
        retained.append(kwargs.get("retain_graph"))
        return grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", recorded)
    torch.testing.assert_close(uncached(v), Hv, rtol=1e-10, atol=1e-12)  # its graph built again for the rerun
    assert not uncached._fuse and retained.count(False) == 2  # both passes free the graph as they go
    monkeypatch.setattr(torch.autograd, "grad", grad)
    monkeypatch.setattr(conv_rules._Conv2d, "backward", staticmethod(original))
    torch.testing.assert_close(op(v), Hv, rtol=1e-10, atol=1e-12)


def test_the_pass_reports_and_clears_what_was_left():
    link = conv_rules._Link()
    with fused_input_adjoints() as fused:
        fused.pending[link] = (torch.zeros(1), torch.zeros(1))
    assert not fused.complete and not fused.pending and conv_rules._PASS.current is None
    with pytest.raises(RuntimeError, match="boom"), fused_input_adjoints() as fused:
        fused.pending[link] = (torch.zeros(1), torch.zeros(1))
        raise RuntimeError("boom")
    assert not fused.pending and conv_rules._PASS.current is None
    with fused_input_adjoints() as fused:
        pass
    assert fused.complete


def deep_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.Tanh(), nn.Conv2d(6, 6, 3, padding=1), nn.Tanh(),
                         nn.Conv2d(6, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 36, 3)).double().eval()


def test_two_threads_on_one_graph_keep_their_own_terms():
    """Hand-overs live in the thread's pass, not on the graph: another thread's product (ours, or plain autograd
    outside the fused context) on the same graph at the same time neither takes nor overwrites them (once took
    them: 2-43 of 150 products per thread off by up to 25%)."""
    import sys
    import threading

    net = deep_net()
    x, y = batch(n=4, size=6)
    x = x.double()
    op = GroupHessian(net, x, y, method="double_backward")
    g = torch.Generator().manual_seed(1)
    vs = [torch.randn(op.dim, generator=g, dtype=torch.float64) for _ in range(2)]
    plain = GroupHessian(net, x, y, method="double_backward", rules=False)
    ref = [plain(v) for v in vs]
    op(vs[0])  # the graph, built once and shared
    errors = [[], []]

    def work(i):
        for _ in range(60):
            if i == 0:
                out = op(vs[0])
            else:  # plain autograd on the same graph, outside the fused context
                (grads,) = op._grad_graphs()
                hv = torch.autograd.grad(grads, op.params, grad_outputs=op._split(vs[1]), retain_graph=True)
                out = torch.cat([h.reshape(-1) for h in hv]) / op.n
            errors[i].append(float((out - ref[i]).norm() / ref[i].norm()))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert max(errors[0]) < 1e-12 and max(errors[1]) < 1e-12
    assert op._fuse  # nothing went unclaimed


def test_two_gradient_graphs_of_one_forward_each_keep_their_term():
    """One forward under the rules, two gradients with create_graph, their sum differentiated in a fused pass:
    both gradient nodes of a convolution hand over to the same forward node; the second computes its own term
    (once it overwrote the first's: 15% off, reported complete)."""
    from prunefair.diagnostics.hvp_rules import second_order_rules

    net = deep_net()
    x, y = batch(n=4, size=6)
    x = x.double()
    plain = GroupHessian(net, x, y, method="double_backward", rules=False)
    v = torch.randn(plain.dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    params = list(net.parameters())
    with second_order_rules(net):
        logits = net(x)
        ga = torch.autograd.grad(nn.functional.cross_entropy(logits[:3], y[:3], reduction="sum"), params,
                                 create_graph=True, retain_graph=True)
        gb = torch.autograd.grad(nn.functional.cross_entropy(logits[3:], y[3:], reduction="sum"), params,
                                 create_graph=True)
    vs = [t.view(p.shape) for t, p in zip(torch.split(v, [p.numel() for p in params]), params)]
    with fused_input_adjoints() as fused:
        hv = torch.autograd.grad([a + b for a, b in zip(ga, gb)], params, vs)
    assert fused.complete
    torch.testing.assert_close(torch.cat([h.reshape(-1) for h in hv]) / len(y), plain(v), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernel,padding", [((3, 3), (1, 1)), ((3, 5), (0, 2)), ((1, 1), (0, 0)), ((3, 3), (2, 2))])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_input_adjoint_is_both_transposed_convolutions(kernel, padding, layout, dtype):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 4, 9, 9, generator=g, dtype=dtype)
    w = torch.randn(6, 4, *kernel, generator=g, dtype=dtype).contiguous(memory_format=layout)
    v = torch.randn(6, 4, *kernel, generator=g, dtype=dtype).contiguous(memory_format=layout)
    out_shape = torch.nn.functional.conv2d(x, w, None, 1, padding).shape
    a = torch.randn(out_shape, generator=g, dtype=dtype).contiguous(memory_format=layout)
    b = torch.randn(out_shape, generator=g, dtype=dtype).contiguous(memory_format=layout)
    expected = torch.nn.grad.conv2d_input(x.shape, w, a, 1, padding) \
        + torch.nn.grad.conv2d_input(x.shape, v, b, 1, padding)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    torch.testing.assert_close(_input_adjoint(a, w, b, v, ((1, 1), padding, (1, 1), 1, False)), expected, **tol)
