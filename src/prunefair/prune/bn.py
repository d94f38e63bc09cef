"""Batch-norm recalibration after pruning.

Pruning changes every pre-normalisation activation, but the running mean and variance a batch-norm layer
uses at evaluation still describe the dense network; at high sparsity the mismatch can collapse the pruned
model to a single class before any fine-tuning. Recalibration re-estimates them on training data: running
statistics reset, ``momentum=None`` (an exact cumulative average over the batches seen), forward passes without
gradients over a bounded number of batches, no augmentation, with the batch-norm layers in train mode and every
other module in eval mode: the statistics are those of the activations evaluation will see (dropout off), and
they depend on ``seed`` alone (a dropout in train mode would draw from the global RNG, whatever state it is in).
Weights are untouched.
"""

from __future__ import annotations

import torch
from torch import nn

from prunefair.data import GroupedData, iterate_batches
from prunefair.models import input_dtype, model_device

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, _BN) and m.track_running_stats for m in model.modules())


@torch.no_grad()
def recalibrate_batch_norm(
    model: nn.Module, data: GroupedData, *, batch_size: int = 256, max_batches: int | None = 50, seed: int = 0,
    device: torch.device | str | None = None, channels_last: bool = False,
) -> int:
    """Re-estimate every batch-norm layer's running statistics on ``data``; returns the samples used.

    The batches are a seeded random subset (``max_batches`` of ``batch_size``; all of ``data`` when None).
    The model is left in eval mode. A model without batch norm is unchanged (returns 0). ``device``: by default the
    model's (a model elsewhere than a given ``device`` is a ValueError).
    """
    layers = [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats]
    if not layers:
        return 0
    if max_batches is not None and max_batches < 1:
        raise ValueError(f"max_batches must be >= 1 (or None for all the data), got {max_batches}")
    if batch_size < 2 or len(data) < 2:
        raise ValueError(f"batch-norm recalibration needs batches of at least 2 samples (batch_size = {batch_size}, "
                         f"{len(data)} samples): batch norm cannot normalise one sample")
    device = model_device(model, device, who="recalibrate_batch_norm")
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    model.eval()
    for m in layers:
        m.train()
    seen = 0
    try:
        batches = iterate_batches(data, batch_size=batch_size, shuffle=True,
                                  generator=torch.Generator().manual_seed(seed), device=device,
                                  channels_last=channels_last, dtype=input_dtype(model))
        for i, (x, _, _) in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            if len(x) < 2:  # batch norm in train mode needs two samples
                continue
            model(x)
            seen += len(x)
    finally:
        for m, mom in zip(layers, momenta):
            m.momentum = mom
        model.eval()
    return seen
