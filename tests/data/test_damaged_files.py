"""Damaged dataset files a careless or unlucky user may point a study at: every one is an error naming the file and
what is wrong with it, never a silently shifted label or a message without the file."""

import pickle

import numpy as np
import pytest

from prunefair.data import load_dataset
from tests.data.test_cifar_svhn import _write_cifar_batches


def _edit_batch(path, edit):
    with open(path, "rb") as f:
        batch = pickle.load(f)
    edit(batch)
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def test_a_cifar_batch_with_fewer_labels_than_images_is_refused_naming_it(tmp_path):
    """Three labels lost from data_batch_2: the loader used to cut the images to the labels, so every image after
    the gap took another image's label, silently."""
    _write_cifar_batches(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    _edit_batch(batch, lambda b: b.__setitem__(b"labels", b[b"labels"][:-3]))
    with pytest.raises(ValueError, match=rf"{batch}: 20 images but 17 labels; the batch is damaged"):
        load_dataset("cifar10", root=str(tmp_path))


def test_a_cifar_label_out_of_range_names_the_batch_and_the_image(tmp_path):
    _write_cifar_batches(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    _edit_batch(batch, lambda b: b[b"labels"].__setitem__(4, 12))
    with pytest.raises(ValueError, match=rf"{batch}: label 12 of image 4 is outside 0..9"):
        load_dataset("cifar10", root=str(tmp_path))


def test_a_damaged_cifar_meta_file_is_named(tmp_path):
    _write_cifar_batches(tmp_path)
    meta = tmp_path / "cifar-10-batches-py" / "batches.meta"
    with open(meta, "wb") as f:
        pickle.dump({b"label_names": [b"cat", b"dog"]}, f, protocol=2)
    with pytest.raises(ValueError, match=rf"{meta}: label_names holds 2 name\(s\)"):
        load_dataset("cifar10", root=str(tmp_path))


def test_whole_cifar_batches_keep_each_label_with_its_image(tmp_path):
    written = _write_cifar_batches(tmp_path)
    s = load_dataset("cifar10", root=str(tmp_path), val_fraction=0.1)
    train_labels = np.concatenate([written[f"data_batch_{i}"][1] for i in range(1, 6)])
    assert sorted((s.train.y.tolist() + s.val.y.tolist())) == sorted(train_labels.tolist())


# -- UTKFace folders as a user may hand them over (real files of the shared copy) --------------------------------
PREFIXES = ("10_0_0_", "26_1_0_", "30_0_1_", "45_1_2_")  # two genders, three ethnicities


def _real_utkface(folder, shared_data):
    """Four real files of the shared copy (the first name of each prefix) in ``folder``."""
    import shutil

    names = sorted(p.name for p in (shared_data / "utkface").iterdir())
    folder.mkdir(parents=True)
    for prefix in PREFIXES:
        name = next(n for n in names if n.startswith(prefix) and n.endswith(".jpg.chip.jpg"))
        shutil.copy(shared_data / "utkface" / name, folder / name)
    return folder


def test_utkface_names_of_another_release_are_refused_saying_so(tmp_path, shared_data):
    """Every name a plain '.jpg' (the in-the-wild release's form): one error naming the pattern and a file, not an
    empty split after a warning."""
    root = _real_utkface(tmp_path / "utk", shared_data)
    first = sorted(f.name for f in root.iterdir())[0]
    for f in root.iterdir():
        f.rename(root / f.name.removesuffix(".chip.jpg"))
    with pytest.raises(ValueError, match=r"none of the 4 \*\.jpg file name\(s\) parses as UTKFace's .*"
                                         rf"e\.g\. '{first.removesuffix('.chip.jpg')}' \(names ending in a plain '\.jpg'"):
        load_dataset("utkface", root=str(root), target="gender", group="gender")


def test_utkface_archive_extracted_one_level_up_names_the_subfolder(tmp_path, shared_data):
    _real_utkface(tmp_path / "download" / "UTKFace", shared_data)
    with pytest.raises(FileNotFoundError, match=r"its subfolder UTKFace holds 4 \*\.jpg\.chip\.jpg file\(s\): set "
                                                rf"data\.root = '{tmp_path / 'download' / 'UTKFace'}'"):
        load_dataset("utkface", root=str(tmp_path / "download"), target="gender", group="gender")


def test_a_utkface_link_to_nothing_is_a_missing_image_not_ignored(tmp_path, shared_data):
    root = _real_utkface(tmp_path / "utk", shared_data)
    dangling = root / "41_0_0_20170101000000000.jpg.chip.jpg"
    dangling.symlink_to(tmp_path / "gone.jpg")
    with pytest.raises(ValueError, match=rf"{dangling}: cannot decode image \(FileNotFoundError"):
        load_dataset("utkface", root=str(root), target="gender", group="gender", options={"workers": 1})
    s = load_dataset("utkface", root=str(root), target="gender", group="gender", val_fraction=0.0, test_fraction=0.4,
                     options={"workers": 1, "skip_unreadable": True})
    assert s.describe()["skipped_unreadable"] == 1


def test_csv_columns_that_differ_only_in_case_are_refused_naming_both(tmp_path):
    """'Label' and 'label' both became the column 'label', and picking it crashed with a pandas AttributeError."""
    from tests.data.conftest import write_jpeg

    for i in range(8):
        write_jpeg(tmp_path / f"img{i}.jpg", seed=i)
    rows = "\n".join(f"img{i}.jpg,{i % 2},{i % 2},{i // 4}" for i in range(8))
    csv = tmp_path / "attributes.csv"
    csv.write_text(f"file,Label,label ,sex\n{rows}\n")
    with pytest.raises(ValueError, match=rf"{csv}: columns 'Label' and 'label ' are one name"):
        load_dataset("folder", root=str(tmp_path), target="label", group="sex")


def test_a_folder_that_cannot_be_listed_is_named_without_errno(tmp_path, monkeypatch, shared_data):
    """chmod 000 on the UTKFace folder or a CIFAR-10 class folder (simulated: the tests may run as root)."""
    import errno
    from pathlib import Path

    from tests.data.conftest import write_jpeg

    utk = _real_utkface(tmp_path / "utk", shared_data)
    for split in ("train", "test"):
        for c in ("cat", "dog"):
            write_jpeg(tmp_path / "cifar" / split / c / "0.png", seed=1)
    locked = {utk, tmp_path / "cifar" / "train" / "dog"}
    iterdir = Path.iterdir

    def guarded(self):
        if self in locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return iterdir(self)

    monkeypatch.setattr(Path, "iterdir", guarded)
    with pytest.raises(PermissionError) as err:
        load_dataset("utkface", root=str(utk), target="gender", group="gender")
    assert str(err.value) == f"data.root = '{utk}': cannot list the UTKFace folder (Permission denied); make it readable"
    with pytest.raises(PermissionError) as err:
        load_dataset("cifar10", root=str(tmp_path / "cifar"))
    assert str(err.value) == f"{tmp_path / 'cifar' / 'train' / 'dog'}: cannot list the folder (Permission denied); " \
                             "make it readable"


def test_hidden_folders_beside_the_cifar_class_folders_are_no_classes(tmp_path, shared_data):
    """A notebook's .ipynb_checkpoints in train/ and test/ became an eleventh class, first in sorted order, so every
    CIFAR-10 class took another id than the official one."""
    import shutil

    from prunefair.data.cifar10 import CLASSES

    for split in ("train", "test"):
        for c in CLASSES:
            src = shared_data / "cifar10" / split / c
            for f in sorted(src.iterdir())[:3]:
                (tmp_path / split / c).mkdir(parents=True, exist_ok=True)
                shutil.copy(f, tmp_path / split / c / f.name)
        (tmp_path / split / ".ipynb_checkpoints").mkdir()
    s = load_dataset("cifar10", root=str(tmp_path), val_fraction=0.0, options={"workers": 1})
    assert s.train.class_names == CLASSES and len(s.train) == 30 and len(s.test) == 30
