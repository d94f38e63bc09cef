"""Dataset registry: a name maps to a loader that returns whole or pre-split GroupedData.

A loader takes keyword arguments (root, target, group, image_size, options) and returns a dict with
either the key "all" (we split it) or "train" and "test" (official split; validation comes from train).
With "all" it may add "clusters" (an id per sample): samples sharing an id (byte-identical files) are
kept on one side of every split. ``options`` carries the [data] keys a loader may read (limit, age_bins,
drop_duplicates, skip_unreadable, cache_dir, workers, csv, ...); ``resample`` is applied here, to train only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np

from prunefair.data.base import DatasetSplits, GroupedData, stratified_split

log = logging.getLogger("prunefair.data")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    loader: Callable[..., dict[str, GroupedData]]
    targets: tuple[str, ...]
    groups: tuple[str, ...]
    needs_root: bool
    description: str
    in_memory: bool = False  # registered arrays of this process (register_arrays): other processes lack them
    options: tuple[str, ...] = ()  # the [data] keys of LOADER_KEYS its loader reads; the others it would ignore


# [data] keys that only some loaders read: a study that sets one its dataset ignores is refused (config/sections.py)
LOADER_KEYS = ("root", "limit", "skip_unreadable", "drop_duplicates", "age_bins", "csv", "svhn_extra", "image_size")


_REGISTRY: dict[str, DatasetInfo] = {}

# the datasets shipped with prunefair: register_arrays refuses these names unless told to overwrite
BUILTIN_DATASETS = ("digits", "utkface", "cifar10", "svhn", "folder")


def register_dataset(info: DatasetInfo) -> None:
    _REGISTRY[info.name] = info


def dataset_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def dataset_info(name: str) -> DatasetInfo:
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(dataset_names())}")
    return _REGISTRY[name]


def _digits_loader(*, root=None, target="class", group="class", image_size=None, options=None):
    from prunefair.data.digits import load_digits_data

    return {"all": load_digits_data()}


def _lazy(module: str, func: str) -> Callable[..., dict]:
    def loader(**kwargs):
        import importlib

        return getattr(importlib.import_module(f"prunefair.data.{module}"), func)(**kwargs)

    return loader


register_dataset(DatasetInfo(
    "digits", _digits_loader, targets=("class",), groups=("class",), needs_root=False,
    description="scikit-learn's bundled 8x8 digits (1,797 images, 10 classes); groups = classes",
))
_UTK = ("ethnicity", "gender", "age", "race")
register_dataset(DatasetInfo(
    "utkface", _lazy("utkface", "load_utkface"), targets=_UTK, groups=_UTK, needs_root=True,
    options=("root", "limit", "skip_unreadable", "drop_duplicates", "age_bins", "image_size"),
    description="UTKFace aligned & cropped faces (23,708); ethnicity, gender, age bins and intersections; 48x48",
))
register_dataset(DatasetInfo(
    "cifar10", _lazy("cifar10", "load_cifar10"), targets=("class",), groups=("class",), needs_root=True,
    options=("root", "limit", "skip_unreadable", "image_size"),  # skip_unreadable: its image-folder layout
    description="CIFAR-10 (official pickle batches or train/<class>/ test/<class>/ image folders); groups = classes",
))
register_dataset(DatasetInfo(
    "svhn", _lazy("svhn", "load_svhn"), targets=("class",), groups=("class",), needs_root=True,
    options=("root", "limit", "svhn_extra", "image_size"),
    description="SVHN cropped digits (official train_32x32.mat / test_32x32.mat); groups = classes",
))
register_dataset(DatasetInfo(
    "folder", _lazy("folder", "load_folder"), targets=(), groups=(), needs_root=True,
    options=("root", "limit", "skip_unreadable", "drop_duplicates", "csv", "image_size"),
    description="your images: a folder plus a CSV (file, label, group columns); any column as target or group",
))


class DataRefused(ValueError):
    """A study's data could not be used as its settings name it (raised by ``study.load_study_data`` while loading;
    nothing was computed with that data). The message is the loader's own; rerunning as is refuses again."""


def load_dataset(
    name: str,
    *,
    root: str | None = None,
    target: str = "class",
    group: str = "class",
    image_size: int | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    options: dict | None = None,
    resample: dict | None = None,
) -> DatasetSplits:
    """Load a dataset and split it deterministically, stratified by (label, group).

    ``resample = {"group": name, "factor": f}`` then up- or down-samples that group of the train split.
    """
    info = dataset_info(name)
    if info.needs_root and not root:
        raise ValueError(f"dataset {name!r} needs data.root (the folder that holds it)")
    if resample:  # checked before the (maybe minutes long) decoding: a KeyError or float()'s message named nothing
        _check_resample(resample)
    parts = info.loader(root=root, target=target, group=group, image_size=image_size, options=options or {})
    if "all" in parts:
        full = parts["all"]
        fractions = (1 - val_fraction - test_fraction, val_fraction, test_fraction)
        tr, va, te = cluster_split(_strata(full), parts.get("clusters"), fractions=fractions, seed=split_seed)
        train, val, test = full.subset(tr), full.subset(va), full.subset(te)
    else:
        # the test split as a copy: a loader's tensors may be the decode cache's own (CIFAR-10's image folders), which
        # an in-place edit of splits.test.x once changed for every later load in the process
        full_train, test = parts["train"], parts["test"].subset(np.arange(len(parts["test"])))
        tr, va = stratified_split(_strata(full_train), fractions=(1 - val_fraction, val_fraction), seed=split_seed)
        train, val = full_train.subset(tr), full_train.subset(va)
    if resample:
        from prunefair.data.resample import resample_group

        train = resample_group(train, group=resample["group"], factor=resample["factor"], seed=split_seed)
    splits = DatasetSplits(train=train, val=val, test=test, name=name, target=target, group=group)
    empty = [s for s, d in (("train", train), ("test", test)) if len(d) == 0]
    if empty:
        where = f" in {root}" if root else ""
        total = len(train) + len(val) + len(test)
        why = ("every file was skipped or filtered out: see the skipped/unreadable counts logged above" if not total
               or "all" not in parts else f"{total} sample(s) in all are too few to split by data.test_fraction = "
               f"{test_fraction} and data.val_fraction = {val_fraction} (each (target, group) stratum is split on its "
               "own); add samples")
        raise ValueError(f"dataset {name!r}{where}: no samples left in the {' and '.join(empty)} split(s) (sizes: "
                         f"train {len(train)}, val {len(val)}, test {len(test)}); {why}")
    present = np.unique(train.y.numpy())
    if len(present) < 2:  # else every cell would train a one-logit model and fail with a misleading message
        where = f" in {root}" if root else ""
        raise ValueError(f"dataset {name!r}{where}: data.target = {target!r} has {len(present)} class(es) in the "
                         f"train split ({[train.class_names[int(i)] for i in present]}); a classifier needs at least "
                         "two")
    for split, groups in splits.empty_groups().items():
        log.warning("%s: %d group(s) have no %s samples (%s%s); their %s numbers will be missing",
                    name, len(groups), split, ", ".join(groups[:5]), ", ..." if len(groups) > 5 else "", split)
    return splits


def _check_resample(resample) -> None:
    from prunefair.data.resample import check_factor

    if not isinstance(resample, dict) or set(resample) != {"group", "factor"}:
        raise ValueError(f"resample = {resample!r}: give a dict with the keys 'group' and 'factor', e.g. "
                         "{'group': 'Black', 'factor': 5}")
    check_factor(resample["factor"])


def cluster_split(strata: np.ndarray, clusters: np.ndarray | None, *, fractions, seed: int) -> list[np.ndarray]:
    """Stratified split that keeps every cluster (e.g. copies of one file) within one part.

    Clusters are split as units, each stratified by its first member; without clusters this is
    ``stratified_split``.
    """
    if clusters is None:
        return stratified_split(strata, fractions=fractions, seed=seed)
    clusters = np.asarray(clusters)
    _, first, inverse = np.unique(clusters, return_index=True, return_inverse=True)
    parts = stratified_split(strata[first], fractions=fractions, seed=seed)
    return [np.flatnonzero(np.isin(inverse, p)) for p in parts]


def _strata(data: GroupedData) -> np.ndarray:
    return data.y.numpy() * max(data.num_groups, 1) + data.g.numpy()
