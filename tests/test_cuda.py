"""CUDA checks: skipped without a GPU (CI has none); benchmarks/gpu.sh runs them on a lent GPU."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from prunefair.data import load_dataset
from prunefair.measure import evaluate_groups
from prunefair.models import build_model, model_names
from prunefair.prune import make_masks, prunable_parameters
from prunefair.train import TrainSettings, fit

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_group_metrics_on_cuda_equal_cpu(digits):
    torch.manual_seed(0)
    model = build_model("mlp", num_classes=10, input_shape=(1, 8, 8))
    fit(model, digits.train, TrainSettings(epochs=3, batch_size=64, lr=0.05), seed=0)
    cpu = evaluate_groups(model, digits.test)
    gpu = evaluate_groups(copy.deepcopy(model).cuda(), digits.test.to("cuda"), device="cuda")
    np.testing.assert_array_equal(cpu.count, gpu.count)
    assert np.abs(cpu.correct - gpu.correct).sum() <= 1
    np.testing.assert_allclose(cpu.loss_sum, gpu.loss_sum, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("precision,compile_", [("fp32", False), ("bf16", False), ("bf16", True)])
def test_masks_hold_on_cuda(digits, precision, compile_):
    torch.manual_seed(0)
    model = build_model("cnn", num_classes=10, input_shape=(1, 8, 8), width=0.25).cuda()
    model = model.to(memory_format=torch.channels_last)
    masks = make_masks(model, 0.9)
    data = digits.train.to("cuda")
    hist = fit(model, data, TrainSettings(epochs=2, batch_size=128, lr=0.05, precision=precision,
                                          compile=compile_, crop_padding=1, flip=True),
               seed=0, device="cuda", masks=masks, channels_last=True)
    assert np.isfinite(hist.final_loss)
    for name, p in prunable_parameters(model).items():
        assert torch.count_nonzero(p.detach()[~masks.masks[name].cuda()]) == 0, name


@pytest.mark.parametrize("name", ["resnet18", "vgg19", "resnet50"])
def test_paper_models_train_step_on_cuda(name):
    if name not in model_names():
        pytest.skip(f"{name} not registered")
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, input_shape=(3, 32, 32)).cuda().to(memory_format=torch.channels_last)
    masks = make_masks(model, 0.99)
    x = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8)
    from prunefair.data import GroupedData

    data = GroupedData(x, torch.arange(256) % 10, torch.arange(256) % 10, tuple("0123456789"),
                       tuple("0123456789")).to("cuda")
    fit(model, data, TrainSettings(epochs=1, batch_size=64, lr=0.01, precision="bf16"), seed=0, device="cuda",
        masks=masks, channels_last=True)
    assert abs(masks.sparsity - 0.99) < 1e-6
    stats = evaluate_groups(model, data, device="cuda", channels_last=True)
    assert stats.count.sum() == 256


def test_study_on_cuda(tmp_path):
    from prunefair import run_study
    from tests.conftest import tiny_study

    r = run_study(tiny_study(tmp_path, device="cuda"))
    assert not r.failed and len(r.by_group) > 0


def test_diagnostics_on_cuda_match_cpu(digits):
    diag = pytest.importorskip("prunefair.diagnostics")
    fn = getattr(diag, "group_gradient_norms", None)
    if fn is None:
        pytest.skip("no group_gradient_norms")
    torch.manual_seed(0)
    model = build_model("mlp", num_classes=10, input_shape=(1, 8, 8))
    fit(model, digits.train, TrainSettings(epochs=2, batch_size=64, lr=0.05), seed=0)
    cpu = fn(model, digits.train)
    gpu = fn(copy.deepcopy(model).cuda(), digits.train.to("cuda"), device="cuda")
    a = np.asarray(getattr(cpu, "norms", cpu), dtype=float)
    b = np.asarray(getattr(gpu, "norms", gpu), dtype=float)
    np.testing.assert_allclose(a, b, rtol=1e-3)


def test_diagnose_groups_stacked_on_cuda_equals_per_group_on_cpu(digits):
    from prunefair.diagnostics import diagnose_groups

    torch.manual_seed(0)
    model = build_model("mlp", num_classes=10, input_shape=(1, 8, 8))
    fit(model, digits.train, TrainSettings(epochs=2, batch_size=64, lr=0.05), seed=0)
    kw = dict(max_samples=64, max_iter=40, tol=1e-4, seed=0)
    cpu = diagnose_groups(model, digits.train, **kw)
    gpu = diagnose_groups(copy.deepcopy(model).cuda(), digits.train.to("cuda"), device="cuda", stacked=True, **kw)
    assert gpu.settings["hvp_used"] == "stacked"
    np.testing.assert_allclose(gpu.hessian_top_eigenvalue, cpu.hessian_top_eigenvalue, rtol=2e-3)
    np.testing.assert_allclose(gpu.grad_norm, cpu.grad_norm, rtol=1e-3)


@pytest.mark.parametrize("name", ["cnn", "resnet18"])
def test_hessian_products_with_second_order_rules_on_cuda_equal_plain_autograd_on_cpu(name):
    from prunefair.diagnostics import GroupHessian

    torch.manual_seed(0)
    model = build_model(name, num_classes=10, input_shape=(3, 16, 16), width=0.25).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
    x, y = torch.randn(12, 3, 16, 16), torch.randint(0, 10, (12,))
    v = torch.randn(sum(p.numel() for p in model.parameters()))
    cpu = GroupHessian(model, x, y, method="double_backward", rules=False)(v)
    gpu = GroupHessian(copy.deepcopy(model).cuda(), x.cuda(), y.cuda(), method="double_backward")(v.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-4)


def test_augmentation_on_cuda_is_seeded_and_a_flip_crop_of_each_image():
    """On CUDA the draws come from a device generator seeded by the host one: same seed, same batch; each
    output is one of the (2p+1)^2 x 2 flip-crops of its input, as on the CPU."""
    from prunefair.data import Augment
    from prunefair.data.loader import flip_crop_slices

    x = torch.randn(16, 3, 8, 8)
    aug = Augment(crop_padding=2, flip=True)
    gpu = aug(x.cuda(), torch.Generator().manual_seed(3)).cpu()
    torch.testing.assert_close(aug(x.cuda(), torch.Generator().manual_seed(3)).cpu(), gpu)
    for i in range(16):
        options = [flip_crop_slices(x[i : i + 1], torch.tensor([f]), torch.tensor([a]), torch.tensor([b]), 2)
                   for f in (False, True) for a in range(5) for b in range(5)]
        assert any(torch.equal(gpu[i : i + 1], o) for o in options)
