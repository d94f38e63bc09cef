"""Hessian-vector products of a group's mean loss, never forming the Hessian.

Two ways to compute H v for H = hessian_theta J(theta; S) (mean cross-entropy over the samples S):

- ``double_backward``: reverse-over-reverse. The gradient graph of each chunk of S is built once
  (``create_graph=True``) and kept, so each product is one extra backward pass through it. The graph is built
  with ``second_order_rules`` (exact, cheaper rules for eval-mode batch norm and 2-d convolutions, see
  hvp_rules.py) unless ``rules=False``.
- ``forward_over_reverse``: ``torch.func.jvp`` of ``torch.func.grad`` (Pearlmutter's trick with a forward-mode
  tangent), recomputed for every product; needs no retained graph, so it suits groups too large to keep one.

``method="auto"``: on the CPU, double backward with the rules (with ``rules=False``, without), always, so that the
same seed gives the same numbers (a timed choice flips between runs on a busy machine, and the ways differ in
float rounding); on the CPU forward-over-reverse was never faster (1.9x slower) and the rules at most 1.2x slower
than plain autograd, on toy sizes only (benchmarks/bench_hvp.py). On other devices it times one product of each
on the same data and keeps the faster (remembered for the model and data shape, so the timing is paid once); with
``rules`` it also times plain autograd's double backward there, where the rules were not measured. The model is used in
eval mode (batch norm with running statistics), so H is the Hessian of a fixed function of theta.
Vectors are flat, in the order of ``model.parameters()`` that require grad.
"""

from __future__ import annotations

import time
import warnings
import weakref
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from prunefair.diagnostics.conv_rules import fused_input_adjoints
from prunefair.diagnostics.hvp_rules import second_order_rules
from prunefair.models import check_logits, kept_modes

HVP_METHODS = ("auto", "double_backward", "forward_over_reverse")

# The choice made by "auto", remembered per model and data shape so the timing is paid once per model.
_CHOICES: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()
# models whose rewritten graph cannot run channels_last on the CPU (they .view() a convolution's output)
_CHANNELS_LAST: "weakref.WeakKeyDictionary[nn.Module, bool]" = weakref.WeakKeyDictionary()


class GroupHessian:
    """The linear operator v -> H v of the mean cross-entropy of ``model`` on inputs ``x``, labels ``y``.

    Puts the model in eval mode (the Hessian of a fixed function); the caller restores its mode when done."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, method: str = "auto",
                 chunk_size: int = 1024, cache_graph: bool = True, rules: bool = True):
        if method not in HVP_METHODS:
            raise ValueError(f"unknown hvp method {method!r}; allowed: {', '.join(HVP_METHODS)}")
        if len(x) == 0:
            raise ValueError("cannot form the Hessian of an empty group")
        model.eval()
        self.model = model
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.shapes = [p.shape for p in self.params]
        self.numels = [p.numel() for p in self.params]
        self.dim = sum(self.numels)
        self.n = len(y)
        self.chunks = list(zip(torch.split(x, chunk_size), torch.split(y, chunk_size)))
        self.cache_graph = cache_graph
        self.rules = rules
        self._fuse = True  # fused input adjoints in products (conv_rules.py)
        self._graphs: list[tuple[torch.Tensor, ...]] | None = None
        self._graph_rules: bool | None = None  # how the cached graph was built
        self.products = 0
        self.timings: dict[str, float] = {}
        if method == "auto" and x.device.type == "cpu":
            method = "double_backward"  # deterministic (see the module's docstring)
        if method == "auto":
            key = (tuple(x.shape[1:]), min(len(y), chunk_size), str(x.device), x.dtype, rules)
            remembered = _CHOICES.setdefault(model, {})
            if key not in remembered:
                remembered[key] = self._pick_faster()
            method, self.rules = remembered[key]
            if self._graph_rules is not None and self._graph_rules != self.rules:
                self.release()  # the cached graph was built the other way
        self.method = method

    @property
    def device(self) -> torch.device:
        return self.params[0].device

    @property
    def dtype(self) -> torch.dtype:
        return self.params[0].dtype

    def _split(self, v: torch.Tensor) -> list[torch.Tensor]:
        return [t.view(s) for t, s in zip(torch.split(v, self.numels), self.shapes)]

    # -- reverse-over-reverse ------------------------------------------------------------------
    def _graph(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # on the CPU the rules run convolutions channels_last (1.1x faster); a model that .view()s a convolution's
        # output cannot take that layout, and is built again in its own (remembered per model)
        layouts = [True, False] if self.rules and x.device.type == "cpu" and _CHANNELS_LAST.get(self.model, True) \
            else [False]
        for i, channels_last in enumerate(layouts):
            xi = x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x
            try:
                with second_order_rules(self.model, self.rules, channels_last=channels_last):
                    loss = F.cross_entropy(check_logits(self.model(xi), len(y)), y, reduction="sum")
                    # a parameter the forward pass does not use (an auxiliary head) has no gradient: None here,
                    # zero rows and columns of H (``_backward``)
                    grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
            except RuntimeError:
                if i + 1 == len(layouts):
                    raise
                continue
            if i:
                _CHANNELS_LAST[self.model] = False
            return grads

    def _grad_graphs(self) -> list[tuple[torch.Tensor, ...]]:
        if self._graphs is not None:
            return self._graphs
        graphs = [self._graph(x, y) for x, y in self.chunks]
        if self.cache_graph:
            self._graphs, self._graph_rules = graphs, self.rules
        return graphs

    def _hvp_double_backward(self, v: torch.Tensor) -> torch.Tensor:
        vs = self._split(v)
        out = torch.zeros(self.dim, device=self.device, dtype=self.dtype)
        if self._graphs is None and not self.cache_graph:
            for x, y in self.chunks:  # rebuild each chunk's graph and free it as the pass goes
                out += self._backward(lambda x=x, y=y: self._graph(x, y), vs, keep=False)
        else:
            for grads in self._grad_graphs():
                out += self._backward(lambda grads=grads: grads, vs, keep=True)
        return out / self.n

    def _backward(self, graph: Callable[[], tuple[torch.Tensor, ...]], vs: list[torch.Tensor], *,
                  keep: bool) -> torch.Tensor:
        """One chunk's product: the backward pass through its gradient graph (``graph()``; kept for later products
        when ``keep``), with the convolutions' input adjoints fused (conv_rules.py) unless a pass once left a term
        unclaimed: then that product again without the fusion (on the graph built again if it was not kept), and
        never with it for this operator."""
        grads = graph()
        used = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
        if len(used) < len(grads):  # unused parameters: no gradient, so no term in H v, and zero rows of H v
            return self._backward_used(graph, grads, vs, used, keep=keep)
        if self._fuse:
            with fused_input_adjoints() as fused:
                hv = torch.autograd.grad(grads, self.params, grad_outputs=vs, retain_graph=keep)
            if fused.complete:
                return torch.cat([h.reshape(-1) for h in hv])
            self._fuse = False
            grads = grads if keep else graph()
        hv = torch.autograd.grad(grads, self.params, grad_outputs=vs, retain_graph=keep)
        return torch.cat([h.reshape(-1) for h in hv])

    def _backward_used(self, graph, grads, vs: list[torch.Tensor], used: list[int], *, keep: bool) -> torch.Tensor:
        """``_backward`` for a model with parameters its forward pass does not use: only the gradients that exist
        are differentiated, and the rows of H v of parameters they do not depend on are zero."""
        outputs, grad_outputs = [grads[i] for i in used], [vs[i] for i in used]

        def product() -> tuple[torch.Tensor, ...]:
            return torch.autograd.grad(outputs, self.params, grad_outputs=grad_outputs, retain_graph=keep,
                                       allow_unused=True, materialize_grads=True)

        if not outputs:
            return torch.zeros(self.dim, device=self.device, dtype=self.dtype)
        if self._fuse:
            with fused_input_adjoints() as fused:
                hv = product()
            if fused.complete:
                return torch.cat([h.reshape(-1) for h in hv])
            self._fuse = False
            if not keep:
                grads = graph()
                outputs = [grads[i] for i in used]
        return torch.cat([h.reshape(-1) for h in product()])

    # -- forward-over-reverse ------------------------------------------------------------------
    def _hvp_forward_over_reverse(self, v: torch.Tensor) -> torch.Tensor:
        from torch.func import functional_call, grad, jvp

        buffers = dict(self.model.named_buffers())
        primals = {k: p.detach() for k, p in zip(self.names, self.params)}
        tangents = dict(zip(self.names, self._split(v)))
        out = torch.zeros(self.dim, device=self.device, dtype=self.dtype)
        for x, y in self.chunks:
            def loss_fn(p, x=x, y=y):
                return F.cross_entropy(functional_call(self.model, (p, buffers), (x,)), y, reduction="sum")

            with warnings.catch_warnings():  # torch's own jvp decompositions still call torch.jit.script
                warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.jit.script")
                _, hv = jvp(grad(loss_fn), (primals,), (tangents,))
            out += torch.cat([hv[k].reshape(-1) for k in self.names])
        return out / self.n

    # -- the gradient, a start vector for Lanczos ----------------------------------------------------
    def gradient(self) -> torch.Tensor:
        """The flat gradient of the mean loss on these samples (free with double backward: its graph holds it).

        At a trained model the gradient lies mostly in the Hessian's top eigenspace (Gur-Ari et al., 2018), so
        Lanczos started from it needs about half the products of a random start."""
        if self.method == "double_backward" and self.cache_graph:
            graphs = self._grad_graphs()
            flat = [torch.cat([(g.detach() if g is not None else torch.zeros_like(p)).reshape(-1)
                               for g, p in zip(grads, self.params)]) for grads in graphs]
        else:
            flat = []
            for x, y in self.chunks:
                loss = F.cross_entropy(self.model(x), y, reduction="sum")
                grads = torch.autograd.grad(loss, self.params, allow_unused=True, materialize_grads=True)
                flat.append(torch.cat([g.reshape(-1) for g in grads]))
        return torch.stack(flat).sum(0) / self.n

    # -- choosing and calling ------------------------------------------------------------------
    def _pick_faster(self) -> tuple[str, bool]:
        """Time one product of each way (after a warm-up that builds what it needs) and return the fastest as
        (method, rules): double backward with the second-order rules, plain double backward (only when the
        rules were asked for: a safeguard where they were never measured, e.g. a new GPU) and
        forward-over-reverse."""
        g = torch.Generator().manual_seed(0)
        v = torch.randn(self.dim, generator=g).to(device=self.device, dtype=self.dtype)
        asked = self.rules
        candidates = [("double_backward_autograd", "double_backward", False)] if asked else []
        candidates += [("double_backward", "double_backward", asked),
                       ("forward_over_reverse", "forward_over_reverse", asked)]
        for name, method, rules in candidates:
            self.rules = rules
            if self._graph_rules is not None and self._graph_rules != rules:
                self.release()
            fn = self._hvp_double_backward if method == "double_backward" else self._hvp_forward_over_reverse
            fn(v)  # warm-up (builds and caches the gradient graph for double backward)
            _sync(self.device)
            t0 = time.perf_counter()
            fn(v)
            _sync(self.device)
            self.timings[name] = time.perf_counter() - t0
        best = min(self.timings, key=self.timings.get)
        return next((method, rules) for name, method, rules in candidates if name == best)

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        self.products += 1
        if self.method == "double_backward":
            return self._hvp_double_backward(v)
        return self._hvp_forward_over_reverse(v)

    def release(self) -> None:
        """Free the cached gradient graphs."""
        self._graphs = None
        self._graph_rules = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hessian_vector_product(model: nn.Module, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, *,
                           method: str = "double_backward") -> torch.Tensor:
    """H v for one flat vector v (a convenience for tests and one-off products); the model's mode is kept."""
    with kept_modes(model), torch.inference_mode(False), torch.enable_grad():  # also under no_grad/inference_mode
        return GroupHessian(model, x, y, method=method, cache_graph=False)(v)


MatVec = Callable[[torch.Tensor], torch.Tensor]
