"""Up- or down-sample one group of a training set (the group-size experiment, Tran et al. Sec. C.3).

A factor f > 1 keeps every sample of the group floor(f) times and adds a random (f - floor(f)) share of
them once more; f < 1 keeps a random f share (at least one sample). Other groups are untouched.
Deterministic for a seed. The counts before and after go into ``info["resample"]``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from prunefair.data.base import GroupedData


def _copies(count: int, factor: float) -> tuple[int, int]:
    """(whole copies of every sample, extra samples drawn once more) for a group of ``count`` and ``factor``."""
    whole = int(math.floor(factor))
    extra = int(round((factor - whole) * count))
    if whole == 0:
        extra = max(1, extra) if count else 0
    return whole, extra


def upsampled_size(count: int, factor: float) -> int:
    """How many samples a group of ``count`` has after ``resample_group`` with ``factor``."""
    whole, extra = _copies(count, factor)
    return whole * count + extra


def resample_group(data: GroupedData, *, group: str, factor: float, seed: int = 0) -> GroupedData:
    if group not in data.group_names:
        raise ValueError(f"data.resample.group = {group!r}: not a group of this dataset; "
                         f"allowed: {', '.join(data.group_names)}")
    if not factor > 0:
        raise ValueError(f"data.resample.factor = {factor}: must be > 0")
    gid = data.group_names.index(group)
    members = np.flatnonzero(data.g.numpy() == gid)
    others = np.flatnonzero(data.g.numpy() != gid)
    rng = np.random.default_rng(seed)
    n = len(members)
    whole, extra = _copies(n, factor)
    picked = [np.tile(members, whole), rng.choice(members, size=extra, replace=False) if extra else members[:0]]
    index = np.sort(np.concatenate([others, *picked]))
    out = data.subset(torch.from_numpy(index))
    out.info["resample"] = {"group": group, "factor": factor, "before": int(n), "after": int(whole * n + extra)}
    return out
