"""Data a researcher brings that prunefair once took silently or refused with a message naming nothing."""

import numpy as np
import pytest

from prunefair.data import GroupedData, load_dataset, register_arrays, resample_group

Y = np.arange(40) % 2


@pytest.mark.parametrize("channels", [2, 4])
def test_channels_last_images_with_alpha_are_refused(channels):
    """An RGBA (N, H, W, 4) array was once registered as 16-channel 16x4 images (and grey + alpha alike)."""
    x = np.zeros((40, 16, 16, channels), "uint8")
    with pytest.raises(ValueError, match=rf"x has shape \(40, 16, 16, {channels}\): images must be channels-first"):
        register_arrays("alpha_last", x, Y)
    register_arrays("alpha_first", x.transpose(0, 3, 1, 2), Y)  # channels first: kept, one mean per channel
    train = load_dataset("alpha_first").train
    assert train.input_shape == (channels, 16, 16) and train.mean == (0.5,) * channels


def test_a_class_named_by_its_integer_is_resampled():
    """resample={"group": 8, ...} once said "8: not a group of this dataset; allowed: 0, ..., 8, 9"."""
    base = load_dataset("digits")
    up = load_dataset("digits", resample={"group": 8, "factor": 2})
    gid = base.train.group_names.index("8")
    assert up.train.group_counts()[gid] == 2 * base.train.group_counts()[gid]
    data = GroupedData(base.train.x, base.train.y, base.train.g, base.train.class_names, base.train.group_names)
    assert resample_group(data, group=8, factor=3).group_counts()[gid] == 3 * base.train.group_counts()[gid]


@pytest.mark.parametrize("resample, match", [
    ({"group": "8", "factor": "five"}, r"data.resample.factor = 'five': must be a finite number > 0"),
    ({"group": "8", "factor": None}, r"data.resample.factor = None: must be a finite number > 0"),
    ({"group": "8"}, r"resample = \{'group': '8'\}: give a dict with the keys 'group' and 'factor'"),
    (("8", 2), r"resample = \('8', 2\): give a dict"),
])
def test_a_malformed_resample_is_named_before_the_data_loads(resample, match, monkeypatch):
    """Once float()'s "could not convert string to float", a KeyError 'factor', or a TypeError, after decoding."""
    from prunefair.data import registry

    def no_load(**kw):
        raise AssertionError("the data was loaded before resample was checked")

    monkeypatch.setitem(registry._REGISTRY, "digits", registry.DatasetInfo(
        "digits", no_load, targets=("class",), groups=("class",), needs_root=False, description="digits"))
    with pytest.raises(ValueError, match=match):
        load_dataset("digits", resample=resample)


def test_two_intersection_groups_of_one_name_are_refused_naming_the_key():
    """Values holding '/' once made ('a/b', 'c') and ('a', 'b/c') two groups both named 'a/b/c'."""
    p, q = np.array(["a/b", "a"] * 20), np.array(["c", "b/c"] * 20)
    register_arrays("slashes", np.zeros((40, 3), "float32"), Y, attributes={"p": p, "q": q})
    with pytest.raises(ValueError, match=r"data.group = 'p\*q': two groups of the intersection are both named "
                                         r"'a/b/c': a value holds '/'"):
        load_dataset("slashes", group="p*q")
    register_arrays("slash_ok", np.zeros((40, 3), "float32"), Y,
                    attributes={"race": np.array(["Black/African American", "White"] * 20),
                                "sex": np.array(["f"] * 40)})
    assert load_dataset("slash_ok", group="race*sex").train.group_names == ("Black/African American/f", "White/f")


def test_grouped_data_from_numpy_arrays_and_lists_evaluates_like_tensors():
    """GroupedData(numpy x, numpy y, numpy g, ...) once ended in "AttributeError: 'numpy.ndarray' object has no
    attribute 'long'"; labels that are not ids are refused naming y and grouped_from_arrays."""
    import torch
    from torch import nn

    from prunefair.measure import evaluate_groups

    rng = np.random.default_rng(0)
    x, y, g = rng.normal(size=(30, 4)), rng.integers(0, 3, 30), rng.integers(0, 2, 30)
    torch.manual_seed(0)
    net = nn.Linear(4, 3)
    ours = evaluate_groups(net, GroupedData(x, y.tolist(), g, range(3), ["a", "b"]))
    want = evaluate_groups(net, GroupedData(torch.tensor(x, dtype=torch.float32), torch.tensor(y), torch.tensor(g),
                                            ("0", "1", "2"), ("a", "b")))
    assert ours.accuracy.tolist() == want.accuracy.tolist() and ours.group_names == want.group_names
    with pytest.raises(ValueError, match=r"GroupedData: y must be a tensor or a numeric array \(ids 0..K-1 .*"
                                         r"grouped_from_arrays"):
        GroupedData(x, np.array(["cat", "dog"] * 15), g, ("cat", "dog"), ("a", "b"))
    with pytest.raises(ValueError, match=r"GroupedData: class_names is a list with one name per id, got 'ab'"):
        GroupedData(x, y % 2, g, "ab", ("a", "b"))


def test_editing_a_loaded_test_split_in_place_leaves_the_next_load_alone(tmp_path):
    """CIFAR-10's image-folder test split was the decode cache's own tensor: zeroing splits.test.x in a notebook
    (an occlusion experiment, say) once made every later load in the process, a study's included, all black."""
    from tests.data.conftest import write_jpeg

    for s, split in enumerate(("train", "test")):
        for c, name in enumerate(("cat", "dog")):
            for i in range(6):
                write_jpeg(tmp_path / split / name / f"{i}.png", seed=100 * s + 10 * c + i, size=8)
    first = load_dataset("cifar10", root=str(tmp_path), options={"workers": 1})
    kept = first.test.x.clone()
    first.test.x.zero_()
    first.train.x.zero_()
    again = load_dataset("cifar10", root=str(tmp_path), options={"workers": 1})
    assert again.test.x.equal(kept) and int(again.train.x.max()) > 0


def test_printing_a_dataset_shows_a_summary_not_every_tensor():
    """print(load_dataset("digits")) once dumped every split's tensors (thousands of lines in a notebook)."""
    from prunefair.data import load_dataset

    splits = load_dataset("digits")
    text, test = repr(splits), repr(splits.test)
    assert "\n" not in text and len(text) < 300 and "tensor" not in text
    assert "train 1258, val 180, test 359 samples" in text and "10 classes [0, 1, 2, 3, 4, 5, ... (4 more)]" in text
    assert test.startswith("GroupedData(359 samples, x (1, 8, 8) float32 on cpu, 10 classes") and len(test) < 200
