"""Evaluate a model per group on a GroupedData: one pass, sums accumulated on the device."""

from __future__ import annotations

import numbers

import torch
from torch import nn

from prunefair.data import DatasetSplits, GroupedData, iterate_batches
from prunefair.models import check_logits, eval_mode, input_dtype, model_device
from prunefair.measure.group_stats import GroupStats, batch_group_sums


@torch.no_grad()
def evaluate_groups(
    model: nn.Module,
    data: GroupedData,
    *,
    batch_size: int = 512,
    device: torch.device | str | None = None,
    channels_last: bool = False,
) -> GroupStats:
    """Per-group accuracy and cross-entropy of ``model`` (in eval mode) on every sample of ``data`` (one split's
    GroupedData, e.g. ``splits.test``). ``device``: where the batches go, by default the model's (a model elsewhere
    than a given ``device`` is a ValueError). The model must return one logit per class of ``data``; a sample whose
    logits hold a NaN counts as wrong, and its NaN loss makes its group's loss NaN."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"evaluate_groups: model is a torch nn.Module, got a {type(model).__name__}")
    if isinstance(data, DatasetSplits):
        raise TypeError("evaluate_groups: data is a DatasetSplits; pass one split's GroupedData, e.g. splits.test")
    if not isinstance(data, GroupedData):
        raise TypeError(f"evaluate_groups: data is one split's GroupedData (e.g. splits.test), got a "
                        f"{type(data).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"evaluate_groups: batch_size = {batch_size!r}: a whole number >= 1")
    device = model_device(model, device, who="evaluate_groups")
    sums = torch.zeros(3, data.num_groups, dtype=torch.float64, device=device)
    with eval_mode(model):
        for x, y, g in iterate_batches(data, batch_size=batch_size, device=device, channels_last=channels_last,
                                       dtype=input_dtype(model)):
            logits = check_logits(model(x), len(y))
            if logits.shape[1] < data.num_classes:
                # checked on the shape (no device sync); cross-entropy would fail on the first label beyond it
                raise ValueError(f"evaluate_groups: the model returned {logits.shape[1]} logits per sample but the "
                                 f"data has {data.num_classes} classes ({', '.join(data.class_names[:10])}"
                                 f"{', ...' if data.num_classes > 10 else ''}): one logit per class is needed")
            sums += batch_group_sums(logits, y, g, data.num_groups)
    return GroupStats.from_sums(sums, data.group_names)
