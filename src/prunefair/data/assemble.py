"""Shared steps of the file-based loaders: subsets, decoding, duplicates, and the final GroupedData.

A loader lists its files with their attributes, picks the target and the group, and calls
:func:`build_grouped`, which drops samples whose target or group is unknown (counted), takes a
deterministic stratified subset when ``limit`` is set, decodes the images once (cached), and finds
byte-identical duplicates: kept together (their cluster ids go to the splitter, so copies never straddle
train and test) or, with ``drop_duplicates``, reduced to one file per cluster.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from prunefair.data.attributes import Attribute
from prunefair.data.base import GroupedData, stratified_split
from prunefair.data.images import load_images

log = logging.getLogger("prunefair.data")


@dataclass(frozen=True)
class LoadOptions:
    """The loader options every file-based dataset understands (from the [data] section)."""

    limit: int | None = None
    drop_duplicates: bool = False
    skip_unreadable: bool = False
    cache_dir: str | None = None
    workers: int | None = None

    @classmethod
    def from_dict(cls, options: dict) -> "LoadOptions":
        return cls(**{k: options[k] for k in cls.__dataclass_fields__ if options.get(k) is not None})


def subsample(strata: np.ndarray, limit: int | None, *, seed: int = 0) -> np.ndarray:
    """Indices of a deterministic subset of about ``limit`` samples, proportional across strata."""
    n = len(strata)
    if limit is None or limit >= n:
        return np.arange(n)
    if limit <= 0:
        raise ValueError(f"data.limit = {limit}: must be positive")
    frac = limit / n
    part, _ = stratified_split(strata, fractions=(frac, 1.0 - frac), seed=seed)
    return part


def duplicate_clusters(digests: np.ndarray) -> np.ndarray:
    """Cluster id per sample: samples with identical file bytes share one (the first member's index)."""
    first: dict[bytes, int] = {}
    out = np.empty(len(digests), dtype=np.int64)
    for i, d in enumerate(digests.tolist()):
        out[i] = first.setdefault(d, i)
    return out


def resolve_duplicates(y: np.ndarray, g: np.ndarray, clusters: np.ndarray, *, drop: bool) -> tuple[np.ndarray, dict]:
    """Indices to keep and counts. With ``drop``: one file per cluster (the first); a cluster whose
    copies disagree on target or group is dropped whole, since no label can be trusted."""
    sizes = np.bincount(clusters, minlength=len(clusters))
    dup_members = sizes[clusters] > 1
    stats = {"duplicate_files": int(dup_members.sum()), "duplicate_clusters": int((sizes > 1).sum())}
    if not drop:
        return np.arange(len(clusters)), stats
    keep = []
    conflicting = 0
    for c in np.unique(clusters):
        members = np.flatnonzero(clusters == c) if sizes[c] > 1 else np.array([c])
        if len(members) == 1:
            keep.append(int(members[0]))
        elif len(set(zip(y[members].tolist(), g[members].tolist()))) == 1:
            keep.append(int(members[0]))
        else:
            conflicting += 1
    keep_arr = np.sort(np.asarray(keep, dtype=np.int64))
    stats.update(duplicates_dropped=int(len(clusters) - len(keep_arr)), duplicate_clusters_conflicting=conflicting)
    return keep_arr, stats


def build_grouped(
    files: list[str],
    target: Attribute,
    group: Attribute,
    *,
    image_size: int | None,
    options: LoadOptions,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    info: dict,
    dedupe: bool = True,
) -> tuple[GroupedData, np.ndarray | None]:
    """Decode the usable files into a GroupedData; also return duplicate cluster ids (or None)."""
    info = dict(info)
    y_all, g_all = target.codes, group.codes
    known = (y_all >= 0) & (g_all >= 0)
    if (~known).any():
        info["dropped_unknown_attribute"] = int((~known).sum())
        log.warning("%s: dropped %d file(s) whose target or group is unknown, e.g. %s",
                    info.get("dataset", "data"), int((~known).sum()), files[int(np.flatnonzero(~known)[0])])
    idx = np.flatnonzero(known)
    idx = idx[subsample(y_all[idx] * max(len(group.names), 1) + g_all[idx], options.limit)]
    if options.limit is not None:
        info["limit"] = options.limit
    decoded = load_images([files[i] for i in idx], size=image_size, skip_unreadable=options.skip_unreadable,
                          cache_dir=options.cache_dir, workers=options.workers)
    if decoded.unreadable:
        info["skipped_unreadable"] = len(decoded.unreadable)
        info["unreadable_files"] = [str(f) for f in decoded.unreadable[:20]]
    idx = idx[decoded.kept]
    x = decoded.x
    y, g = y_all[idx], g_all[idx]
    clusters = None
    if dedupe:
        clusters = duplicate_clusters(decoded.digests)
        keep, stats = resolve_duplicates(y, g, clusters, drop=options.drop_duplicates)
        info.update(stats)
        if stats["duplicate_files"]:
            how = "dropped to one copy each" if options.drop_duplicates else "kept on one side of the split"
            log.warning("%s: %d byte-identical file(s) in %d cluster(s), %s", info.get("dataset", "data"),
                        stats["duplicate_files"], stats["duplicate_clusters"], how)
        if options.drop_duplicates:
            x, y, g, idx, clusters = x[torch.from_numpy(keep)], y[keep], g[keep], idx[keep], None
    data = GroupedData(x, torch.from_numpy(y), torch.from_numpy(g), target.names, group.names,
                       mean=mean, std=std, info=info)
    return data, clusters
