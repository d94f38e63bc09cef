"""A researcher's own image folder, built from real UTKFace JPEGs (grey, RGBA, other sizes, unicode names, extra
CSV columns, rows with a missing value): groups, splits, resampling and the decode-once cache checked against
independent computations (pandas counts, a plain Pillow decode)."""

from __future__ import annotations

import math
import os
import shutil

import numpy as np
import pytest
import torch

from prunefair.data import load_dataset
from prunefair.data.images import clear_memory_cache, load_images

RACES = ("White", "Black", "Asian", "Indian", "Others")


@pytest.fixture(scope="module")
def faces(shared_data, tmp_path_factory):
    """(root, pandas table of the CSV): 90 UTKFace files, every sixth of each kind."""
    import pandas as pd
    from PIL import Image

    src = shared_data / "utkface"
    names = sorted(f for f in os.listdir(src) if f.endswith(".jpg.chip.jpg") and len(f.split("_")) == 4)
    picked = [names[i] for i in np.random.default_rng(0).choice(len(names), 90, replace=False)]
    root = tmp_path_factory.mktemp("faces")
    (root / "sub").mkdir()
    rows = []
    for i, f in enumerate(picked):
        age, _, race, _ = f.split("_")
        band = "young" if int(age) < 30 else "mid" if int(age) < 60 else "old"
        im = Image.open(src / f)
        kind = i % 5
        if kind == 0:
            name = f"sub/img_{i}.jpg"
            shutil.copy(src / f, root / name)
        elif kind == 1:
            name = f"gris_é_{i}.png"
            im.convert("L").save(root / name)
        elif kind == 2:
            name = f"rgba_{i}.png"
            rgba = im.convert("RGBA")
            rgba.putalpha(180)
            rgba.save(root / name)
        elif kind == 3:
            name = f"big_{i}.jpg"
            im.resize((80, 70)).save(root / name, quality=95)
        else:
            name = f"日本 {i}.jpg"
            shutil.copy(src / f, root / name)
        rows.append({"file": name, "Ethnicity": RACES[int(race)], "AgeBand": band, "notes": f"n{i}", "score": i / 7})
    table = pd.DataFrame(rows)
    table.loc[3, "Ethnicity"] = ""  # a missing value: that row is dropped
    table.to_csv(root / "attributes.csv", index=False)
    return root, table


def _load(root, **kw):
    kw.setdefault("split_seed", 0)
    return load_dataset("folder", root=str(root), target="ethnicity", group="ethnicity*ageband", image_size=24,
                        options={"workers": 1}, **kw)


def test_groups_and_every_stratums_split_match_pandas_counts(faces):
    root, table = faces
    splits = _load(root)
    known = table[table.Ethnicity != ""]
    want = (known.Ethnicity + "/" + known.AgeBand).value_counts()
    assert list(splits.train.group_names) == sorted(want.index, key=lambda n: (n.split("/")[0], n.split("/")[1]))
    total = sum(splits.split(s).group_counts() for s in ("train", "val", "test"))
    assert dict(zip(splits.train.group_names, total.tolist())) == want.to_dict()
    # each (target, group) stratum: round(0.7 n) train, round(0.8 n) - round(0.7 n) val, the rest test
    for (target, band), n in known.groupby(["Ethnicity", "AgeBand"]).size().items():
        y, g = splits.train.class_names.index(target), splits.train.group_names.index(f"{target}/{band}")
        got = [int(((d.y == y) & (d.g == g)).sum()) for d in (splits.train, splits.val, splits.test)]
        train, val = round(0.7 * n), round(0.8 * n) - round(0.7 * n)
        assert got == [train, val, n - train - val], (target, band)


def test_splits_are_disjoint_and_seeded(faces):
    root, _ = faces
    a, again, other = _load(root), _load(root), _load(root, split_seed=1)

    def rows(d):
        return {d.x[i].numpy().tobytes() for i in range(len(d))}

    parts = [rows(a.split(s)) for s in ("train", "val", "test")]
    assert sum(map(len, parts)) == 89 and len(set().union(*parts)) == 89  # no image in two splits
    assert all(torch.equal(a.split(s).x, again.split(s).x) for s in ("train", "val", "test"))
    assert not torch.equal(a.test.x, other.test.x) and len(a.test) == len(other.test)


@pytest.mark.parametrize("group, factor", [("White/young", 3), ("Black/mid", 2.5), ("White/mid", 0.5),
                                           ("Black/old", 1)])
def test_resampling_one_group_matches_its_closed_form_count(faces, group, factor):
    root, _ = faces
    base, resampled = _load(root), _load(root, resample={"group": group, "factor": factor})
    gid = base.train.group_names.index(group)
    n = int(base.train.group_counts()[gid])
    whole = math.floor(factor)
    want = whole * n + round((factor - whole) * n)
    counts, before = resampled.train.group_counts(), base.train.group_counts()
    assert counts[gid] == max(want, 1 if n else 0)
    assert np.array_equal(np.delete(counts, gid), np.delete(before, gid))
    assert torch.equal(resampled.val.x, base.val.x) and torch.equal(resampled.test.x, base.test.x)


def test_cached_pixels_are_a_plain_pillow_decode_and_a_changed_file_is_decoded_again(faces, tmp_path):
    from PIL import Image

    root, table = faces
    paths = [str(root / f) for f in table.file]
    cache = tmp_path / "cache"
    decoded = load_images(paths, size=24, cache_dir=cache, workers=1)
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 3 and all(f.startswith("images-") and f.endswith(".npy") for f in files)
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            if im.mode == "RGBA":  # composited on black, as the docs say
                im = Image.alpha_composite(Image.new("RGBA", im.size, (0, 0, 0, 255)), im)
            im = im.convert("RGB")
            if im.size != (24, 24):
                im = im.resize((24, 24), Image.BILINEAR)
            assert torch.equal(decoded.x[i], torch.from_numpy(np.array(im)).permute(2, 0, 1)), p
    clear_memory_cache()
    assert torch.equal(load_images(paths, size=24, cache_dir=cache, workers=1).x, decoded.x)  # from the disk
    changed = tmp_path / "changed"
    shutil.copytree(root, changed)
    moved = [str(changed / f) for f in table.file]
    first = load_images(moved, size=24, cache_dir=cache, workers=1)
    Image.new("RGB", (64, 64), (255, 0, 0)).save(moved[0])
    clear_memory_cache()
    again = load_images(moved, size=24, cache_dir=cache, workers=1)
    assert torch.equal(again.x[1:], first.x[1:])
    assert again.x[0, 0].min() >= 250 and again.x[0, 1:].max() <= 5  # the new red image, not the cached face
