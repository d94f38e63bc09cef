"""scikit-learn's bundled digits (1,797 8x8 images, 10 classes): the embedded default dataset.

Groups are the classes, as in the paper's experiments (A = Y).
"""

from __future__ import annotations

import numpy as np
import torch

from prunefair.data.base import GroupedData


def load_digits_data() -> GroupedData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy((bunch.data.astype(np.float32) / 16.0 - 0.5) / 0.5).view(-1, 1, 8, 8)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    names = tuple(str(c) for c in range(10))
    return GroupedData(x, y, y.clone(), names, names, info={"source": "sklearn.datasets.load_digits"})
