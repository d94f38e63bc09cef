"""CIFAR-10 (Krizhevsky 2009), official split, in either usual layout.

- ``cifar-10-batches-py``: the official python-pickle batches (``data_batch_1..5``, ``test_batch``,
  ``batches.meta``), read with an unpickler that only admits the numpy array constructors (never
  arbitrary objects). ``data.root`` may be that folder or the folder above it.
- a class-folder image layout ``train/<class>/*.jpg`` and ``test/<class>/*.jpg`` (PNG also read).

Target and group are both ``class`` (A = Y, as in the paper). 32x32; ``image_size`` resizes.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from prunefair.data.assemble import LoadOptions, build_grouped, subsample
from prunefair.data.attributes import Attribute
from prunefair.data.base import GroupedData

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a CIFAR batch")


def read_batch(path: str | Path) -> dict:
    """One official CIFAR pickle batch as a dict with str keys."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = _ArrayUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, OSError) as exc:
        raise ValueError(f"{path}: not a CIFAR python batch ({exc})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not a CIFAR python batch (a {type(raw).__name__}, expected a dict)")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}


def _batch_arrays(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) and labels of one batch; labels that do not match the images in number, or
    fall outside 0..num_classes-1, are an error naming the file."""
    b = read_batch(path)
    if "data" not in b or "labels" not in b:
        raise ValueError(f"{path}: CIFAR batch lacks 'data' or 'labels' (keys: {sorted(b)})")
    x = np.asarray(b["data"], dtype=np.uint8)
    if x.ndim != 2 or x.shape[1] != 3072:
        raise ValueError(f"{path}: 'data' has shape {x.shape}, expected (N, 3072)")
    y = np.asarray(b["labels"])
    if y.ndim != 1 or len(y) != len(x):  # else every later image would take the wrong label
        raise ValueError(f"{path}: {len(x)} images but {y.shape[0] if y.ndim else 'no list of'} labels; the batch "
                         "is damaged")
    if len(y) and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{path}: 'labels' are {y.dtype}, expected integers 0..{num_classes - 1}")
    y = y.astype(np.int64)
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if len(bad):
        raise ValueError(f"{path}: label {int(y[bad[0]])} of image {int(bad[0])} is outside 0..{num_classes - 1} "
                         f"({len(bad)} such label(s); {num_classes} class names); the batch is damaged")
    return x.reshape(-1, 3, 32, 32), y


def find_layout(root: str | Path) -> tuple[str, Path]:
    root = Path(root)
    for cand in (root, root / "cifar-10-batches-py"):
        if (cand / "data_batch_1").is_file() and (cand / "test_batch").is_file():
            return "pickle", cand
    if (root / "train").is_dir() and (root / "test").is_dir():
        return "folder", root
    raise FileNotFoundError(
        f"data.root = {str(root)!r}: no CIFAR-10 found; expected cifar-10-batches-py/ (data_batch_1..5, test_batch) "
        "or train/<class>/*.jpg and test/<class>/*.jpg")


def resize_uint8(x: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None or x.shape[-1] == size and x.shape[-2] == size:
        return x
    y = torch.nn.functional.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True,
                                        align_corners=False)
    return y.round_().clamp_(0, 255).to(torch.uint8)


def arrays_to_grouped(x: np.ndarray, y: np.ndarray, names: tuple[str, ...], *, limit, image_size, mean, std,
                      info: dict) -> GroupedData:
    idx = subsample(y, limit)
    xt = resize_uint8(torch.from_numpy(np.ascontiguousarray(x[idx])), image_size)
    yt = torch.from_numpy(y[idx])
    return GroupedData(xt, yt, yt.clone(), names, names, mean=mean, std=std, info=dict(info))


def scan_class_folders(split_dir: Path, known_order: tuple[str, ...] | None = None) -> tuple[list[str], Attribute]:
    """Image files of ``split_dir/<class>/*`` and their class codes (known order if it fits, else sorted); hidden
    folders are skipped."""
    try:
        # hidden folders (.ipynb_checkpoints, .thumbnails, ...) are no classes
        classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not classes:
            raise FileNotFoundError(f"{split_dir}: no class folders")
        if known_order is not None and sorted(known_order) == classes:
            classes = list(known_order)
        files, codes = [], []
        for c, name in enumerate(classes):
            for f in sorted((split_dir / name).iterdir()):
                if f.suffix.lower() in IMAGE_SUFFIXES:
                    files.append(str(f))
                    codes.append(c)
    except PermissionError as exc:  # a folder this user cannot list: named, without Python's "[Errno 13]"
        raise PermissionError(f"{exc.filename}: cannot list the folder ({exc.strerror}); make it readable") from None
    return files, Attribute(np.asarray(codes, dtype=np.int64), tuple(classes))


def _check_class(target: str, group: str) -> None:
    for key, v in (("target", target), ("group", group)):
        if v != "class":
            raise ValueError(f"data.{key} = {v!r}: CIFAR-10 has one attribute; allowed: class")


def load_cifar10(*, root=None, target="class", group="class", image_size=None, options=None) -> dict:
    _check_class(target, group)
    opts = LoadOptions.from_dict(dict(options or {}))
    layout, base = find_layout(root)
    info = {"dataset": "cifar10", "layout": layout, "root": str(base)}
    out = {}
    if layout == "pickle":
        meta = base / "batches.meta"
        names = CLASSES
        if meta.is_file():
            m = read_batch(meta)
            names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in m.get("label_names", CLASSES))
            if len(names) != len(CLASSES) or len(set(names)) != len(names):
                raise ValueError(f"{meta}: label_names holds {len(names)} name(s) {list(names)[:12]}, expected the "
                                 f"{len(CLASSES)} distinct CIFAR-10 classes; the file is damaged")
        for split, files in (("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])):
            missing = [f for f in files if not (base / f).is_file()]
            if missing:
                raise FileNotFoundError(f"{base}: missing CIFAR batch file(s) {missing}")
            parts = [_batch_arrays(base / f, len(names)) for f in files]
            x = np.concatenate([p[0] for p in parts])
            y = np.concatenate([p[1] for p in parts])
            out[split] = arrays_to_grouped(x, y, names, limit=opts.limit, image_size=image_size, mean=MEAN,
                                           std=STD, info=info)
        return out
    for split in ("train", "test"):
        files, cls = scan_class_folders(base / split, CLASSES)
        data, _ = build_grouped(files, cls, cls, image_size=image_size, options=opts, mean=MEAN, std=STD,
                                info=info, dedupe=False)
        out[split] = data
    if out["train"].class_names != out["test"].class_names:
        raise ValueError(f"{base}: train and test have different class folders: "
                         f"{out['train'].class_names} vs {out['test'].class_names}")
    return out
