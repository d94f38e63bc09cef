"""Builders checked when registered or built: a wrong signature, features for a convolutional model or images too
small for its max-pools once failed in every cell with Python's or torch's own message, naming neither."""

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import prunefair
from prunefair.models import ModelInfo, build_model, register_model


def _two_keyword_builder(num_classes, input_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


@pytest.mark.parametrize("builder, match", [
    (_two_keyword_builder, r"register_model\('two'\): the builder\(num_classes, input_shape\) cannot be called as "
                           r"builder\(num_classes=\.\.\., input_shape=\.\.\., width=\.\.\., batch_norm=\.\.\.\) "
                           r"\(got an unexpected keyword argument 'width'\)"),
    (nn.Linear, r"missing a required argument: 'in_features'"),
    (5, r"the builder 5 is not callable"),
])
def test_a_builder_that_cannot_take_the_four_keywords_is_refused_when_registered(builder, match):
    with pytest.raises(TypeError, match=match):
        register_model(ModelInfo("two", builder, "wrong signature"))
    assert "two" not in prunefair.models.model_names()


def test_builders_of_every_documented_form_are_accepted():
    import functools

    def keywords(*, num_classes, input_shape, width, batch_norm):
        return _two_keyword_builder(num_classes, input_shape)

    def loose(num_classes, input_shape, **rest):
        return _two_keyword_builder(num_classes, input_shape)

    class Net(nn.Sequential):
        def __init__(self, *, num_classes, input_shape, width=1.0, batch_norm=False, depth=1):
            super().__init__(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))

    for i, b in enumerate((keywords, loose, Net, functools.partial(Net, depth=2))):
        register_model(ModelInfo(f"own_form_{i}", b, "ok", default_batch_norm=False))
        model = build_model(f"own_form_{i}", num_classes=3, input_shape=(4,))
        assert model(torch.zeros(2, 4)).shape == (2, 3)


@pytest.mark.parametrize("name", ["cnn", "resnet20", "resnet18", "vgg19", "vgg19_imagenet", "resnet50_imagenet"])
def test_a_convolutional_model_given_features_names_itself_and_the_shape(name):
    with pytest.raises(ValueError, match=rf"model '{name}' is convolutional and takes \(C, H, W\) images; the data "
                                         r"holds \(F,\) = \(10,\) features: use model.name = 'mlp'"):
        build_model(name, num_classes=2, input_shape=(10,), width=0.1)


@pytest.mark.parametrize("name, shape, size", [("vgg19", (1, 28, 28), 32), ("vgg19_imagenet", (3, 16, 40), 32),
                                               ("cnn", (3, 4, 4), 8), ("cnn", (3, 7, 9), 8)])
def test_images_too_small_for_the_max_pools_name_the_size_needed(name, shape, size):
    """Built (a checkpoint can be saved and loaded), refused where it runs, as torch's "Output size is too small"
    was, but naming the model and the size."""
    model = build_model(name, num_classes=2, input_shape=shape, width=0.1).eval()
    with pytest.raises(RuntimeError, match=rf"model '{name}' needs images of at least {size}x{size} \(\d 2x2 "
                                           rf"max-pools\); these are {shape[1]}x{shape[2]}: set data.image_size = "
                                           rf"{size}"):
        model(torch.zeros(2, *shape))
    smallest = build_model(name, num_classes=2, input_shape=(shape[0], size, size), width=0.1).eval()
    with torch.no_grad():
        assert smallest(torch.zeros(2, shape[0], size, size)).shape == (2, 2)


def test_a_study_of_grey_28x28_arrays_on_vgg19_fails_with_the_size_in_every_cell(tmp_path):
    from prunefair.data import register_arrays
    from tests.conftest import tiny_study

    rng = np.random.default_rng(0)
    register_arrays("grey28", rng.integers(0, 256, (80, 1, 28, 28), dtype=np.uint8), np.arange(80) % 2)
    cfg = tiny_study(tmp_path, data={"dataset": "grey28"}, model={"name": "vgg19", "width": 0.05},
                     train={"epochs": 1}, prune={"rates": [0.5]}, run={"workers": 1}, diagnostics={"enabled": False})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = prunefair.run_study(cfg)
    assert results.failed and all("needs images of at least 32x32" in f["error"] for f in results.failed)


def test_logits_of_another_class_count_are_named_when_the_count_is_given():
    from prunefair.models import check_logits

    z = torch.zeros(4, 5)
    assert check_logits(z, 4, num_classes=5) is z and check_logits(z, 4) is z
    assert check_logits(z, 4, num_classes=3) is z  # more logits than classes: accepted, as evaluate_groups does
    with pytest.raises(ValueError, match=r"the model returned 5 logits per sample but the data has 10 classes: build "
                                         r"its output layer with the num_classes its builder is given"):
        check_logits(z, 4, num_classes=10)
