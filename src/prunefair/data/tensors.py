"""Bring your own data from Python: tensors or numpy arrays, registered as a named dataset.

    register_arrays("mine", x, y, attributes={"sex": sex, "age": age_band})
    prunefair.run_study({"data": {"dataset": "mine", "target": "class", "group": "sex*age"}, ...})

``x`` is (N, C, H, W) images (uint8 0..255, normalised with ``mean``/``std``, or float used as given) or
(N, F) features. ``y`` holds class ids 0..C-1 (or any labels, coded in sorted order). Each attribute
array holds one value per sample (ints or strings); ``class`` is always available as target and group.
An optional official test set (``x_test``, ``y_test``, ``attributes_test``) is used as is; otherwise
the study splits the data, stratified by target and group.
"""

from __future__ import annotations

import numpy as np
import torch

from prunefair.data.attributes import Attribute, categorical, select_attribute
from prunefair.data.base import GroupedData
from prunefair.data.registry import DatasetInfo, register_dataset


def _as_tensor(x) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    if t.dtype not in (torch.uint8, torch.float32):
        t = t.float()
    return t.detach().cpu()


def _attribute(values, names) -> Attribute:
    arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if names is not None:
        if arr.dtype.kind not in "iu":
            raise ValueError("attribute values must be integer codes when names are given")
        return Attribute(arr.astype(np.int64), tuple(str(n) for n in names))
    if arr.dtype.kind in "iu" and len(arr) and arr.min() >= 0:
        return Attribute(arr.astype(np.int64), tuple(str(i) for i in range(int(arr.max()) + 1)))
    return categorical(arr.tolist())


def grouped_from_arrays(x, y, *, attributes: dict | None = None, names: dict | None = None, target="class",
                        group="class", mean=None, std=None, info: dict | None = None) -> GroupedData:
    """One GroupedData from arrays; ``names`` maps 'class' or an attribute to the name of each code."""
    names = names or {}
    xt = _as_tensor(x)
    n = len(xt)
    attrs = {"class": _attribute(y, names.get("class"))}
    for k, v in (attributes or {}).items():
        attrs[k.lower()] = _attribute(v, names.get(k))
    for k, a in attrs.items():
        if len(a.codes) != n:
            raise ValueError(f"attribute {k!r} has {len(a.codes)} values for {n} samples")
    ya = select_attribute(attrs, target, key="target")
    ga = select_attribute(attrs, group, key="group")
    known = (ya.codes >= 0) & (ga.codes >= 0)
    keep = torch.from_numpy(np.flatnonzero(known))
    if xt.dtype == torch.uint8 and xt.dim() == 4 and mean is None:
        mean, std = (0.5,) * xt.shape[1], (0.5,) * xt.shape[1]
    return GroupedData(xt[keep], torch.from_numpy(ya.codes[known]), torch.from_numpy(ga.codes[known]),
                       ya.names, ga.names, mean=mean, std=std,
                       info={"dataset": "arrays", "dropped_unknown_attribute": int((~known).sum()), **(info or {})})


def register_arrays(name: str, x, y, *, attributes: dict | None = None, names: dict | None = None,
                    x_test=None, y_test=None, attributes_test: dict | None = None, mean=None, std=None,
                    description: str = "") -> None:
    """Make in-memory arrays a dataset a study can name (``data.dataset = name``)."""
    if (x_test is None) != (y_test is None):
        raise ValueError("give both x_test and y_test, or neither")
    attr_names = tuple(sorted(k.lower() for k in (attributes or {})))

    def loader(*, root=None, target="class", group="class", image_size=None, options=None):
        kw = dict(names=names, target=target, group=group, mean=mean, std=std, info={"dataset": name})
        if x_test is None:
            return {"all": grouped_from_arrays(x, y, attributes=attributes, **kw)}
        train = grouped_from_arrays(x, y, attributes=attributes, **kw)
        test = grouped_from_arrays(x_test, y_test, attributes=attributes_test, **kw)
        if train.class_names != test.class_names or train.group_names != test.group_names:
            raise ValueError(f"dataset {name!r}: train and test have different classes or groups")
        return {"train": train, "test": test}

    register_dataset(DatasetInfo(name, loader, targets=("class", *attr_names), groups=("class", *attr_names),
                                 needs_root=False, description=description or f"in-memory arrays ({len(x)} samples)",
                                 in_memory=True))
