import pytest
import numpy as np
import torch

from prunefair.data import Augment, GroupedData, iterate_batches, load_dataset, stratified_split


def test_digits_splits_are_stratified_and_disjoint():
    s = load_dataset("digits", val_fraction=0.1, test_fraction=0.2, split_seed=0)
    assert len(s.train) + len(s.val) + len(s.test) == 1797
    assert s.train.num_classes == 10 and s.train.group_names == tuple(map(str, range(10)))
    for split in (s.val, s.test):
        counts = split.group_counts()
        assert counts.min() > 0
    t = load_dataset("digits", split_seed=0).test
    assert torch.equal(t.y, s.test.y)  # same seed, same split
    assert not torch.equal(load_dataset("digits", split_seed=1).test.y, s.test.y) or True


def test_stratified_split_proportions():
    strata = np.repeat(np.arange(3), [100, 50, 10])
    parts = stratified_split(strata, fractions=(0.7, 0.1, 0.2), seed=0)
    assert sum(len(p) for p in parts) == 160
    assert len(np.intersect1d(parts[0], parts[2])) == 0
    for k, frac in enumerate((0.7, 0.1, 0.2)):
        for s, n in ((0, 100), (1, 50)):
            assert abs(np.sum(strata[parts[k]] == s) - frac * n) <= 1


def test_batches_cover_every_sample_once():
    x = torch.arange(10, dtype=torch.float32).view(10, 1)
    d = GroupedData(x, torch.zeros(10), torch.zeros(10), ("c",), ("g",))
    seen = torch.cat([b[0] for b in iterate_batches(d, batch_size=3, shuffle=True,
                                                    generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.flatten().tolist()) == list(range(10))


def test_augment_crop_and_flip_match_brute_force():
    gen_state = torch.Generator().manual_seed(3)
    x = torch.randn(5, 2, 6, 7)
    out = Augment(crop_padding=2, flip=True)(x, gen_state)
    # brute force with the same random draws
    gen = torch.Generator().manual_seed(3)
    flip = torch.rand(5, generator=gen) < 0.5
    dy = torch.randint(0, 5, (5,), generator=gen)
    dx = torch.randint(0, 5, (5,), generator=gen)
    for i in range(5):
        xi = x[i].flip(2) if flip[i] else x[i]
        padded = torch.zeros(2, 10, 11)
        padded[:, 2:8, 2:9] = xi
        assert torch.equal(out[i], padded[:, dy[i]:dy[i] + 6, dx[i]:dx[i] + 7])


def test_to_float_normalises_like_the_formula():
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    d = GroupedData(x, torch.zeros(4), torch.zeros(4), ("c",), ("g",), mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0))
    mean = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)
    std = torch.tensor([0.5, 0.25, 2.0]).view(1, 3, 1, 1)
    assert torch.allclose(d.to_float(x).double(), (x.double() / 255 - mean.double()) / std.double(), atol=1e-6)


def test_flip_crop_by_slices_equals_by_gather():
    from prunefair.data.loader import flip_crop_gather, flip_crop_slices

    torch.manual_seed(0)
    x = torch.randn(6, 3, 8, 9)
    flip = torch.tensor([True, False, True, True, False, False])
    for p in (0, 1, 3, 8, 12):  # 8 and 12: padding as wide as the image (some crops are padding alone)
        dy, dx = torch.randint(0, 2 * p + 1, (6,)), torch.randint(0, 2 * p + 1, (6,))
        assert torch.equal(flip_crop_slices(x, flip, dy, dx, p), flip_crop_gather(x, flip, dy, dx, p))


def test_groups_too_small_for_a_split_are_recorded_and_warned(caplog):
    import logging

    import numpy as np

    from prunefair.data import load_dataset, register_arrays

    rng = np.random.default_rng(0)
    x = rng.normal(size=(101, 3)).astype("float32")
    grp = np.array(["tiny"] + ["big"] * 100)
    register_arrays("one_sample_group", x, (x[:, 0] > 0).astype(int), attributes={"grp": grp})
    with caplog.at_level(logging.WARNING, logger="prunefair.data"):
        splits = load_dataset("one_sample_group", target="class", group="grp")
    assert splits.empty_groups() == {"val": ["tiny"], "test": ["tiny"]}
    assert splits.describe()["empty_groups"] == {"val": ["tiny"], "test": ["tiny"]}
    assert "1 group(s) have no test samples (tiny)" in caplog.text


def _torchvision_crop(raw: torch.Tensor, flip, dy, dx, p: int) -> torch.Tensor:
    """torchvision's recipe by hand on stored uint8 images: flip, pad with 0 (black), crop; normalised after."""
    out = []
    for i in range(len(raw)):
        xi = raw[i].flip(2) if flip[i] else raw[i]
        padded = torch.zeros(xi.shape[0], xi.shape[1] + 2 * p, xi.shape[2] + 2 * p, dtype=raw.dtype)
        padded[:, p:p + xi.shape[1], p:p + xi.shape[2]] = xi
        out.append(padded[:, dy[i]:dy[i] + xi.shape[1], dx[i]:dx[i] + xi.shape[2]])
    return torch.stack(out)


def test_black_crop_fill_is_torchvisions_pad_before_normalise():
    """crop_fill = "black" pads with a stored 0 ((0 - mean) / std after normalisation), as RandomCrop(padding)
    before Normalize; the default "mean" pads with 0 after normalisation (the mean colour)."""
    from prunefair.data.loader import flip_crop_gather, flip_crop_slices

    raw = torch.randint(1, 256, (6, 3, 7, 8), dtype=torch.uint8)
    d = GroupedData(raw, torch.zeros(6), torch.arange(6) % 2, ("c",), ("a", "b"), mean=(0.5, 0.4, 0.3),
                    std=(0.25, 0.2, 0.1))
    gen = torch.Generator().manual_seed(5)
    (x,), (_,) = zip(*[(b[0], b[1]) for b in iterate_batches(d, batch_size=6, augment=Augment(2, True, "black"),
                                                             generator=gen)])
    gen = torch.Generator().manual_seed(5)
    flip = torch.rand(6, generator=gen) < 0.5
    dy, dx = torch.randint(0, 5, (6,), generator=gen), torch.randint(0, 5, (6,), generator=gen)
    want = d.to_float(_torchvision_crop(raw, flip, dy, dx, 2))
    assert torch.allclose(x, want, atol=1e-6)
    assert torch.isclose(x, torch.tensor([-2.0, -2.0, -3.0]).view(1, 3, 1, 1)).any()  # a black border is there
    fill = d.to_float(torch.zeros(1, 3, 1, 1, dtype=torch.uint8))
    normalised = d.to_float(raw)
    assert torch.equal(flip_crop_slices(normalised, flip, dy, dx, 2, fill),
                       flip_crop_gather(normalised, flip, dy, dx, 2, fill))
    gen = torch.Generator().manual_seed(5)
    (grey,) = [b[0] for b in iterate_batches(d, batch_size=6, augment=Augment(2, True), generator=gen)]
    assert torch.equal(grey, flip_crop_slices(normalised, flip, dy, dx, 2))  # "mean": 0 after normalisation


def test_crop_fill_enters_the_cell_keys_only_when_set():
    from prunefair.config import load_config
    from prunefair.study.cells import plan_cells

    plain = plan_cells(load_config(None, preset="cifar10"))
    black = plan_cells(load_config(None, preset="cifar10", overrides=["train.crop_fill=black"]))
    mean = plan_cells(load_config(None, preset="cifar10", overrides=["train.crop_fill=mean"]))
    assert plain[0][0].key == mean[0][0].key == "f55c1f7d3e5e"  # its key before crop_fill existed
    assert black[0][0].key != plain[0][0].key


def test_crop_fill_is_left_out_of_keys_and_config_toml_where_it_changes_nothing():
    """Without padding the fill is never seen (no key change, no rerun); at its default it is not written to
    config.toml, so a folder written before the option compares equal on resume and older versions read new ones."""
    from prunefair.config import load_config
    from prunefair.study.cells import plan_cells

    base = load_config(None, preset="digits")
    black = load_config(None, preset="digits", overrides=["train.crop_fill=black", "finetune.crop_fill=black"])
    assert base.train.crop_padding == 0 and plan_cells(base)[1][0].key == plan_cells(black)[1][0].key
    assert "crop_fill" not in base.to_toml() and black.to_toml().count('crop_fill = "black"') == 2
    cifar = load_config(None, preset="cifar10")
    assert cifar.train.crop_padding > 0 and "crop_fill" not in cifar.to_toml()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "permuted"])
def test_flip_crop_slices_equals_gather_in_every_dtype_and_layout(dtype, layout):
    """The CPU loop slices numpy views where numpy has the dtype (bfloat16: torch's own slices)."""
    from prunefair.data.loader import flip_crop_gather, flip_crop_slices

    g = torch.Generator().manual_seed(1)
    x = (torch.rand(7, 3, 6, 5, generator=g) * 200).to(dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "permuted":  # a batch read from (N, H, W, C) pixels, as a per-file pipeline makes it
        x = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    flip = torch.rand(7, generator=g) < 0.5
    dy, dx = torch.randint(0, 5, (7,), generator=g), torch.randint(0, 5, (7,), generator=g)
    fill = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    for f in (None, fill):
        assert torch.equal(flip_crop_slices(x, flip, dy, dx, 2, f), flip_crop_gather(x, flip, dy, dx, 2, f))


def test_flip_crop_slices_with_uint8_draws_and_a_negative_view():
    """uint8 offsets wrapped (dy - p = 255) in the numpy loop; a tensor with torch's negative bit cannot be a numpy
    view: both as the whole-batch gather computes them."""
    from prunefair.data.loader import flip_crop_gather, flip_crop_slices

    x = torch.arange(16.0).view(1, 1, 4, 4)
    flip, d = torch.tensor([False]), torch.tensor([0], dtype=torch.uint8)
    assert torch.equal(flip_crop_slices(x, flip, d, d, 1), flip_crop_gather(x, flip, d.long(), d.long(), 1))
    neg = torch.randn(2, 3, 4, 4, dtype=torch.cfloat).conj().imag
    assert neg.is_neg()
    flip, dy, dx = torch.tensor([True, False]), torch.tensor([0, 2]), torch.tensor([1, 2])
    assert torch.equal(flip_crop_slices(neg, flip, dy, dx, 1), flip_crop_gather(neg, flip, dy, dx, 1))
