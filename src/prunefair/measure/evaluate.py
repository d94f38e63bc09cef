"""Evaluate a model per group on a GroupedData: one pass, sums accumulated on the device."""

from __future__ import annotations

import torch
from torch import nn

from prunefair.data import GroupedData, iterate_batches
from prunefair.models import eval_mode, input_dtype
from prunefair.measure.group_stats import GroupStats, batch_group_sums


@torch.no_grad()
def evaluate_groups(
    model: nn.Module,
    data: GroupedData,
    *,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
) -> GroupStats:
    """Per-group accuracy and cross-entropy of ``model`` (in eval mode) on every sample of ``data``."""
    sums = torch.zeros(3, data.num_groups, dtype=torch.float64, device=device)
    with eval_mode(model):
        for x, y, g in iterate_batches(data, batch_size=batch_size, device=device, channels_last=channels_last,
                                       dtype=input_dtype(model)):
            sums += batch_group_sums(model(x), y, g, data.num_groups)
    return GroupStats.from_sums(sums, data.group_names)
