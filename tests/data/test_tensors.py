"""register_arrays: refusals at registration that name the argument, and the coding of labels and attributes."""

import numpy as np
import pytest
import torch

from prunefair.data import dataset_info, grouped_from_arrays, load_dataset, register_arrays

N = 60
RNG = np.random.default_rng(0)
X = RNG.normal(size=(N, 5)).astype("float32")
Y = np.arange(N) % 2
SEX = np.where(np.arange(N) % 3, "f", "m")


@pytest.mark.parametrize("x, match", [
    (np.zeros(N, "float32"), r"x has shape \(60,\).*1-d is not supported"),
    (np.zeros((N, 8, 8), "float32"), r"x has shape \(60, 8, 8\).*3-d is not supported.*x\[:, None\]"),
    (np.zeros((N, 8, 8, 3), "uint8"), r"x has shape \(60, 8, 8, 3\).*channels-first \(N, C, H, W\)"),
    (np.zeros((N, 8, 8, 1), "uint8"), r"channels-first"),
    (np.zeros((0, 5), "float32"), r"x holds no samples"),
])
def test_x_of_the_wrong_shape_is_refused_at_registration(x, match):
    with pytest.raises(ValueError, match=match):
        register_arrays("bad_x", x, Y[:len(x)] if len(x) else Y[:0])


def test_channels_first_images_with_three_pixels_wide_are_not_mistaken_for_channels_last():
    register_arrays("three_wide", np.zeros((N, 3, 8, 3), "uint8"), Y)
    assert load_dataset("three_wide").train.x.shape[1:] == (3, 8, 3)


def test_lengths_must_agree():
    with pytest.raises(ValueError, match="y has 59 values for 60 samples"):
        register_arrays("bad_len", X, Y[:-1])
    with pytest.raises(ValueError, match=r"attributes\['sex'\] has 57 values for 60 samples"):
        register_arrays("bad_len", X, Y, attributes={"sex": SEX[:-3]})
    with pytest.raises(ValueError, match=r"y has shape \(60, 2\).*one-hot.*argmax"):
        register_arrays("bad_len", X, np.eye(2)[Y])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_float_x_is_refused(bad):
    x = X.copy()
    x[7, 2] = bad
    with pytest.raises(ValueError, match=r"x holds NaN or inf in 1 sample\(s\) \(the first: index 7\)"):
        register_arrays("bad_nan", x, Y)
    with pytest.raises(ValueError, match=r"x_test holds NaN or inf"):
        register_arrays("bad_nan", X, Y, x_test=x, y_test=Y)


def test_names_must_cover_every_code_and_only_codes_that_occur():
    with pytest.raises(ValueError, match=r"names\['class'\] has 1 names.*values include 1"):
        register_arrays("bad_names", X, Y, names={"class": ["no"]})
    with pytest.raises(ValueError, match=r"names\['site'\].*values include 2"):
        register_arrays("bad_names", X, Y, attributes={"site": np.arange(N) % 3}, names={"site": ["a", "b"]})
    with pytest.raises(ValueError, match=r"names\['class'\]: no sample has \['c'\]"):
        register_arrays("bad_names", X, Y, names={"class": ["a", "b", "c"]})
    with pytest.raises(ValueError, match=r"names\['sex'\] = \['f'\] does not list the value\(s\) \['m'\]"):
        register_arrays("bad_names", X, Y, attributes={"sex": SEX}, names={"sex": ["f"]})
    with pytest.raises(ValueError, match=r"names: \['sx'\] name no column; allowed: class, sex"):
        register_arrays("bad_names", X, Y, attributes={"sex": SEX}, names={"sx": ["f", "m"]})


def test_names_of_string_values_give_their_order():
    register_arrays("ordered_strings", X, np.where(Y == 1, "yes", "no"), names={"class": ["yes", "no"]})
    s = load_dataset("ordered_strings")
    assert s.train.class_names == ("yes", "no")
    every = torch.cat([s.split(k).y for k in ("train", "val", "test")])
    assert int((every == 0).sum()) == int((Y == 1).sum())  # "yes" is code 0


def test_test_set_needs_the_same_attributes():
    with pytest.raises(ValueError, match=r"attributes has keys \['sex'\] but attributes_test has \[\]"):
        register_arrays("bad_test", X, Y, attributes={"sex": SEX}, x_test=X, y_test=Y)
    with pytest.raises(ValueError, match=r"attributes has keys \['sex'\] but attributes_test has \['site'\]"):
        register_arrays("bad_test", X, Y, attributes={"sex": SEX}, x_test=X, y_test=Y,
                        attributes_test={"site": SEX})
    with pytest.raises(ValueError, match="attributes_test given without x_test"):
        register_arrays("bad_test", X, Y, attributes_test={"sex": SEX})
    with pytest.raises(ValueError, match=r"x_test has samples of shape \(4,\).*x \(5,\)"):
        register_arrays("bad_test", X, Y, x_test=X[:, :4], y_test=Y)


def test_built_in_names_are_refused_unless_overwritten():
    digits = dataset_info("digits")
    with pytest.raises(ValueError, match="'digits' is a built-in dataset.*overwrite=True"):
        register_arrays("digits", X, Y)
    try:
        register_arrays("digits", X, Y, overwrite=True)
        assert dataset_info("digits").in_memory
    finally:
        from prunefair.data import register_dataset

        register_dataset(digits)
    register_arrays("mine_again", X, Y)
    register_arrays("mine_again", X[:40], Y[:40])  # a name of one's own is simply replaced
    assert sum(len(load_dataset("mine_again").split(k)) for k in ("train", "val", "test")) == 40


def test_class_is_not_an_attribute_name():
    with pytest.raises(ValueError, match=r"attributes\['Class'\]: 'class' is y's name"):
        register_arrays("bad_attr", X, Y, attributes={"Class": SEX})


def test_integer_labels_not_0_to_c_minus_1_are_coded_in_sorted_order():
    register_arrays("one_based", X, Y + 1, attributes={"site": (np.arange(N) % 3) * 10 - 5})
    s = load_dataset("one_based", group="site")
    assert s.train.class_names == ("1", "2") and s.train.num_classes == 2  # no empty class "0"
    assert s.train.group_names == ("-5", "5", "15")
    every_y = torch.cat([s.split(k).y for k in ("train", "val", "test")])
    assert sorted(every_y.unique().tolist()) == [0, 1]
    assert np.bincount(every_y.numpy()).tolist() == np.bincount(Y).tolist()
    g = grouped_from_arrays(X, np.array([3, 7] * 30), group="class")
    assert g.class_names == ("3", "7") and g.y[:2].tolist() == [0, 1]


def test_train_and_test_share_one_coding():
    register_arrays("shared_coding", X, Y + 1, attributes={"site": np.arange(N) % 3}, x_test=X[:10],
                    y_test=np.full(10, 2), attributes_test={"site": np.full(10, 7)})
    s = load_dataset("shared_coding", group="class*site")
    assert s.train.class_names == s.test.class_names == ("1", "2")
    assert s.train.group_names == s.test.group_names
    assert set(s.test.g.tolist()) == {s.test.group_names.index("2/7")}


def test_zero_to_c_minus_1_data_keeps_its_fingerprint():
    """Data already coded 0..C-1 is coded as before this change: a study's stored results stay valid (these
    fingerprints were computed by the code before it)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (90, 3, 4, 4), dtype=np.uint8)
    site = rng.integers(0, 4, 90)
    sex = np.where(rng.random(90) < 0.5, "f", "m")
    register_arrays("compat_arrays", x, np.arange(90) % 3, attributes={"sex": sex, "site": site})
    assert load_dataset("compat_arrays", group="sex*site").fingerprint() == "fb7a5815f3fe820c"
    xf = rng.normal(size=(80, 5)).astype("float32")
    register_arrays("compat_tab", xf, np.arange(80) % 2, attributes={"site": np.arange(80) % 3},
                    x_test=xf[:40], y_test=np.arange(40) % 2, attributes_test={"site": np.arange(40) % 3})
    assert load_dataset("compat_tab", group="class*site").fingerprint() == "55293022446e260a"


def test_single_class_is_refused():
    with pytest.raises(ValueError, match=r"y: 1 class\(es\) \(\['0'\]\)"):
        register_arrays("one_class", X, np.zeros(N, int))


def test_the_rules_are_in_the_docstring():
    doc = register_arrays.__doc__
    for words in ("(N, C, H, W)", "channels-last", "NaN", "1..C", "names", "attributes_test", "overwrite=True"):
        assert words in doc, words


def test_a_column_of_labels_and_a_mapping_of_names_get_the_right_advice():
    x = np.zeros((6, 2), dtype="float32")
    with pytest.raises(ValueError, match=r"y has shape \(6, 1\).*pass y.ravel\(\)"):
        register_arrays("advice_column", x, np.array([0, 1, 0, 1, 0, 1])[:, None])
    with pytest.raises(ValueError, match=r"in code order .* not a mapping"):
        register_arrays("advice_mapping", x, np.array([0, 1, 0, 1, 0, 1]), names={"class": {"0": "no", "1": "yes"}})


def test_token_ids_run_a_whole_study_with_an_embedding_model(tmp_path):
    """register_arrays(..., token_ids=True) and a registered nn.Embedding model: a study trains, prunes,
    fine-tunes, diagnoses and reports on integer token ids; the ids reach the model as they are."""
    import torch
    from torch import nn

    from prunefair import run_study
    from prunefair.models import ModelInfo, register_model
    from tests.conftest import tiny_study

    seen = []

    class Bag(nn.Module):
        def __init__(self, num_classes, vocab):
            super().__init__()
            self.emb, self.fc = nn.Embedding(vocab, 8), nn.Linear(8, num_classes)

        def forward(self, tokens):
            seen.append(tokens.dtype)
            return self.fc(self.emb(tokens).mean(1))

    register_model(ModelInfo("token_bag", lambda num_classes, input_shape, width, batch_norm: Bag(num_classes, 30),
                             "a bag of embeddings"))
    g = np.random.default_rng(0)
    y = np.arange(300) % 2
    tokens = g.integers(0, 30, (300, 6))
    tokens[:, 0] = y * 15 + g.integers(0, 15, 300)  # the first token says the class
    register_arrays("token_text", tokens, y, attributes={"site": np.arange(300) % 3}, token_ids=True)
    splits = load_dataset("token_text", group="site")
    assert splits.train.token_ids and splits.train.x.dtype == torch.int64
    cfg = tiny_study(tmp_path, data={"dataset": "token_text", "group": "site"}, model={"name": "token_bag"},
                     prune={"rates": [0.5]}, diagnostics={"enabled": True}, run={"workers": 1, "save_pruned": True})
    results = run_study(cfg)
    assert {d for d in seen if isinstance(d, torch.dtype)} == {torch.int64}  # (fx tracing sees a proxy)
    assert len(results.cells) == 2 and (tmp_path / "study" / "report.html").exists()
    from prunefair.audit import audit_pair

    cells = tmp_path / "study" / "cells"
    audit = audit_pair(cfg, cells / "s0_dense" / "model.safetensors", cells / "s0_p0.5_nft" / "model.safetensors")
    assert len(audit.group_table("test")) == 3 and 0.4 < audit.sparsity < 0.6


def test_token_ids_are_checked_at_registration():
    with pytest.raises(ValueError, match="token_ids=True needs integer token ids, got dtype torch.float32"):
        register_arrays("bad_tokens", X.astype("float32"), Y, token_ids=True)
    with pytest.raises(ValueError, match=r"token ids must be >= 0.*sample 3 holds -2"):
        t = np.zeros((N, 4), "int64")
        t[3, 1] = -2
        register_arrays("bad_tokens", t, Y, token_ids=True)
    with pytest.raises(ValueError, match=r"token ids are 2-d"):
        register_arrays("bad_tokens", np.zeros((N, 1, 4, 4), "int64"), Y, token_ids=True)
    with pytest.raises(ValueError, match="mean/std normalise images"):
        grouped_from_arrays(np.zeros((N, 4), "int32"), Y, token_ids=True, mean=(0.5,))
    d = grouped_from_arrays(np.ones((N, 4), "int32"), Y, token_ids=True)
    assert d.token_ids and d.x.dtype == torch.int64


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "uint64", "int16", "int32"])
def test_token_ids_of_any_integer_dtype_become_int64(dtype):
    import torch

    d = grouped_from_arrays(np.arange(N * 3).reshape(N, 3).astype(dtype), Y, token_ids=True)
    assert d.x.dtype == torch.int64 and int(d.x.max()) == N * 3 - 1
    with pytest.raises(ValueError, match="x: token id .* does not fit int64"):
        grouped_from_arrays(np.full((N, 3), 2**63 + 1, "uint64"), Y, token_ids=True)


def test_finite_float64_x_that_overflows_float32_is_named_as_an_overflow_not_as_nan():
    x = X.astype("float64") * 1e300
    with pytest.raises(ValueError, match=r"x \(float64\) has values that overflow float32 \(\|value\| > 3\.4e\+38\) "
                                         r"in 60 sample\(s\) \(the first: index 0\)") as err:
        register_arrays("overflow", x, Y)
    assert "NaN" not in str(err.value)
    x = X.astype("float64")
    x[5, 1] = np.nan  # real NaN in float64 is still called NaN
    with pytest.raises(ValueError, match=r"x holds NaN or inf in 1 sample\(s\) \(the first: index 5\)"):
        register_arrays("overflow", x, Y)
    register_arrays("overflow_ok", X.astype("float64") * 1e30, Y)  # large but within float32


def test_uint8_features_are_used_as_given_and_mean_std_checked_when_registered():
    """uint8 (N, F) flags reached the model divided by 255; a mean for features, or of the wrong length for the
    images' channels, registered fine and crashed at the first batch."""
    import numpy as np
    import pytest

    from prunefair.data import load_dataset, register_arrays

    rng = np.random.default_rng(0)
    flags = rng.integers(0, 2, size=(60, 5)).astype(np.uint8)
    register_arrays("uint8_flags", flags, flags[:, 0])
    d = load_dataset("uint8_flags")
    assert d.train.to_float(d.train.x).max() == 1.0 and set(d.train.to_float(d.train.x).unique().tolist()) == {0, 1}
    with pytest.raises(ValueError, match=r"mean/std normalise uint8 \(N, C, H, W\) images; x holds \(N, F\) features"):
        register_arrays("bad_norm", flags, flags[:, 0], mean=(0.5,) * 5, std=(0.5,) * 5)
    images = rng.integers(0, 256, size=(40, 3, 4, 4)).astype(np.uint8)
    with pytest.raises(ValueError, match=r"mean has 2 value\(s\) for 3 channel\(s\)"):
        register_arrays("bad_norm", images, np.arange(40) % 2, mean=(0.5, 0.5), std=(0.5, 0.5))
    with pytest.raises(ValueError, match=r"std = \[0.5, 0.0, 0.5\]: finite numbers, each > 0"):
        register_arrays("bad_norm", images, np.arange(40) % 2, mean=(0.5,) * 3, std=(0.5, 0.0, 0.5))
    with pytest.raises(ValueError, match="give mean and std together"):
        register_arrays("bad_norm", images, np.arange(40) % 2, mean=(0.5,) * 3)
    register_arrays("good_norm", images, np.arange(40) % 2, mean=(0.4, 0.5, 0.6), std=(0.2, 0.2, 0.2))


def test_mean_std_forms_that_once_passed_the_check_and_failed_later_or_were_refused():
    import numpy as np
    import pytest
    import torch

    from prunefair.data import load_dataset, register_arrays

    rng = np.random.default_rng(1)
    images, y = rng.integers(0, 256, size=(40, 3, 4, 4)).astype(np.uint8), np.arange(40) % 2
    register_arrays("norm_shapes", images, y, mean=np.full((1, 3, 1, 1), 0.5), std=torch.full((3,), 0.25,
                                                                                                requires_grad=True))
    d = load_dataset("norm_shapes")
    assert d.train.mean == (0.5, 0.5, 0.5) and d.train.std == (0.25, 0.25, 0.25)
    d.train.to_float(d.train.x[:2])  # once: "unhashable type: 'numpy.ndarray'"
    register_arrays("norm_one", images, y, mean=[0.5], std=[0.5])  # one number for every channel, as before
    assert load_dataset("norm_one").train.mean == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match=r"mean = \['0.5', '0.5', '0.5'\]: numbers, one per channel"):
        register_arrays("norm_bad", images, y, mean=["0.5"] * 3, std=[0.5] * 3)
    with pytest.raises(ValueError, match=r"x holds float64 images, used as given: leave mean and std out"):
        register_arrays("norm_bad", images.astype(np.float64), y, mean=[0.5] * 3, std=[0.5] * 3)
