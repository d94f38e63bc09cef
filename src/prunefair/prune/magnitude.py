"""Unstructured magnitude pruning (Han et al., NeurIPS 2015): remove the weights of smallest |w|.

Global scope ranks all conv and linear weights together; the number removed is exactly
round(rate * total), ties broken by position, so the achieved sparsity is within one weight of the target.
Layer scope removes round(rate * n) weights of each layer.
"""

from __future__ import annotations

import torch
from torch import nn

from prunefair.prune.masks import MaskSet, prunable_parameters
from prunefair.prune.select import unstructured_masks


@torch.no_grad()
def magnitude_scores(model: nn.Module) -> dict[str, torch.Tensor]:
    """|w| of every prunable weight, by parameter name."""
    return {k: p.detach().abs().to(torch.promote_types(p.dtype, torch.float32)).cpu()
            for k, p in prunable_parameters(model).items()}


def global_magnitude_masks(model: nn.Module, rate: float, *, dense: frozenset[str] = frozenset(),
                           previous: MaskSet | None = None) -> MaskSet:
    """Keep-masks removing the ``rate`` fraction of smallest-magnitude weights over all layers."""
    return unstructured_masks(magnitude_scores(model), rate, scope="global", dense=dense, previous=previous)


def layerwise_magnitude_masks(model: nn.Module, rate: float, *, dense: frozenset[str] = frozenset(),
                              allow_layer_removal: bool = False, previous: MaskSet | None = None) -> MaskSet:
    """Keep-masks removing the ``rate`` fraction of smallest-magnitude weights in each layer."""
    return unstructured_masks(magnitude_scores(model), rate, scope="layer", dense=dense,
                              allow_layer_removal=allow_layer_removal, previous=previous)
