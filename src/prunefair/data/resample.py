"""Up- or down-sample one group of a training set (the group-size experiment, Tran et al. Sec. C.3).

A factor f > 1 keeps every sample of the group floor(f) times and adds a random (f - floor(f)) share of
them once more; f < 1 keeps a random f share (at least one sample). Other groups are untouched.
Deterministic for a seed. The counts before and after go into ``info["resample"]``.

The factor must be a finite number > 0, and the resampled training split may hold at most ``MAX_GROWTH`` (100)
times the samples of the split it came from: a larger factor is refused (a ValueError naming the key and the
resulting sizes) before anything is allocated.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from prunefair.data.base import GroupedData

MAX_GROWTH = 100  # the resampled split may hold at most this many times the samples of the original split


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


def check_factor(factor, *, key: str = "data.resample.factor") -> float:
    """``factor`` as a float; a ValueError naming ``key`` unless it is a finite number > 0."""
    try:
        value = float(factor)
    except (TypeError, ValueError):
        raise ValueError(f"{key} = {factor!r}: must be a finite number > 0") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{key} = {factor!r}: must be a finite number > 0")
    return value


def check_resampled_size(split_size: int, count: int, factor: float, *, group: str,
                         key: str = "data.resample.factor") -> int:
    """The training split's size after resampling ``group`` (``count`` of its ``split_size`` samples) by
    ``factor``; a ValueError naming ``key`` and the sizes when it exceeds ``MAX_GROWTH`` times ``split_size``."""
    factor = check_factor(factor, key=key)
    grown = upsampled_size(count, factor)
    after = split_size - count + grown
    if after > MAX_GROWTH * max(split_size, 1):
        raise ValueError(f"{key} = {factor:g} would make group {group!r} {grown} samples ({count} now) and the "
                         f"training split {after} samples, over {MAX_GROWTH}x its {split_size}; use a smaller factor")
    return after


def resample_group(data: GroupedData, *, group: str, factor: float, seed: int = 0) -> GroupedData:
    group = str(group)  # a class given as the integer 8 is the group named "8" (as run_group_size reads it)
    if group not in data.group_names:
        raise ValueError(f"data.resample.group = {group!r}: not a group of this dataset; "
                         f"allowed: {', '.join(data.group_names)}")
    factor = check_factor(factor)
    gid = data.group_names.index(group)
    members = np.flatnonzero(data.g.numpy() == gid)
    others = np.flatnonzero(data.g.numpy() != gid)
    rng = np.random.default_rng(seed)
    n = len(members)
    check_resampled_size(len(data), n, factor, group=group)
    whole, extra = _copies(n, factor)
    picked = [np.tile(members, whole), rng.choice(members, size=extra, replace=False) if extra else members[:0]]
    index = np.sort(np.concatenate([others, *picked]))
    out = data.subset(torch.from_numpy(index))
    out.info["resample"] = {"group": group, "factor": factor, "before": int(n), "after": int(whole * n + extra)}
    return out
