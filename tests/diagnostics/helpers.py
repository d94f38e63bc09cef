"""Tiny models and data for exact checks (dense Hessians are affordable at this size)."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from prunefair.data import GroupedData


def tiny_data(n: int = 90, groups: int = 3, classes: int = 3, features: int = 5, seed: int = 0) -> GroupedData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    grp = torch.randint(0, groups, (n,), generator=g)
    grp[:groups] = torch.arange(groups)  # every group present
    return GroupedData(x, y, grp, tuple(str(c) for c in range(classes)), tuple(f"g{a}" for a in range(groups)))


def tiny_model(features: int = 5, classes: int = 3, hidden: int = 6, batch_norm: bool = True, seed: int = 0):
    torch.manual_seed(seed)
    layers = [nn.Linear(features, hidden)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(hidden))
    layers += [nn.Tanh(), nn.Linear(hidden, classes)]
    return nn.Sequential(*layers)


def trained(model: nn.Module, data: GroupedData, steps: int = 150, lr: float = 0.2) -> nn.Module:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(data.x), data.y).backward()
        opt.step()
    model.eval()
    return model


def dense_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Hessian of the mean cross-entropy w.r.t. all parameters, as a dense matrix (eval mode), float64."""
    model = model.eval()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    numels = [p.numel() for _, p in model.named_parameters()]
    buffers = {k: b.double() if b.is_floating_point() else b for k, b in model.named_buffers()}
    flat0 = torch.cat([p.detach().double().reshape(-1) for p in model.parameters()])

    def loss(flat):
        params = {n: t.view(s) for n, t, s in zip(names, torch.split(flat, numels), shapes)}
        return nn.functional.cross_entropy(functional_call(model, (params, buffers), (x.double(),)), y)

    return torch.autograd.functional.hessian(loss, flat0)
