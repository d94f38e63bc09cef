"""Unstructured magnitude pruning (Han et al., NeurIPS 2015): remove the weights of smallest |w|.

Global scope ranks all conv and linear weights together; the number removed is exactly
round(rate * total), ties broken by position, so the achieved sparsity is within one weight of the target.
"""

from __future__ import annotations

import torch
from torch import nn

from prunefair.prune.masks import MaskSet, prunable_parameters


def _check_rate(rate: float) -> None:
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"pruning rate must be in [0, 1), got {rate}")


@torch.no_grad()
def global_magnitude_masks(model: nn.Module, rate: float) -> MaskSet:
    """Keep-masks removing the ``rate`` fraction of smallest-magnitude weights over all layers."""
    _check_rate(rate)
    params = prunable_parameters(model)
    scores = torch.cat([p.detach().abs().flatten().float().cpu() for p in params.values()])
    k = int(round(rate * scores.numel()))
    keep = torch.ones(scores.numel(), dtype=torch.bool)
    if k > 0:
        # stable sort: equal magnitudes are removed in parameter order, deterministically
        order = torch.sort(scores, stable=True).indices
        keep[order[:k]] = False
    masks, start = {}, 0
    for name, p in params.items():
        masks[name] = keep[start : start + p.numel()].view_as(p.cpu())
        start += p.numel()
    return MaskSet(masks)


@torch.no_grad()
def layerwise_magnitude_masks(model: nn.Module, rate: float) -> MaskSet:
    """Keep-masks removing the ``rate`` fraction of smallest-magnitude weights in each layer."""
    _check_rate(rate)
    masks = {}
    for name, p in prunable_parameters(model).items():
        scores = p.detach().abs().flatten().float().cpu()
        k = int(round(rate * scores.numel()))
        keep = torch.ones(scores.numel(), dtype=torch.bool)
        if k > 0:
            keep[torch.sort(scores, stable=True).indices[:k]] = False
        masks[name] = keep.view_as(p.cpu())
    return MaskSet(masks)
