import os
import pickle

import numpy as np
import pytest
import torch

from prunefair.data import load_dataset
from prunefair.data.cifar10 import CLASSES, read_batch
from prunefair.data.svhn import read_mat


def _write_cifar_batches(root, n_per_batch=20, seed=0):
    """Files in the official cifar-10-batches-py format: pickled dicts with bytes keys, data (N, 3072) uint8."""
    rng = np.random.default_rng(seed)
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.permutation(np.arange(n_per_batch) % 10)]
        with open(base / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [f"{i}.png".encode() for i in range(n_per_batch)]}, f, protocol=2)
        written[name] = (data, labels)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072,
                     b"num_cases_per_batch": n_per_batch}, f, protocol=2)
    return written


def test_cifar_pickle_layout(tmp_path):
    written = _write_cifar_batches(tmp_path)
    s = load_dataset("cifar10", root=str(tmp_path), val_fraction=0.1)
    assert len(s.train) + len(s.val) == 100 and len(s.test) == 20
    assert s.train.class_names == CLASSES and s.describe()["layout"] == "pickle"
    data, labels = written["test_batch"]
    # pixel (c, h, w) of the official row layout: 1024 red, then green, then blue, row-major
    assert torch.equal(s.test.x[3], torch.from_numpy(data[3].reshape(3, 32, 32)))
    assert s.test.y.tolist() == labels
    # root may also be the batches folder itself
    assert len(load_dataset("cifar10", root=str(tmp_path / "cifar-10-batches-py")).test) == 20


def test_cifar_pickle_refuses_arbitrary_objects(tmp_path):
    _write_cifar_batches(tmp_path)
    evil = tmp_path / "cifar-10-batches-py" / "test_batch"
    with open(evil, "wb") as f:
        pickle.dump({b"data": os.system, b"labels": []}, f, protocol=2)
    with pytest.raises(ValueError, match="test_batch: not a CIFAR python batch"):
        read_batch(evil)


def test_cifar_missing_layout_names_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        load_dataset("cifar10", root=str(tmp_path))


def test_cifar_real_image_folder_subset(shared_data):
    s = load_dataset("cifar10", root=str(shared_data / "cifar10"), options={"limit": 300}, val_fraction=0.1)
    assert s.train.class_names == CLASSES and s.describe()["layout"] == "folder"
    assert len(s.train) + len(s.val) == 300 and len(s.test) == 300
    assert (s.test.group_counts() == 30).all()  # official classes are balanced: 30 of each
    assert s.test.x.shape[1:] == (3, 32, 32) and s.test.x.dtype == torch.uint8
    assert torch.equal(s.test.y, s.test.g)
    # the folder counts of the official split (listing only, no decoding)
    for split, n in (("train", 5000), ("test", 1000)):
        for c in CLASSES:
            assert len(os.listdir(shared_data / "cifar10" / split / c)) == n


def _write_svhn(path, n, seed):
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).reshape(n, 1).astype(np.uint8)  # 1..10, 10 = digit 0
    savemat(path, {"X": x, "y": y})
    return x, y


def test_svhn_official_mat_format(tmp_path):
    xtr, ytr = _write_svhn(tmp_path / "train_32x32.mat", 50, 0)
    xte, yte = _write_svhn(tmp_path / "test_32x32.mat", 30, 1)
    x, y = read_mat(tmp_path / "test_32x32.mat")
    assert x.shape == (30, 3, 32, 32) and y.tolist() == [int(v) % 10 for v in yte.ravel()]
    assert y[9] == 0  # label 10 is the digit 0
    assert np.array_equal(x[7, 2], xte[:, :, 2, 7])  # channel 2 of image 7
    s = load_dataset("svhn", root=str(tmp_path), val_fraction=0.2)
    assert len(s.train) + len(s.val) == 50 and len(s.test) == 30
    assert s.train.class_names == tuple("0123456789")
    assert (s.test.group_counts() == 3).all()


def test_svhn_bad_files_name_the_file(tmp_path):
    from scipy.io import savemat

    with pytest.raises(FileNotFoundError, match="train_32x32.mat"):
        load_dataset("svhn", root=str(tmp_path))
    savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[0], [11]])})
    with pytest.raises(ValueError, match="train_32x32.mat: labels must be 1..10"):
        read_mat(tmp_path / "train_32x32.mat")
    (tmp_path / "test_32x32.mat").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="test_32x32.mat: not a readable MATLAB file"):
        read_mat(tmp_path / "test_32x32.mat")
