"""Cheaper, exact second-order rules for the layers that dominate a Hessian-vector product (same function, same H).

A double-backward product differentiates the gradient graph once more. PyTorch's own rules are general, and for
a model in eval mode four things cost more than they need to:

- a convolution followed by an eval-mode batch norm is one convolution with weight W * scale and bias shift
  (scale = gamma / sqrt(var + eps), shift = beta - mean * scale): written that way, batch norm's first- and
  second-order terms act on the weights (a few thousand numbers) instead of on every activation;
- any other eval-mode ``nn.BatchNorm1d/2d`` is the affine map x * scale + shift (autograd's batch-norm double
  backward still runs the training-mode formula);
- ``nn.Conv2d``: PyTorch differentiates the weight gradient as a convolution over transposed (batch <-> channel)
  tensors, its slowest kernel here; ``conv_rules.py`` states the derivative with the regular kernels, sums
  pairs of convolutions in place, and computes the two terms of a layer input's adjoint together;
- ``nn.ReLU`` and ``nn.MaxPool2d``: their backward selects entries of the incoming gradient; autograd's double
  backward also returns zeros for the activation, allocated and added into its adjoint on every product (5-7% of
  a product on the CNN). ``_ReLUBackward`` and ``_MaxPoolBackward`` return nothing there, and the max-pool's
  selection gathers channels-last tensors in their own layout.

All are exact rewrites: products agree with plain autograd to float rounding and with the dense Hessian
(tests/diagnostics/test_hvp_rules.py). ``benchmarks/bench_hvp.py`` times a product both ways.

``second_order_rules(model)`` swaps these layers' ``forward`` for the rewritten one while the gradient graph is
built, and restores them on exit; the graph keeps the rewritten nodes for the products that follow. Convolution
and batch-norm pairs are found by tracing the model with ``torch.fx`` (a pair: the convolution's output goes to
the batch norm alone, each module called once); a model that does not trace gets the per-layer rules only.
Layers not covered (training-mode batch norm, padding modes other than zeros, string padding, max-pools
that return indices, functional ``F.relu`` calls) stay as they are. The function is the model's own in the cases
that once differed (tests/diagnostics/test_hvp_rules.py): an in-place ReLU still overwrites its input, a pair
whose hooks would see the fused tensors is not fused (and fx traces the model with its hooks set aside), unbatched
(C, H, W) calls run as a batch of one, and a model that ``.view()``s a convolution's output has its graph built
again without channels_last (``hvp.py``).
"""

from __future__ import annotations

import contextlib
import types
import weakref
from collections import Counter

import torch
from torch import nn
from torch.autograd import Function

from prunefair.diagnostics.conv_rules import _LAYOUT, _conv

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


class _ReLUBackward(Function):
    """grad_out -> grad_out * (out > 0). Linear in grad_out and constant in the activation: autograd's own rule
    also returns zeros for the activation, allocated and added into its adjoint on every product; this one
    returns nothing there."""

    @staticmethod
    def forward(ctx, grad_out, out):
        ctx.save_for_backward(out)
        return torch.ops.aten.threshold_backward(grad_out, out, 0)

    @staticmethod
    def backward(ctx, gg):
        (out,) = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(gg, out, 0), None


class _ReLU(Function):
    @staticmethod
    def forward(ctx, x):
        out = torch.relu(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (out,) = ctx.saved_tensors
        return _ReLUBackward.apply(grad_out, out)


class _MaxPoolBackward(Function):
    """grad_out -> grad_out scattered to each window's argmax; the same selection as a ReLU's (no zeros for the
    activation, whose shape is all the rule reads)."""

    @staticmethod
    def forward(ctx, grad_out, x, idx, meta):
        ctx.save_for_backward(idx)
        return torch.ops.aten.max_pool2d_with_indices_backward(grad_out, x, *meta, idx)

    @staticmethod
    def backward(ctx, gg):
        (idx,) = ctx.saved_tensors
        return _gather_windows(gg, idx), None, None, None


def _gather_windows(gg: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """gg at each window's argmax (``idx`` holds flat h * W + w positions per channel). Channels-last tensors
    are gathered in their own (N, H*W, C) layout: flattening them as NCHW would copy the whole activation."""
    if gg.dim() == 4 and not gg.is_contiguous() and gg.is_contiguous(memory_format=torch.channels_last) \
            and idx.is_contiguous(memory_format=torch.channels_last):
        n, c, h, w = idx.shape
        out = gg.permute(0, 2, 3, 1).reshape(n, -1, c).gather(1, idx.permute(0, 2, 3, 1).reshape(n, -1, c))
        return out.view(n, h, w, c).permute(0, 3, 1, 2)
    return gg.flatten(2).gather(2, idx.flatten(2)).view(idx.shape)


class _MaxPool2d(Function):
    @staticmethod
    def forward(ctx, x, meta):
        out, idx = torch.ops.aten.max_pool2d_with_indices(x, *meta)
        ctx.save_for_backward(x, idx)
        ctx.meta = meta
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, idx = ctx.saved_tensors
        return _MaxPoolBackward.apply(grad_out, x, idx, ctx.meta), None


class _ReLUInplace(_ReLU):
    """``nn.ReLU(inplace=True)``: overwrites its input as PyTorch's does (a model that reads the input again sees
    the rectified values), with the same lean derivative (``_ReLU.backward``)."""

    @staticmethod
    def forward(ctx, x):
        torch.relu_(x)
        ctx.mark_dirty(x)
        ctx.save_for_backward(x)
        return x


def _relu_forward(self: nn.ReLU, x: torch.Tensor) -> torch.Tensor:
    return (_ReLUInplace if self.inplace else _ReLU).apply(x)


def _max_pool_forward(self: nn.MaxPool2d, x: torch.Tensor) -> torch.Tensor:
    def pair(v):
        return [v, v] if isinstance(v, int) else list(v)

    if x.dim() == 3:  # unbatched (C, H, W): a batch of one
        return _max_pool_forward(self, x.unsqueeze(0)).squeeze(0)
    meta = (pair(self.kernel_size), pair(self.stride or self.kernel_size), pair(self.padding), pair(self.dilation),
            self.ceil_mode)
    return _MaxPool2d.apply(x, meta)


def _conv_forward(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return _conv(x, self.weight, self.bias, self)


def _affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) with bn(x) = x * scale + shift per channel (eval mode), as functions of gamma and beta."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = bn.weight * scale
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


def _batch_norm_forward(self: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    scale, shift = _affine(self)
    view = (1, -1) + (1,) * (x.dim() - 2)
    return torch.addcmul(shift.view(view), x, scale.view(view))


def _fused_forward(bn: nn.modules.batchnorm._BatchNorm):
    def forward(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        scale, shift = _affine(bn)
        if self.bias is not None:
            shift = torch.addcmul(shift, self.bias, scale)
        return _conv(x, self.weight * scale.view(-1, 1, 1, 1), shift, self)

    return forward


def _identity(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return x


# conv -> batch-norm pairs per model, by module name, with the module structure they were traced on
_PAIRS: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple, list[tuple[str, str]]]]" = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def _hooks_set_aside(model: nn.Module):
    """The model's forward hooks taken off while fx traces it (they would be called with fx's proxies)."""
    saved = []
    for m in model.modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks"):
            hooks = getattr(m, attr)
            if hooks:
                saved.append((hooks, dict(hooks)))
                hooks.clear()
    try:
        yield
    finally:
        for hooks, content in saved:
            hooks.update(content)


def conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """Names of (convolution, batch norm) pairs where the convolution's output goes to the batch norm alone.
    Traced once per model and module structure (retraced after modules are added, removed or replaced)."""
    structure = tuple((name, type(m)) for name, m in model.named_modules())
    cached = _PAIRS.get(model)
    if cached is not None and cached[0] == structure:
        return cached[1]
    modules = dict(model.named_modules())
    pairs = []
    try:
        with _hooks_set_aside(model):
            graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # a model fx cannot trace: per-layer rules only
        graph = None
    if graph is not None:
        nodes = [n for n in graph.nodes if n.op == "call_module"]
        calls = Counter(n.target for n in nodes)
        for n in nodes:
            src = n.args[0] if len(n.args) == 1 and not n.kwargs else None
            if isinstance(src, torch.fx.Node) and src.op == "call_module" and len(src.users) == 1 \
                    and type(modules.get(src.target)) is nn.Conv2d and type(modules.get(n.target)) in _BN \
                    and calls[src.target] == 1 and calls[n.target] == 1:
                pairs.append((src.target, n.target))
    _PAIRS[model] = (structure, pairs)
    return pairs


def _hooked(m: nn.Module) -> bool:
    return bool(m._forward_hooks or m._forward_pre_hooks)


def _rewritable(m: nn.Module) -> bool:
    if type(m) is nn.Conv2d:
        return m.padding_mode == "zeros" and not isinstance(m.padding, str)
    if type(m) in _BN:
        return not m.training and m.running_mean is not None and m.running_var is not None
    if type(m) is nn.MaxPool2d:
        return not m.return_indices
    return type(m) is nn.ReLU


_LAYER_RULES = {nn.Conv2d: _conv_forward, nn.BatchNorm1d: _batch_norm_forward, nn.BatchNorm2d: _batch_norm_forward,
                nn.MaxPool2d: _max_pool_forward, nn.ReLU: _relu_forward}


@contextlib.contextmanager
def second_order_rules(model: nn.Module, enabled: bool = True, channels_last: bool = True):
    """Within the block, the model's convolution + batch-norm pairs, other eval-mode batch norms, 2-d
    convolutions, ReLUs and max-pools build the rewritten graph. Yields how many modules were rewritten.
    A pair is not fused when a hook would see the fused tensors: a forward hook on the convolution (its output
    would be the batch norm's) or any forward hook on the batch norm (it would be an identity); each layer
    still gets its own rule, under which its hooks see what they see without the rules. ``channels_last=False``
    keeps the convolutions' layout on the CPU (for models that ``.view`` a convolution's output)."""
    patched = []

    def patch(m: nn.Module, fn) -> None:
        m.forward = types.MethodType(fn, m)
        patched.append(m)

    if enabled:
        modules = dict(model.named_modules())
        for conv, bn in conv_bn_pairs(model):
            c, b = modules[conv], modules[bn]
            if _rewritable(c) and _rewritable(b) and "forward" not in c.__dict__ and "forward" not in b.__dict__ \
                    and not c._forward_hooks and not _hooked(b):
                patch(c, _fused_forward(b))
                patch(b, _identity)
        for m in model.modules():
            if _rewritable(m) and "forward" not in m.__dict__:
                patch(m, _LAYER_RULES[type(m)])
    layout, _LAYOUT["channels_last"] = _LAYOUT["channels_last"], channels_last
    try:
        yield len(patched)
    finally:
        _LAYOUT["channels_last"] = layout
        for m in patched:
            del m.forward
