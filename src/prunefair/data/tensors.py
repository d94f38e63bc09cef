"""Bring your own data from Python: tensors or numpy arrays, registered as a named dataset.

    register_arrays("mine", x, y, attributes={"sex": sex, "age": age_band})
    prunefair.run_study({"data": {"dataset": "mine", "target": "class", "group": "sex*age"}, ...})

``x`` is (N, C, H, W) images (uint8 0..255, normalised with ``mean``/``std``, or float used as given) or
(N, F) features. ``y`` holds class ids 0..C-1 (or any labels, coded in sorted order). Each attribute
array holds one value per sample (ints or strings); ``class`` is always available as target and group.
An optional official test set (``x_test``, ``y_test``, ``attributes_test``) is used as is; otherwise
the study splits the data, stratified by target and group. Everything is checked when registered
(``register_arrays``'s docstring lists the rules; ``array_checks`` applies them).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from prunefair.data.array_checks import as_input_tensor, as_values, check_names, code_values
from prunefair.data.attributes import Attribute, select_attribute
from prunefair.data.base import GroupedData
from prunefair.data.registry import BUILTIN_DATASETS, DatasetInfo, register_dataset


def _raw_columns(x: torch.Tensor, y, attributes: dict | None, *, suffix: str) -> dict[str, np.ndarray]:
    """'class' and each attribute (keys lower-cased) as 1-d arrays of len(x); ``suffix`` is '' or '_test'."""
    n = len(x)
    cols = {"class": as_values(y, arg=f"y{suffix}", n=n)}
    for k, v in (attributes or {}).items():
        key = str(k).lower()
        if key == "class":
            raise ValueError(f"attributes{suffix}[{k!r}]: 'class' is y's name; call the attribute something else")
        if key in cols:
            raise ValueError(f"attributes{suffix}: {k!r} and another key differ only in case")
        cols[key] = as_values(v, arg=f"attributes{suffix}[{k!r}]", n=n)
    return cols


def _code(columns: list[dict[str, np.ndarray]], names: dict | None) -> dict[str, Attribute]:
    """Each column coded over all parts together (train then test: they share one coding)."""
    names = {str(k).lower(): v for k, v in (names or {}).items()}
    unknown = sorted(set(names) - set(columns[0]))
    if unknown:
        raise ValueError(f"names: {unknown} name no column; allowed: {', '.join(columns[0])}")
    out: dict[str, Attribute] = {}
    for key in columns[0]:
        arr = np.concatenate([c[key] for c in columns])
        out[key] = code_values(arr, check_names(arr, names[key], arg=key) if key in names else None)
    present = np.unique(out["class"].codes[out["class"].codes >= 0])
    if len(present) < 2:
        raise ValueError(f"y: {len(present)} class(es) ({[out['class'].names[i] for i in present]}); "
                         "a classifier needs at least two")
    return out


def _grouped(xs: list[torch.Tensor], attrs: dict[str, Attribute], *, target, group, mean, std,
             info, token_ids: bool = False) -> list[GroupedData]:
    """One GroupedData per part of ``xs`` (``attrs`` covers them all, in order): the target and group, an
    intersection included, are formed over all parts, so that train and test share their names."""
    ya = select_attribute(attrs, target, key="target")
    ga = select_attribute(attrs, group, key="group")
    known = (ya.codes >= 0) & (ga.codes >= 0)
    x0 = xs[0]
    if x0.dtype == torch.uint8 and x0.dim() == 4 and mean is None:
        mean, std = (0.5,) * x0.shape[1], (0.5,) * x0.shape[1]
    out, start = [], 0
    for x in xs:
        k = known[start:start + len(x)]
        keep = torch.from_numpy(np.flatnonzero(k))
        out.append(GroupedData(x[keep], torch.from_numpy(ya.codes[start:start + len(x)][k]),
                               torch.from_numpy(ga.codes[start:start + len(x)][k]), ya.names, ga.names,
                               mean=mean, std=std, info={"dataset": "arrays",
                                                         "dropped_unknown_attribute": int((~k).sum()),
                                                         **(info or {})}, token_ids=token_ids))
        start += len(x)
    return out


def grouped_from_arrays(x, y, *, attributes: dict | None = None, names: dict | None = None, target="class",
                        group="class", mean=None, std=None, info: dict | None = None,
                        token_ids: bool = False) -> GroupedData:
    """One GroupedData from arrays, checked and coded as ``register_arrays`` does."""
    _check_token_ids(token_ids, mean, std)
    xt = as_input_tensor(x, arg="x", token_ids=token_ids)
    mean, std = _normaliser(xt, x, mean, std)
    attrs = _code([_raw_columns(xt, y, attributes, suffix="")], names)
    return _grouped([xt], attrs, target=target, group=group, mean=mean, std=std, info=info,
                    token_ids=token_ids)[0]


def _check_token_ids(token_ids, mean, std) -> None:
    if not isinstance(token_ids, bool):
        raise TypeError(f"token_ids: True or False, got {token_ids!r}")
    if token_ids and (mean is not None or std is not None):
        raise ValueError("mean/std normalise images; token ids (token_ids=True) are passed to the model as they are")


def _normaliser(x: torch.Tensor, given, mean, std) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """``mean``/``std`` checked and made tuples of floats: they normalise uint8 (N, C, H, W) images, one number per
    channel (or one for all), both given or neither (0.5 each). ``given``: ``x`` as the caller gave it (for the
    message)."""
    if mean is None and std is None:
        return None, None
    if x.dtype != torch.uint8 or x.dim() != 4:
        what = "(N, F) features" if x.dim() == 2 else f"{getattr(given, 'dtype', x.dtype)} images"
        raise ValueError(f"register_arrays: mean/std normalise uint8 (N, C, H, W) images; x holds {what}, used as "
                         "given: leave mean and std out")
    if mean is None or std is None:
        raise ValueError("register_arrays: give mean and std together (or neither: 0.5 per channel)")
    channels, out = x.shape[1], []
    for arg, v in (("mean", mean), ("std", std)):
        values = np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v)
        if values.dtype.kind not in "iuf":
            raise ValueError(f"register_arrays: {arg} = {v!r}: numbers, one per channel")
        values = values.astype(float).reshape(-1)
        if len(values) == 1:
            values = np.repeat(values, channels)
        if len(values) != channels:
            raise ValueError(f"register_arrays: {arg} has {len(values)} value(s) for {channels} channel(s); give "
                             "one per channel (or one for all)")
        if not np.isfinite(values).all() or (arg == "std" and (values <= 0).any()):
            raise ValueError(f"register_arrays: {arg} = {values.tolist()}: finite numbers"
                             f"{', each > 0' if arg == 'std' else ''}")
        out.append(tuple(values.tolist()))
    return out[0], out[1]


def register_arrays(name: str, x, y, *, attributes: dict | None = None, names: dict | None = None,
                    x_test=None, y_test=None, attributes_test: dict | None = None, mean=None, std=None,
                    description: str = "", overwrite: bool = False, token_ids: bool = False) -> None:
    """Make in-memory arrays a dataset a study can name (``data.dataset = name``). Checked here, not at load.

    Inputs ``x`` (numpy array or torch tensor):
      - ``(N, F)`` features (tabular), or ``(N, C, H, W)`` images, channels first; 1-d and 3-d are refused
        (one grey channel: ``x[:, None]``), and so is channels-last ``(N, H, W, C)``.
      - uint8 images are 0..255, scaled by 1/255 then normalised with ``mean``/``std``, one number per channel
        (default 0.5, 0.5; checked here). Everything else is used as given (float32; other numeric dtypes, uint8
        (N, F) features included, are converted) and must be finite: NaN or inf is refused, naming the first
        sample.
      - ``token_ids=True``: ``x`` (and ``x_test``) hold (N, L) integer token ids >= 0 for a model that embeds them
        (``nn.Embedding``); they are kept int64 and passed to the model as they are (no ``mean``/``std``).
    Labels ``y`` and each ``attributes[key]``: one value per sample (1-d, N long; one-hot ``y`` is refused).
      - Without ``names``: the distinct values, sorted (numbers by value), are coded 0..K-1 and named by their
        string form. Integer labels 0..C-1 keep their ids; 1..C (or any other integers) become 0..C-1 in
        sorted order, named "1".."C", never an empty extra class. Strings are coded alike ("" and None are
        unknown: such a sample is dropped when that column is the target or part of the group).
      - ``names = {"class": [...], key: [...]}``: for integer values, the name of each code 0..len-1 (-1 =
        unknown); every value must have a name. For other values, their order; every value must be listed.
    ``class`` is always a target and a group (the attribute keys, lower-cased, are the others; an attribute
    may not be called ``class``).
    Official test set: ``x_test`` and ``y_test`` together, with ``attributes_test`` holding the same keys as
    ``attributes`` (required when ``attributes`` is given); ``x_test`` has ``x``'s per-sample shape. Train and
    test values are coded together, so they share class and group names. Without a test set the study splits
    the data, stratified by target and group.
    The built-in names (digits, utkface, cifar10, svhn, folder) are refused unless ``overwrite=True``; a name
    you registered before is replaced. Registered arrays live in this process only (``run.workers = 1``).
    """
    if name in BUILTIN_DATASETS and not overwrite:
        raise ValueError(f"register_arrays: {name!r} is a built-in dataset; choose another name "
                         "(or pass overwrite=True to replace it in this process)")
    if (x_test is None) != (y_test is None):
        raise ValueError("register_arrays: give both x_test and y_test, or neither")
    for arg, value in (("attributes", attributes), ("names", names), ("attributes_test", attributes_test)):
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"register_arrays: {arg} is a dict (attribute name -> one value per sample), got a "
                            f"{type(value).__name__}")
    if x_test is None and attributes_test is not None:
        raise ValueError("register_arrays: attributes_test given without x_test and y_test")
    _check_token_ids(token_ids, mean, std)
    xt = as_input_tensor(x, arg="x", token_ids=token_ids)
    mean, std = _normaliser(xt, x, mean, std)
    parts = [_raw_columns(xt, y, attributes, suffix="")]
    xs = [xt]
    if x_test is not None:
        keys, keys_test = sorted(str(k).lower() for k in attributes or {}), sorted(
            str(k).lower() for k in attributes_test or {})
        if keys != keys_test:
            raise ValueError(f"register_arrays: attributes has keys {keys} but attributes_test has {keys_test}; "
                             "give the test set the same attributes")
        xs.append(as_input_tensor(x_test, arg="x_test", token_ids=token_ids))
        if xs[1].shape[1:] != xt.shape[1:] or xs[1].dtype != xt.dtype:
            raise ValueError(f"register_arrays: x_test has samples of shape {tuple(xs[1].shape[1:])} "
                             f"({xs[1].dtype}), x {tuple(xt.shape[1:])} ({xt.dtype}); they must match")
        parts.append(_raw_columns(xs[1], y_test, attributes_test, suffix="_test"))
    coded = _code(parts, names)
    attr_names = tuple(k for k in parts[0] if k != "class")

    def loader(*, root=None, target="class", group="class", image_size=None, options=None):
        kw = dict(target=target, group=group, mean=mean, std=std, info={"dataset": name}, token_ids=token_ids)
        made = _grouped(xs, coded, **kw)
        if len(made) == 1:
            return {"all": made[0]}
        return {"train": made[0], "test": made[1]}

    register_dataset(DatasetInfo(name, loader, targets=("class", *sorted(attr_names)),
                                 groups=("class", *sorted(attr_names)), needs_root=False,
                                 description=description or f"in-memory arrays ({len(xt)} samples)", in_memory=True))
