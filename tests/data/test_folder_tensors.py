import numpy as np
import pytest
import torch

from prunefair.data import ImageReadError, load_dataset, register_arrays, resample_group
from prunefair.data.attributes import bin_ages, categorical, intersect
from tests.data.conftest import write_jpeg


def _folder(tmp_path, n=40):
    root = tmp_path / "imgs"
    rows = ["file,label,sex,site"]
    for i in range(n):
        write_jpeg(root / "a" / f"{i}.png", seed=i, size=8)
        rows.append(f"a/{i}.png,{'cat' if i % 2 else 'dog'},{'f' if i % 4 < 2 else 'm'},{i % 3}")
    (root / "attributes.csv").write_text("\n".join(rows) + "\n")
    return root


def test_folder_csv_with_intersection_groups(tmp_path):
    root = _folder(tmp_path)
    s = load_dataset("folder", root=str(root), target="label", group="sex*site", val_fraction=0.1, test_fraction=0.2)
    assert s.train.class_names == ("cat", "dog")
    assert s.train.group_names == ("f/0", "f/1", "f/2", "m/0", "m/1", "m/2")
    assert sum(len(s.split(k)) for k in ("train", "val", "test")) == 40
    # PNGs are lossless: pixels come back exactly (file a/5.png holds seed 5)
    every = torch.cat([s.split(k).x for k in ("train", "val", "test")])
    expect = torch.from_numpy(write_jpeg(tmp_path / "x.png", seed=5, size=8)).permute(2, 0, 1)
    assert any(torch.equal(e, expect) for e in every)
    s = load_dataset("folder", root=str(root), target="class", group="class")  # class -> the label column
    assert s.train.group_names == ("cat", "dog")


def test_folder_missing_and_corrupt_files(tmp_path):
    root = _folder(tmp_path)
    with open(root / "attributes.csv", "a") as f:
        f.write("a/missing.png,cat,f,0\n")
    with pytest.raises(FileNotFoundError, match="a/missing.png"):
        load_dataset("folder", root=str(root), target="label", group="sex")
    (root / "a" / "3.png").write_bytes(b"\x89PNG broken")
    s = load_dataset("folder", root=str(root), target="label", group="sex", options={"skip_unreadable": True})
    d = s.describe()
    assert d["skipped_missing_file"] == 1 and d["skipped_unreadable"] == 1
    assert sum(d["sizes"].values()) == 39
    (root / "attributes.csv").write_text((root / "attributes.csv").read_text().replace("a/missing.png,cat,f,0\n", ""))
    with pytest.raises(ImageReadError, match="3.png"):
        load_dataset("folder", root=str(root), target="label", group="sex")
    with pytest.raises(ValueError, match="data.group = 'age'.*allowed: label, sex, site"):
        load_dataset("folder", root=str(root), target="label", group="age")


def test_register_arrays_from_python():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 3, 8, 8), dtype=np.uint8)
    y = np.arange(60) % 3
    register_arrays("test_arrays", x, y, attributes={"sex": np.where(np.arange(60) % 2, "f", "m")},
                    names={"class": ["a", "b", "c"]})
    s = load_dataset("test_arrays", target="class", group="class*sex", val_fraction=0.1, test_fraction=0.2)
    assert s.train.class_names == ("a", "b", "c")
    assert s.train.group_names == ("a/f", "a/m", "b/f", "b/m", "c/f", "c/m")
    assert sum(len(s.split(k)) for k in ("train", "val", "test")) == 60
    assert s.train.x.dtype == torch.uint8 and s.train.mean == (0.5, 0.5, 0.5)


def test_attribute_helpers():
    a = bin_ages(np.array([0, 2, 3, 9, 10, 69, 70, 116]), [0, 3, 10, 20, 30, 40, 50, 60, 70])
    assert a.codes.tolist() == [0, 0, 1, 1, 2, 7, 8, 8] and a.names[0] == "0-2" and a.names[-1] == "70+"
    c = categorical(["10", "9", "", "x"])
    assert c.names == ("9", "10", "x") and c.codes.tolist() == [1, 0, -1, 2]
    both = intersect([categorical(["u", "v", "u", "v"]), categorical(["p", "p", "q", ""])])
    assert both.names == ("u/p", "u/q", "v/p") and both.codes.tolist() == [0, 2, 1, -1]


def test_resample_group_counts_exactly():
    x = torch.arange(100).view(100, 1).float()
    g = torch.tensor([0] * 70 + [1] * 30)
    from prunefair.data import GroupedData

    d = GroupedData(x, g.clone(), g, ("a", "b"), ("a", "b"))
    up = resample_group(d, group="b", factor=5, seed=0)
    assert up.group_counts().tolist() == [70, 150] and up.info["resample"]["after"] == 150
    frac = resample_group(d, group="b", factor=2.5, seed=0)
    assert frac.group_counts().tolist() == [70, 75]
    ids = frac.x[frac.g == 1].flatten().long().bincount(minlength=100)[70:]
    assert sorted(ids.tolist()) == [2] * 15 + [3] * 15  # every member twice, a random half once more
    down = resample_group(d, group="a", factor=0.1, seed=0)
    assert down.group_counts().tolist() == [7, 30]
    with pytest.raises(ValueError, match="data.resample.group = 'c'.*allowed: a, b"):
        resample_group(d, group="c", factor=2)


def test_resample_applies_to_train_only():
    base = load_dataset("digits", split_seed=0)
    s = load_dataset("digits", split_seed=0, resample={"group": "3", "factor": 5})
    assert s.train.group_counts()[3] == 5 * base.train.group_counts()[3]
    assert np.array_equal(s.test.group_counts(), base.test.group_counts())
    assert s.describe()["resample"] == {"group": "3", "factor": 5.0, "before": int(base.train.group_counts()[3]),
                                        "after": int(5 * base.train.group_counts()[3])}


def test_folder_with_every_image_unreadable_is_an_error_not_an_empty_study(tmp_path, caplog):
    root = _folder(tmp_path, n=6)
    for i in range(6):
        (root / "a" / f"{i}.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"dataset 'folder' in .*: no samples left in the train and test split"):
        load_dataset("folder", root=str(root), target="label", group="sex", options={"skip_unreadable": True})



def test_a_folder_too_small_to_split_says_so_not_that_every_file_was_skipped(tmp_path):
    root = _folder(tmp_path, n=4)  # 4 readable images in 4 (label, sex) strata: one each, all to train
    with pytest.raises(ValueError, match=r"no samples left in the test split\(s\) \(sizes: train 4, val 0, test 0\); "
                                         r"4 sample\(s\) in all are too few to split by data.test_fraction = 0.2") as e:
        load_dataset("folder", root=str(root), target="label", group="sex")
    assert "skipped" not in str(e.value)

def test_skipped_images_are_logged_when_read_from_the_disk_cache_too(tmp_path, caplog):
    import logging

    from prunefair.data.images import clear_memory_cache

    root = _folder(tmp_path)
    (root / "a" / "3.png").write_bytes(b"\x89PNG broken")
    opts = {"skip_unreadable": True, "cache_dir": str(tmp_path / "cache")}
    for _ in range(2):  # decoded, then read from the disk cache
        clear_memory_cache()
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            load_dataset("folder", root=str(root), target="label", group="sex", options=opts)
        assert "skipped 1 unreadable image(s)" in caplog.text


def test_resample_refuses_non_finite_and_huge_factors():
    """inf once ended in an OverflowError and 1e12 in a MemoryError (a 924 TiB index); both are refused, naming the
    key, and a huge factor also the sizes it would make (the split may grow at most 100x)."""
    from prunefair.data import GroupedData

    g = torch.tensor([0] * 70 + [1] * 30)
    d = GroupedData(torch.arange(100).view(100, 1).float(), g.clone(), g, ("a", "b"), ("a", "b"))
    for bad in (float("inf"), float("nan"), -2.0):
        with pytest.raises(ValueError, match=r"data.resample.factor = .*: must be a finite number > 0"):
            resample_group(d, group="b", factor=bad)
    with pytest.raises(ValueError, match=r"data.resample.factor = 1e\+12 would make group 'b' 30000000000000 samples "
                                         r"\(30 now\).*over 100x its 100"):
        resample_group(d, group="b", factor=1e12)
    with pytest.raises(ValueError, match=r"would make group 'b' 9960 samples"):  # 70 + 9960 > 100 * 100
        resample_group(d, group="b", factor=332)
    assert len(resample_group(d, group="b", factor=331)) == 70 + 9930  # exactly 100x: allowed
    with pytest.raises(ValueError, match=r"data.resample.factor = 1e\+12 would make group '3'"):
        load_dataset("digits", resample={"group": "3", "factor": 1e12})


def test_folder_with_one_class_is_refused_when_loaded(tmp_path):
    """One label in the CSV: refused at the load, naming the dataset, root and target (as register_arrays does),
    not by every cell with a 'binary model, one logit' message."""
    root = _folder(tmp_path, n=12)
    csv = root / "attributes.csv"
    csv.write_text(csv.read_text().replace(",dog,", ",cat,"))
    with pytest.raises(ValueError, match=rf"dataset 'folder' in {tmp_path}/imgs: data.target = 'label' has 1 "
                                         r"class\(es\) in the train split \(\['cat'\]\); a classifier needs at least two"):
        load_dataset("folder", root=str(root), target="label", group="sex")
    load_dataset("folder", root=str(root), target="sex", group="label")  # two sexes: fine


def test_one_class_left_in_train_after_filters_is_refused(tmp_path):
    """Two labels in the CSV, but every 'dog' image unreadable and skipped: one class left in train."""
    root = _folder(tmp_path, n=12)
    for i in range(0, 12, 2):  # the even files are the dogs
        (root / "a" / f"{i}.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"data.target = 'label' has 1 class\(es\) in the train split"):
        load_dataset("folder", root=str(root), target="label", group="sex", options={"skip_unreadable": True})


def test_nan_as_text_sorts_the_same_in_every_process():
    """'nan' in a CSV (read as text) once sorted by a NaN key: its order followed the set's hash order, so group ids,
    strata and splits changed with PYTHONHASHSEED."""
    import subprocess
    import sys

    code = ("from prunefair.data.attributes import categorical; "
            "print(categorical(['3', 'nan', '1', '10', '0', '2', '7', '5', 'NaN', 'b', 'a']).names)")
    outs = {subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ, "PYTHONHASHSEED": str(s)},
                           capture_output=True, text=True, check=True).stdout for s in range(4)}
    assert outs == {"('0', '1', '2', '3', '5', '7', '10', 'NaN', 'a', 'b', 'nan')\n"}


def test_a_file_named_by_two_csv_rows_is_said(tmp_path, caplog):
    import logging

    root = _folder(tmp_path, n=40)
    csv = root / "attributes.csv"
    csv.write_text(csv.read_text() + "a/./3.png,dog,f,0\n")  # row 42 names row 5's file again, labelled otherwise
    with caplog.at_level(logging.WARNING, logger="prunefair.data"):
        s = load_dataset("folder", root=str(root), target="label", group="sex")
    assert len(s.train) + len(s.val) + len(s.test) == 41  # still a sample each: as before
    assert "1 file(s) are named by more than one row (e.g. rows 5 and 42 name" in caplog.text, caplog.text
