"""Random pruning: the control criterion. Removes a uniformly random set of weights of the same size as
magnitude pruning would (globally or per layer), independent of the weights' values.

The scores are drawn from ``generator`` in parameter order, so the same generator state gives the same
mask on any model of the same architecture, and a schedule that redraws from the same seed gets nested masks.
"""

from __future__ import annotations

import torch
from torch import nn

from prunefair.prune.masks import prunable_parameters


def random_scores(model: nn.Module, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Uniform [0, 1) scores of the shape of every prunable weight (seed 0 when no generator is given)."""
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    return {k: torch.rand(p.shape, generator=generator, dtype=torch.float64)
            for k, p in prunable_parameters(model).items()}
