"""Every group's Hessian-vector product in one pass: row a of V goes through H_a, the Hessian of group a's mean loss.

Per group, a Hessian-vector product on a few hundred samples leaves a GPU mostly idle (each one is hundreds of small
kernels). Here the model's parameters are stacked once per group, theta_a, and ``torch.func.vmap`` runs group a's
samples through theta_a, so the summed loss sum_a J(theta_a; D_a) has a block-diagonal Hessian whose blocks are
exactly the H_a: one double backward with the stacked vectors gives every H_a v_a at once. Groups of unequal size
are padded with weight-0 rows. The model runs in eval mode (batch norm with running statistics), as in
``GroupHessian``. Measured, it does not pay yet: vmap turns each convolution into a grouped one, slower than the
separate passes (CPU 0.55x, H200 0.96x on a small CNN), so ``diagnose_groups`` uses it only when asked
(``stacked=True``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class StackedGroupHessian:
    """The operator V [groups, dim] -> [H_a V_a] for inputs ``xs[a]``, labels ``ys[a]`` of each group a."""

    def __init__(self, model: nn.Module, xs: list[torch.Tensor], ys: list[torch.Tensor], *, chunk_size: int = 1024):
        if not xs or any(len(x) == 0 for x in xs):
            raise ValueError("every group needs at least one sample for its Hessian")
        model.eval()
        self.model = model
        named = list(model.named_parameters())
        self.names = [n for n, p in named if p.requires_grad]
        self.frozen = {n: p.detach() for n, p in named if not p.requires_grad}
        self.buffers = dict(model.named_buffers())
        self.shapes = [p.shape for _, p in named if p.requires_grad]
        self.numels = [s.numel() for s in self.shapes]
        self.dim = sum(self.numels)
        self.groups = len(xs)
        self.counts = [len(y) for y in ys]
        n = max(self.counts)
        first = next(p for _, p in named if p.requires_grad)
        self.device, self.dtype = first.device, first.dtype
        # pad every group to n rows by repeating its first row, with weight 0; weight 1/n_a on real rows
        self.x = torch.stack([torch.cat([x, x[:1].expand(n - len(x), *x.shape[1:])]) for x in xs])
        self.y = torch.stack([torch.cat([y, y[:1].expand(n - len(y))]) for y in ys])
        self.w = torch.zeros(self.groups, n, device=self.device, dtype=self.dtype)
        for a, c in enumerate(self.counts):
            self.w[a, :c] = 1.0 / c
        self.stacked = [p.detach().unsqueeze(0).repeat(self.groups, *([1] * p.dim())).requires_grad_(True)
                        for _, p in named if p.requires_grad]
        self.chunk_size = chunk_size
        self.products = 0
        self._graphs = [self._grad_graph(s) for s in range(0, n, chunk_size)]

    def _grad_graph(self, s: int) -> tuple[torch.Tensor, ...]:
        from torch.func import functional_call, vmap

        def group_loss(params, x, y, w):
            p = dict(zip(self.names, params))
            p.update(self.frozen)
            logits = functional_call(self.model, (p, self.buffers), (x,))
            return (F.cross_entropy(logits, y, reduction="none") * w).sum()

        e = s + self.chunk_size
        losses = vmap(group_loss)(tuple(self.stacked), self.x[:, s:e], self.y[:, s:e], self.w[:, s:e])
        # a parameter the forward pass does not use (an auxiliary head): no gradient (None), zero rows of H
        return torch.autograd.grad(losses.sum(), self.stacked, create_graph=True, allow_unused=True)

    def _flat(self, tensors) -> torch.Tensor:
        return torch.cat([(t if t is not None else torch.zeros_like(p)).reshape(self.groups, -1)
                          for t, p in zip(tensors, self.stacked)], dim=1)

    def gradient(self) -> torch.Tensor:
        """[groups, dim]: each group's gradient of its mean loss (free: the graph holds it)."""
        return sum(self._flat([None if g is None else g.detach() for g in graph]) for graph in self._graphs)

    def __call__(self, V: torch.Tensor) -> torch.Tensor:
        self.products += 1
        parts = [t.view(self.groups, *s) for t, s in zip(torch.split(V, self.numels, dim=1), self.shapes)]
        out = torch.zeros(self.groups, self.dim, device=self.device, dtype=self.dtype)
        for graph in self._graphs:
            used = [i for i, g in enumerate(graph) if g is not None and g.requires_grad]
            if len(used) == len(graph):
                out += self._flat(torch.autograd.grad(graph, self.stacked, grad_outputs=parts, retain_graph=True))
            elif used:
                out += self._flat(torch.autograd.grad([graph[i] for i in used], self.stacked,
                                                      grad_outputs=[parts[i] for i in used], retain_graph=True,
                                                      allow_unused=True))
        return out

    def release(self) -> None:
        self._graphs = []
