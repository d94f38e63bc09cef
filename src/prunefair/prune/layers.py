"""Which layers a protocol keeps dense: the first conv (or first prunable layer) and the last linear layer.

Balancing Act's protocol (and much of the pruning literature) leaves the input layer and the classifier
dense, since they are small and pruning them costs accuracy out of proportion; biases and normalisation
parameters are never pruned (they are not prunable parameters at all).
"""

from __future__ import annotations

from torch import nn

from prunefair.prune.masks import prunable_parameters


def first_prunable(model: nn.Module) -> str | None:
    """Name of the first conv or linear weight in module order (the first conv of a CNN)."""
    return next(iter(prunable_parameters(model)), None)


def last_linear(model: nn.Module) -> str | None:
    """Name of the weight of the last nn.Linear in module order (the classifier), if any: the name
    ``prunable_parameters`` gives it, which for a weight tied to an earlier layer is that layer's."""
    weight = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            weight = module.weight
    return next((k for k, p in prunable_parameters(model).items() if p is weight), None)


def kept_dense(model: nn.Module, keep_first_last: bool) -> frozenset[str]:
    """Parameter names left dense under the protocol (empty unless ``keep_first_last``)."""
    if not keep_first_last:
        return frozenset()
    return frozenset(n for n in (first_prunable(model), last_linear(model)) if n is not None)
