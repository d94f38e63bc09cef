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
def test_hessian_products_with_second_order_rules_on_cuda_equal_plain_autograd_on_cpu(name, monkeypatch):
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
    # cuDNN convolutions default to TF32 (10-bit mantissa), which alone would put the products ~1e-3 apart
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
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


def _images(n: int = 4096):
    from prunefair.data import GroupedData

    g = torch.Generator().manual_seed(0)
    return GroupedData(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                       torch.randint(0, 10, (n,), generator=g), torch.randint(0, 4, (n,), generator=g),
                       tuple("0123456789"), tuple("abcd"), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def test_a_cpu_model_on_data_held_on_cuda_reads_whole_batches():
    """Batches copied from the GPU into host memory: a non-blocking copy returned before the data had arrived, and
    the CPU model read them at once (uninitialised pinned memory)."""
    data = _images()
    torch.manual_seed(0)
    model = build_model("mlp", num_classes=10, input_shape=(3, 32, 32))
    on_cpu, on_gpu = copy.deepcopy(model), copy.deepcopy(model)
    settings = TrainSettings(epochs=1, batch_size=1024, lr=0.01)
    fit(on_cpu, data, settings, seed=0, device="cpu")
    fit(on_gpu, data.to("cuda"), settings, seed=0, device="cpu")
    for k, v in on_cpu.state_dict().items():
        assert torch.equal(v, on_gpu.state_dict()[k]), k
    a = evaluate_groups(on_cpu, data, batch_size=1024)
    b = evaluate_groups(on_cpu, data.to("cuda"), batch_size=1024, device="cpu")
    np.testing.assert_array_equal(a.correct, b.correct)
    np.testing.assert_array_equal(a.loss_sum, b.loss_sum)


def test_a_cuda_model_trains_recalibrates_and_is_measured_without_a_device_argument(digits):
    """The batches go to the model's device by default (fit, finetune_pruned, recalibrate_batch_norm,
    group_boundary_distance; evaluate_groups and the diagnostics already did)."""
    from prunefair.diagnostics import group_boundary_distance
    from prunefair.prune import recalibrate_batch_norm

    torch.manual_seed(0)
    model = build_model("mlp", num_classes=10, input_shape=(1, 8, 8), batch_norm=True).cuda()
    hist = fit(model, digits.train, TrainSettings(epochs=2, batch_size=64, lr=0.05), seed=0)
    assert np.isfinite(hist.final_loss)
    assert recalibrate_batch_norm(model, digits.train, batch_size=64, max_batches=3) == 192
    gpu = group_boundary_distance(model, digits.test)
    cpu = group_boundary_distance(copy.deepcopy(model).cpu(), digits.test)
    np.testing.assert_allclose(gpu.gini, cpu.gini, rtol=1e-4)


def test_fit_ddp_on_cuda_keeps_what_it_all_reduces_on_the_device(digits, monkeypatch):
    """NCCL all-reduces CUDA tensors only: fit_ddp's epoch loss sum was a CPU tensor (and a host sync per step)."""
    import prunefair.study.distributed as distributed

    seen = []
    monkeypatch.setattr(distributed, "all_reduce_sum", lambda t: seen.append(t.device.type) or t)
    torch.manual_seed(0)
    model = build_model("mlp", num_classes=10, input_shape=(1, 8, 8)).cuda()
    distributed.fit_ddp(model, digits.train, TrainSettings(epochs=2, batch_size=64, lr=0.05), seed=0)
    distributed.evaluate_groups_distributed(model, digits.test)
    assert seen == ["cuda"] * 3
