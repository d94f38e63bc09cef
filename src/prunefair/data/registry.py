"""Dataset registry: a name maps to a loader that returns whole or pre-split GroupedData.

A loader takes keyword arguments (root, target, group, image_size, options) and returns a dict with
either the key "all" (we split it) or "train" and "test" (official split; validation comes from train).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from prunefair.data.base import DatasetSplits, GroupedData, stratified_split


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    loader: Callable[..., dict[str, GroupedData]]
    targets: tuple[str, ...]
    groups: tuple[str, ...]
    needs_root: bool
    description: str


_REGISTRY: dict[str, DatasetInfo] = {}


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


register_dataset(DatasetInfo(
    "digits", _digits_loader, targets=("class",), groups=("class",), needs_root=False,
    description="scikit-learn's bundled 8x8 digits (1,797 images, 10 classes); groups = classes",
))


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
) -> DatasetSplits:
    """Load a dataset and split it deterministically, stratified by (label, group)."""
    info = dataset_info(name)
    if info.needs_root and not root:
        raise ValueError(f"dataset {name!r} needs data.root (the folder that holds it)")
    parts = info.loader(root=root, target=target, group=group, image_size=image_size, options=options or {})
    if "all" in parts:
        full = parts["all"]
        strata = _strata(full)
        tr, va, te = stratified_split(
            strata, fractions=(1 - val_fraction - test_fraction, val_fraction, test_fraction), seed=split_seed
        )
        train, val, test = full.subset(tr), full.subset(va), full.subset(te)
    else:
        full_train, test = parts["train"], parts["test"]
        tr, va = stratified_split(_strata(full_train), fractions=(1 - val_fraction, val_fraction), seed=split_seed)
        train, val = full_train.subset(tr), full_train.subset(va)
    return DatasetSplits(train=train, val=val, test=test, name=name, target=target, group=group)


def _strata(data: GroupedData) -> np.ndarray:
    return data.y.numpy() * max(data.num_groups, 1) + data.g.numpy()
