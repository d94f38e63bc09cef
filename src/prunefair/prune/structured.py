"""Structured (channel) pruning by filter norm (Li et al., ICLR 2017, with the L2 norm).

Whole output channels of conv layers (rows of linear layers) with the smallest L2 norm are zeroed: the
mask is expanded to the full weight shape, so training, saving and measuring work unchanged (the network
keeps its shape). This zeroes filters; it does not remove channels. The layer's bias and the following batch
norm's scale and shift are not masked, so a pruned channel outputs a constant (beta - gamma * mean / std after
a batch norm) that fine-tuning may still adjust, as a bias; Li et al. remove the channel with its batch norm.
The sparsity counts weights only, as for the other criteria.

The rate counts weights, as for unstructured pruning: layer scope removes round(rate * channels) channels
of each layer; global scope ranks all channels by norm and removes the lowest-norm prefix whose weight
count is nearest round(rate * total). The classifier (the last linear layer) is never pruned by channel:
each of its rows is a class.
"""

from __future__ import annotations

import torch
from torch import nn

from prunefair.prune.layers import last_linear
from prunefair.prune.masks import MaskSet, prunable_parameters
from prunefair.prune.select import channel_masks


@torch.no_grad()
def filter_norms(model: nn.Module) -> dict[str, torch.Tensor]:
    """L2 norm of every output channel (row) of every prunable weight."""
    return {k: p.detach().double().cpu().reshape(p.shape[0], -1).norm(dim=1)
            for k, p in prunable_parameters(model).items()}


def structured_masks(model: nn.Module, rate: float, *, scope: str = "layer", dense: frozenset[str] = frozenset(),
                     allow_layer_removal: bool = False, previous: MaskSet | None = None) -> MaskSet:
    """Keep-masks zeroing the lowest-norm output channels (the last linear layer stays dense)."""
    params = prunable_parameters(model)
    dense = frozenset(dense) | frozenset(n for n in [last_linear(model)] if n is not None)
    return channel_masks(filter_norms(model), {k: p.shape for k, p in params.items()}, rate, scope=scope,
                         dense=dense, allow_layer_removal=allow_layer_removal, previous=previous)
