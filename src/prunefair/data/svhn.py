"""SVHN, the Street View House Numbers (Netzer et al., NIPS workshop 2011), cropped-digit format.

Reads the official ``train_32x32.mat`` and ``test_32x32.mat`` (and ``extra_32x32.mat`` into train when
``data.svhn_extra = true``) with scipy: ``X`` is 32x32x3xN uint8, ``y`` is Nx1 with labels 1..10, where
10 means the digit 0. Classes are the digits "0".."9"; target and group are both ``class``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prunefair.data.assemble import LoadOptions
from prunefair.data.cifar10 import arrays_to_grouped

CLASSES = tuple(str(d) for d in range(10))
MEAN = (0.4377, 0.4438, 0.4728)
STD = (0.1980, 0.2010, 0.1970)


def read_mat(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, 32, 32) uint8 images and (N,) labels 0..9 from one official SVHN .mat file."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SVHN file not found (expected the official train_32x32.mat / test_32x32.mat)")
    try:
        m = loadmat(path)
    except Exception as exc:  # scipy raises ValueError, MatReadError, TypeError, ...
        raise ValueError(f"{path}: not a readable MATLAB file ({type(exc).__name__}: {exc})") from None
    if "X" not in m or "y" not in m:
        raise ValueError(f"{path}: lacks 'X' or 'y' (variables: {sorted(k for k in m if not k.startswith('__'))})")
    x, y = np.asarray(m["X"]), np.asarray(m["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != len(y):
        raise ValueError(f"{path}: 'X' has shape {x.shape}, expected (32, 32, 3, N) with N = {len(y)} labels")
    if x.dtype != np.uint8:
        raise ValueError(f"{path}: 'X' is {x.dtype}, expected uint8")
    y = y.astype(np.int64)
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise ValueError(f"{path}: labels must be 1..10 (10 = digit 0), found {y.min()}..{y.max()}")
    y[y == 10] = 0
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), y


def load_svhn(*, root=None, target="class", group="class", image_size=None, options=None) -> dict:
    for key, v in (("target", target), ("group", group)):
        if v != "class":
            raise ValueError(f"data.{key} = {v!r}: SVHN has one attribute; allowed: class")
    options = dict(options or {})
    limit = LoadOptions.from_dict(options).limit
    root = Path(root)
    info = {"dataset": "svhn", "root": str(root)}
    xtr, ytr = read_mat(root / "train_32x32.mat")
    if options.get("svhn_extra"):
        xe, ye = read_mat(root / "extra_32x32.mat")
        xtr, ytr = np.concatenate([xtr, xe]), np.concatenate([ytr, ye])
        info["extra"] = True
    xte, yte = read_mat(root / "test_32x32.mat")
    kw = dict(limit=limit, image_size=image_size, mean=MEAN, std=STD, info=info)
    return {"train": arrays_to_grouped(xtr, ytr, CLASSES, **kw), "test": arrays_to_grouped(xte, yte, CLASSES, **kw)}
