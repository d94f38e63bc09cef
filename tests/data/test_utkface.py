import hashlib
import shutil
from collections import Counter

import numpy as np
import pytest
import torch

from prunefair.data import ImageReadError, load_dataset
from prunefair.data.utkface import ETHNICITIES, parse_name, scan_folder
from tests.data.conftest import write_jpeg

QUIRKS = {
    "39_1_20170116174525125.jpg.chip.jpg": (39, 1, -1, False),
    "61_1_20170109142408075.jpg.chip.jpg": (61, 1, -1, False),
    "61_1_20170109150557335.jpg.chip.jpg": (61, 1, -1, False),
    "55_0_0_20170116232725357jpg.chip.jpg": (55, 0, 0, True),
    "24_0_1_20170116220224657 .jpg.chip.jpg": (24, 0, 1, True),
}
# two real byte-identical pairs (found by hashing the shared copy); the first pair disagrees on age only
REAL_DUPLICATES = [("103_0_2_20170112213001988.jpg.chip.jpg", "80_0_2_20170111201008732.jpg.chip.jpg"),
                   ("10_0_0_20170110220644705.jpg.chip.jpg", "13_0_0_20170110232519225.jpg.chip.jpg")]


def test_parse_name_handles_every_quirk_on_purpose():
    for name, (age, gender, race, repaired) in QUIRKS.items():
        p = parse_name(name)
        assert (p.age, p.gender, p.race, p.repaired) == (age, gender, race, repaired), name
    assert parse_name("1_0_2_20161219140530307.jpg.chip.jpg").race == 2
    for bad in ("SOURCE.md", "x_0_0_1.jpg.chip.jpg", "1_2_0_1.jpg.chip.jpg", "1_0_7_1.jpg.chip.jpg",
                "1_0_0_1_2.jpg.chip.jpg", "1_0.jpg.chip.jpg",
                "2\u00b2_0_0_20170116174525125.jpg.chip.jpg",  # '2²': isdigit() but not a number int() reads
                "\u0663\u0665_0_0_20170116174525125.jpg.chip.jpg",  # Arabic-Indic 35: not UTKFace's digits
                "999_0_0_20170116174525125.jpg.chip.jpg",  # beyond the dataset's 0-116
                "25_0_3.jpg.chip.jpg"):  # 3 fields whose last is no date: the race or a date? not guessed
        assert parse_name(bad) is None, bad


def _synthetic_folder(tmp_path):
    root = tmp_path / "utk"
    i = 0
    for race in range(5):
        for gender in range(2):
            for k in range(6):
                write_jpeg(root / f"{20 + 10 * k}_{gender}_{race}_2017{i:09d}.jpg.chip.jpg", seed=i)
                i += 1
    for name in QUIRKS:
        write_jpeg(root / name, seed=i)
        i += 1
    write_jpeg(root / "junk_name.jpg", seed=i)
    # a duplicate with the same labels, and one whose copy carries another race
    shutil.copy(root / "20_0_0_2017000000000.jpg.chip.jpg", root / "20_0_0_2018000000000.jpg.chip.jpg")
    shutil.copy(root / "20_1_1_2017000000018.jpg.chip.jpg", root / "20_1_3_2018000000001.jpg.chip.jpg")
    (root / "30_1_4_2019000000000.jpg.chip.jpg").write_bytes(b"this is not a jpeg")
    return root


def test_synthetic_folder_counts_every_quirk(tmp_path):
    root = _synthetic_folder(tmp_path)
    with pytest.raises(ImageReadError, match="30_1_4_2019000000000.jpg.chip.jpg"):
        load_dataset("utkface", root=str(root), target="ethnicity", group="ethnicity")
    s = load_dataset("utkface", root=str(root), target="ethnicity", group="ethnicity*gender",
                     options={"skip_unreadable": True})
    d = s.describe()
    assert d["files_found"] == 60 + 5 + 1 + 2 + 1
    assert d["skipped_unparseable_name"] == 1 and d["names_without_race"] == 3 and d["names_repaired"] == 2
    assert d["dropped_unknown_attribute"] == 3 and d["skipped_unreadable"] == 1
    assert d["duplicate_files"] == 4 and d["duplicate_clusters"] == 2
    assert sum(d["sizes"].values()) == 60 + 2 + 2  # 60 plain + 2 repaired + 2 copies
    assert s.train.group_names[:2] == ("White/male", "White/female") and s.train.num_groups == 10
    assert s.train.class_names == ETHNICITIES
    assert s.train.x.shape[1:] == (3, 48, 48) and s.train.x.dtype == torch.uint8
    again = load_dataset("utkface", root=str(root), target="ethnicity", group="ethnicity*gender",
                         options={"skip_unreadable": True})
    assert torch.equal(again.test.x, s.test.x) and torch.equal(again.train.g, s.train.g)  # same seed, same split


def test_duplicates_stay_on_one_side_or_are_dropped(tmp_path):
    root = _synthetic_folder(tmp_path)
    opts = {"skip_unreadable": True}
    for seed in range(6):
        s = load_dataset("utkface", root=str(root), target="gender", group="gender", split_seed=seed, options=opts)
        sides = [{bytes(x.numpy().tobytes()) for x in split.x} for split in (s.train, s.val, s.test)]
        assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    s = load_dataset("utkface", root=str(root), target="ethnicity", group="ethnicity",
                     options={**opts, "drop_duplicates": True})
    d = s.describe()
    # same-label pair -> one copy kept; the pair that disagrees on race -> both dropped
    assert d["duplicates_dropped"] == 3 and d["duplicate_clusters_conflicting"] == 1
    assert sum(d["sizes"].values()) == 64 - 3


def test_gender_target_keeps_files_without_race_and_age_bins(tmp_path):
    root = _synthetic_folder(tmp_path)
    s = load_dataset("utkface", root=str(root), target="gender", group="age", options={"skip_unreadable": True})
    assert sum(s.describe()["sizes"].values()) == 64 + 3  # the three race-less files count here
    assert s.train.group_names == ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")
    s = load_dataset("utkface", root=str(root), target="race", group="age",
                     options={"skip_unreadable": True, "age_bins": [0, 40, 60]})
    assert s.train.group_names == ("0-39", "40-59", "60+")
    with pytest.raises(ValueError, match="data.group = 'colour'"):
        load_dataset("utkface", root=str(root), target="gender", group="colour")


def test_real_names_match_the_published_counts(shared_data):
    files, parsed, stats = scan_folder(shared_data / "utkface")
    assert stats == {"files_found": 23708, "skipped_unparseable_name": 0, "names_without_race": 3, "names_repaired": 2,
                     "skipped_other_extension": 0}
    assert Counter(p.gender for p in parsed) == {0: 12391, 1: 11317}
    assert Counter(p.race for p in parsed if p.race >= 0) == {0: 10078, 1: 4526, 2: 3434, 3: 3975, 4: 1692}
    assert min(p.age for p in parsed) == 1 and max(p.age for p in parsed) == 116


def test_real_subset_label_distribution(shared_data):
    s = load_dataset("utkface", root=str(shared_data / "utkface"), target="ethnicity", group="gender",
                     options={"limit": 600})
    n = sum(len(s.split(k)) for k in ("train", "val", "test"))
    assert abs(n - 600) <= 10
    counts = sum(np.bincount(s.split(k).y.numpy(), minlength=5) for k in ("train", "val", "test"))
    full = np.array([10078, 4526, 3434, 3975, 1692]) / 23705
    assert np.abs(counts / n - full).max() < 0.01  # stratified subset keeps the proportions
    assert s.train.x.shape[1:] == (3, 48, 48)
    assert len(s.test) / n == pytest.approx(0.2, abs=0.02)


def test_real_quirky_and_duplicate_files(shared_data, tmp_path):
    src = shared_data / "utkface"
    root = tmp_path / "utk"
    root.mkdir()
    names = list(QUIRKS) + [n for pair in REAL_DUPLICATES for n in pair]
    names += sorted(p.name for p in src.glob("2[0-9]_*_*_*.jpg.chip.jpg"))[:40]
    for n in names:
        (root / n).symlink_to(src / n)
    s = load_dataset("utkface", root=str(root), target="ethnicity", group="gender")
    d = s.describe()
    assert d["names_without_race"] == 3 and d["names_repaired"] == 2 and d["dropped_unknown_attribute"] == 3
    digests = Counter(hashlib.sha1((src / n).read_bytes()).hexdigest() for n in names if n not in list(QUIRKS)[:3])
    assert d["duplicate_files"] == sum(c for c in digests.values() if c > 1) == 4
    assert d["duplicate_clusters"] == 2
    s = load_dataset("utkface", root=str(root), target="ethnicity", group="gender", options={"drop_duplicates": True})
    assert s.describe()["duplicates_dropped"] == 2  # labels agree on ethnicity and gender: one copy each kept


@pytest.mark.slow
def test_real_full_folder_duplicates(shared_data, tmp_path):
    src = shared_data / "utkface"
    s = load_dataset("utkface", root=str(src), target="gender", group="gender", image_size=8,
                     options={"cache_dir": str(tmp_path / "cache")})
    d = s.describe()
    assert sum(d["sizes"].values()) == 23708 and d["duplicate_files"] == 765 and d["duplicate_clusters"] == 375
    by_hash: dict[str, list[str]] = {}
    for p in src.glob("*.jpg"):
        by_hash.setdefault(hashlib.sha1(p.read_bytes()).hexdigest(), []).append(p.name)
    assert sum(len(v) for v in by_hash.values() if len(v) > 1) == 765


def test_images_whose_names_do_not_end_in_jpg_are_counted_and_said(tmp_path, caplog):
    """'.JPG' or '.jpeg' files were neither read nor counted."""
    from prunefair.data.utkface import scan_folder
    from tests.data.conftest import write_jpeg

    write_jpeg(tmp_path / "30_1_0_20170109150557335.jpg.chip.jpg", seed=1, size=8)
    write_jpeg(tmp_path / "31_0_1_20170109150557336.JPG", seed=2, size=8)
    write_jpeg(tmp_path / "32_0_2_20170109150557337.jpeg", seed=3, size=8)
    files, _, stats = scan_folder(tmp_path)
    assert len(files) == 1 and stats["skipped_other_extension"] == 2
    assert "2 image file(s) not read: their names do not end in 'jpg'" in caplog.text
