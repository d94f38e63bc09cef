"""The 2-d convolution's exact second-order rules (used by ``hvp_rules.second_order_rules``).

A convolution's backward is (grad_input, grad_weight) = (conv_T(g, W), wgrad(x, g)), and PyTorch differentiates
the weight gradient as a convolution over transposed (batch <-> channel) tensors, its slowest kernel here.
``_ConvBackward`` states the three terms of its derivative with the regular kernels: d g = conv(ggI, W) +
conv(x, ggW) (+ the bias term), d W = wgrad(ggI, g), d x = conv_T(g, ggW). The bias term rides in conv(x, ggW),
and on the CPU oneDNN's fused sum adds conv(ggI, W) into that result in place (``_conv_add_``).

Fused input adjoints. In a Hessian-vector product two of a layer's convolutions feed the adjoint of its input x:
conv_T(g, ggW) from the gradient graph's node (above) and conv_T(x_bar, W) from the forward convolution's node,
which autograd computes separately and adds. Inside ``fused_input_adjoints()`` (entered by ``GroupHessian`` around
each product) the first is handed to the forward node instead, which runs both as convolutions with
flipped weights, the second summed into the first in place: the same sum with one output and no add (product on
the CIFAR-10 study model 0.93x as long, float32 results identical). Autograd always runs the gradient graph's node
first (the forward node's adjoint depends on it), so every hand-over is claimed in the same pass; hand-overs live
in the pass of the calling thread (another thread's product on the same graph, or plain autograd outside the
context, neither sees nor takes them), a forward node takes at most one per pass (a second gradient node of the
same forward call computes its own term), and the context reports one left unclaimed (then ``GroupHessian`` runs
that product again without the fusion). Only for stride 1, dilation 1, one group and padding <= kernel - 1, where
conv_T is a convolution with flipped weights; CPU only (not measured on CUDA).
"""

from __future__ import annotations

import contextlib
import threading

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import Function

_LAYOUT = {"channels_last": True}  # set by second_order_rules while a graph is built


def _conv_backward(grad_out, x, w, meta, mask):
    stride, padding, dilation, groups, has_bias = meta
    return torch.ops.aten.convolution_backward(grad_out, x, w, [w.shape[0]] if has_bias else None, stride, padding,
                                               dilation, False, [0] * len(stride), groups, mask)


_REFUSED: set = set()  # convolution settings the fused kernel refused (then the two plain steps)


def _conv_add_(out: torch.Tensor, x: torch.Tensor, w: torch.Tensor, meta) -> torch.Tensor:
    """out += conv(x, w), in place. On the CPU, oneDNN's convolution with a fused sum writes into ``out``: the
    same numbers as ``out.add_(conv(x, w))`` without the temporary and the extra pass over an activation
    (microbenchmark, the compact CNN's first stage at 256 CIFAR images: 34 ms for the two steps, 24 ms fused).
    Elsewhere (float64, CUDA, a graph being built), or where that kernel refuses the settings, the two steps."""
    stride, padding, dilation, groups, _ = meta
    if out.device.type == "cpu" and x.dtype == torch.float32 and not out.requires_grad and meta not in _REFUSED \
            and hasattr(torch.ops.mkldnn, "_convolution_pointwise_"):
        try:
            return torch.ops.mkldnn._convolution_pointwise_.binary(
                out, x, w, None, list(padding), list(stride), list(dilation), groups, "add", 1.0, None, [], None)
        except (RuntimeError, TypeError):  # refused, or a torch whose private schema differs
            _REFUSED.add(meta)
    return out.add_(F.conv2d(x, w, None, stride, padding, dilation, groups))


# -- fused input adjoints ---------------------------------------------------------------------------------------
_PASS = threading.local()  # .current: the FusedPass of the product running on this thread (None outside one)


class _Link:
    """Identifies one forward convolution node to its gradient-graph node(s); the hand-overs themselves live in
    the pass (thread-local), so a pass on another thread, or outside the context, never sees them."""

    __slots__ = ()


class FusedPass:
    """One product's hand-overs, link -> (g, ggW). ``complete``: False when one was not claimed."""

    def __init__(self):
        self.pending: dict = {}
        self.complete = True


@contextlib.contextmanager
def fused_input_adjoints():
    """Within the block (one product's backward pass on this thread), eligible convolutions compute their input's
    two adjoint terms together. Yields a ``FusedPass`` whose ``complete`` says, after the block, whether every
    hand-over was claimed; unclaimed ones are dropped, so no later product sees them."""
    previous = getattr(_PASS, "current", None)
    result = FusedPass()
    _PASS.current = result
    try:
        yield result
    finally:
        _PASS.current = previous
        if result.pending:
            result.pending.clear()
            result.complete = False


def _fusable(x: torch.Tensor, w: torch.Tensor, meta) -> bool:
    stride, padding, dilation, groups, _ = meta
    return x.device.type == "cpu" and x.requires_grad and w.requires_grad and groups == 1 \
        and all(s == 1 for s in stride) and all(d == 1 for d in dilation) \
        and all(0 <= p <= k - 1 for p, k in zip(padding, w.shape[2:]))


def _flipped(w: torch.Tensor) -> torch.Tensor:
    """The weight of the convolution that computes conv_T(., w) at stride 1: in/out channels swapped, kernel
    flipped (its layout kept)."""
    layout = torch.channels_last if w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() \
        else torch.contiguous_format
    return w.transpose(0, 1).flip(2, 3).contiguous(memory_format=layout)


def _input_adjoint(x_bar_out, w, g, gg_weight, meta) -> torch.Tensor:
    """conv_T(x_bar_out, w) + conv_T(g, gg_weight) as two convolutions with flipped weights into one output."""
    padding = tuple(k - 1 - p for p, k in zip(meta[1], w.shape[2:]))
    flipped_meta = ((1, 1), padding, (1, 1), 1, False)
    out = F.conv2d(x_bar_out, _flipped(w), None, 1, padding)
    return _conv_add_(out, g, _flipped(gg_weight), flipped_meta)


class _ConvBackward(Function):
    """(grad_out, x, w) -> (grad_input, grad_weight, grad_bias) of a 2-d convolution, with a lean derivative."""

    @staticmethod
    def forward(ctx, grad_out, x, w, meta, need_input, link):
        ctx.save_for_backward(grad_out, x, w)
        ctx.meta = meta
        ctx.link = link
        return _conv_backward(grad_out, x, w, meta, [need_input, True, meta[4]])

    @staticmethod
    def backward(ctx, gg_input, gg_weight, gg_bias):
        grad_out, x, w = ctx.saved_tensors
        stride, padding, dilation, groups, has_bias = ctx.meta
        d_out = d_x = d_w = None
        if ctx.needs_input_grad[0]:
            bias = gg_bias if has_bias else None
            if gg_weight is not None:  # the bias term rides in this convolution
                d_out, bias = F.conv2d(x, gg_weight, bias, stride, padding, dilation, groups), None
            if gg_input is not None:
                d_out = F.conv2d(gg_input, w, bias, stride, padding, dilation, groups) if d_out is None \
                    else _conv_add_(d_out, gg_input, w, ctx.meta)
            elif bias is not None:
                d_out = bias.view(1, -1, 1, 1).expand_as(grad_out).clone()
        if ctx.needs_input_grad[1] and gg_weight is not None:
            current = getattr(_PASS, "current", None)
            if current is not None and ctx.link is not None and not torch.is_grad_enabled() \
                    and ctx.link not in current.pending:  # a second gradient node of the same forward node: its own
                current.pending[ctx.link] = (grad_out, gg_weight)  # claimed by the forward convolution's node
            else:
                d_x = _conv_backward(grad_out, x, gg_weight, ctx.meta[:4] + (False,), [True, False, False])[0]
        if ctx.needs_input_grad[2] and gg_input is not None:
            d_w = _conv_backward(grad_out, gg_input, w, ctx.meta[:4] + (False,), [False, True, False])[1]
        return d_out, d_x, d_w, None, None, None


class _Conv2d(Function):
    @staticmethod
    def forward(ctx, x, w, b, meta):
        ctx.save_for_backward(x, w)
        ctx.meta = meta
        ctx.link = _Link() if _fusable(x, w, meta) else None
        stride, padding, dilation, groups, _ = meta
        return F.conv2d(x, w, b, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out):
        x, w = ctx.saved_tensors
        link = ctx.link
        current = getattr(_PASS, "current", None)
        pending = current.pending.pop(link, None) if current is not None and link is not None else None
        if pending is not None:  # in a product on this thread: both input-adjoint terms here
            g, gg_weight = pending
            has_bias = ctx.meta[4]
            _, gw, gb = _conv_backward(grad_out, x, w, ctx.meta, [False, ctx.needs_input_grad[1], has_bias])
            return _input_adjoint(grad_out, w, g, gg_weight, ctx.meta), gw, gb, None
        gi, gw, gb = _ConvBackward.apply(grad_out, x, w, ctx.meta, ctx.needs_input_grad[0], link)
        return gi, gw, gb, None


def _conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, m: nn.Conv2d) -> torch.Tensor:
    """The rewritten convolution. On the CPU its weights go channels_last (the activations follow): products
    1.0-1.2x faster that way whatever the model's own layout (bench_hvp.py); on CUDA the model's layout stays,
    as this was not measured there. Unbatched (C, H, W) inputs run as a batch of one."""
    if x.dim() == 3:
        return _conv(x.unsqueeze(0), w, b, m).squeeze(0)
    meta = (tuple(m.stride), tuple(m.padding), tuple(m.dilation), m.groups, b is not None)
    if x.device.type == "cpu" and _LAYOUT["channels_last"]:
        w = w.contiguous(memory_format=torch.channels_last)
    return _Conv2d.apply(x, w, b, meta)
