"""Architectures against published parameter counts and an independent closed-form count."""

import pytest
import torch

from prunefair.models import build_model, count_parameters, model_names
from prunefair.models.resnet import resnet18, resnet50
from prunefair.models.vgg import vgg19

# Published counts. CIFAR variants (10 classes): pytorch-cifar (kuangliu) ResNet18 11,173,962, ResNet50
# 23,520,842, VGG19-BN 20,040,522 (its convs keep a bias before batch norm: 5,504 more than ours);
# He et al. 2016 Table 6 ResNet-20 "0.27M". ImageNet variants (1000 classes, torchvision):
# resnet18 11,689,512, resnet50 25,557,032, vgg19 (no BN) 143,667,240.
VGG19_CONV_BIASES = 2 * 64 + 2 * 128 + 4 * 256 + 8 * 512


def test_cifar_parameter_counts_match_published():
    def n(name):
        with torch.device("meta"):
            return count_parameters(build_model(name, num_classes=10, input_shape=(3, 32, 32)))

    assert n("resnet18") == 11_173_962
    assert n("resnet50") == 23_520_842
    assert n("vgg19") == 20_040_522 - VGG19_CONV_BIASES
    assert round(n("resnet20") / 1e6, 2) == 0.27


def test_imagenet_configurations_match_published():
    with torch.device("meta"):  # no memory allocated for 143M parameters
        assert count_parameters(resnet18(num_classes=1000, input_shape=(3, 224, 224), stem="imagenet")) == 11_689_512
        assert count_parameters(resnet50(num_classes=1000, input_shape=(3, 224, 224), stem="imagenet")) == 25_557_032
        assert count_parameters(vgg19(num_classes=1000, input_shape=(3, 224, 224), head="imagenet",
                                      batch_norm=False)) == 143_667_240


def test_resnet18_closed_form_count():
    # conv3x3 stem + BN, then per stage: two blocks of two 3x3 convs (+BN), a 1x1 projection (+BN) at stages 2-4
    def conv(cin, cout, k):
        return cin * cout * k * k

    def bn(c):
        return 2 * c

    total = conv(3, 64, 3) + bn(64)
    cin = 64
    for c in (64, 128, 256, 512):
        for j in range(2):
            total += conv(cin, c, 3) + bn(c) + conv(c, c, 3) + bn(c)
            if cin != c:
                total += conv(cin, c, 1) + bn(c)
            cin = c
    total += 512 * 7 + 7
    with torch.device("meta"):
        assert count_parameters(build_model("resnet18", num_classes=7, input_shape=(3, 48, 48))) == total


@pytest.mark.parametrize("name", ["resnet18", pytest.param("resnet50", marks=pytest.mark.slow), "vgg19", "resnet20",
                                  "cnn"])
def test_models_run_at_paper_sizes(name):
    torch.manual_seed(0)
    m = build_model(name, num_classes=5, input_shape=(3, 32, 32), width=0.125).eval()
    with torch.no_grad():
        for side in (48, 64):  # 32x32 runs in the channels_last test and every CIFAR study
            assert m(torch.randn(1, 3, side, side)).shape == (1, 5)


def test_width_multiplier_and_batch_norm_switch():
    with torch.device("meta"):
        full = count_parameters(build_model("resnet18", num_classes=10, input_shape=(3, 32, 32)))
        half = count_parameters(build_model("resnet18", num_classes=10, input_shape=(3, 32, 32), width=0.5))
    assert 0.24 < half / full < 0.26  # conv weights scale with width squared
    no_bn = build_model("vgg19", num_classes=10, input_shape=(3, 32, 32), width=0.25, batch_norm=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in no_bn.modules())
    assert all(m.bias is not None for m in no_bn.modules() if isinstance(m, torch.nn.Conv2d))
    assert {"resnet18", "resnet50", "resnet20", "vgg19", "cnn", "mlp"} <= set(model_names())


@pytest.mark.parametrize("name", ["resnet20", "vgg19"])
def test_channels_last_gives_the_same_outputs(name):
    torch.manual_seed(0)
    m = build_model(name, num_classes=3, input_shape=(3, 32, 32), width=0.125).eval()
    x = torch.randn(2, 3, 32, 32)
    ref = m(x)
    out = m.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(ref, out, atol=1e-5)


def test_the_appendix_configurations_are_registered():
    """Tran et al.'s appendix B.2: VGG-19 with 3 fully connected layers, ResNet50 with one max-pool."""
    vgg = build_model("vgg19_imagenet", num_classes=10, input_shape=(3, 48, 48))
    assert sum(isinstance(m, torch.nn.Linear) for m in vgg.modules()) == 3
    assert sum(isinstance(m, torch.nn.Conv2d) for m in vgg.modules()) == 16
    assert count_parameters(vgg) == 139_616_714
    r50 = build_model("resnet50_imagenet", num_classes=10, input_shape=(3, 48, 48), width=0.25)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in r50.modules()) == 1
    assert r50(torch.zeros(2, 3, 48, 48)).shape == (2, 10)
