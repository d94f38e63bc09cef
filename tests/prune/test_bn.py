"""Batch-norm recalibration: exact statistics on a small case, and recovery from a collapsed pruned model."""

import copy

import pytest
import torch
from torch import nn

from prunefair.data import GroupedData, iterate_batches
from prunefair.prune import has_batch_norm, make_masks, recalibrate_batch_norm


def _data(n=40):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=gen) * 3 + 1
    y = torch.randint(0, 3, (n,), generator=gen)
    return GroupedData(x, y, y.clone(), ("a", "b", "c"), ("a", "b", "c"))


def test_recalibrated_statistics_equal_the_data_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    model[1].running_mean.fill_(7.0)
    model[1].running_var.fill_(0.01)
    model[1].momentum = 0.3
    data = _data()
    weights_before = {k: v.clone() for k, v in model.named_parameters()}
    seen = recalibrate_batch_norm(model, data, batch_size=len(data), max_batches=None)
    assert seen == len(data)
    x = next(iterate_batches(data, batch_size=len(data)))[0]
    with torch.no_grad():
        h = model[0](x).double()
    ref_mean = h.mean(0)
    ref_var = ((h - ref_mean) ** 2).sum(0) / (len(h) - 1)  # unbiased, as batch norm keeps it
    assert torch.allclose(model[1].running_mean.double(), ref_mean, atol=1e-5)
    assert torch.allclose(model[1].running_var.double(), ref_var, rtol=1e-4)
    assert model[1].momentum == 0.3 and not model.training
    for k, v in model.named_parameters():
        assert torch.equal(v, weights_before[k])


def test_cumulative_average_over_batches_and_no_bn_is_a_no_op():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5))
    data = _data(40)
    recalibrate_batch_norm(model, data, batch_size=10, max_batches=2, seed=3)
    batches = list(iterate_batches(data, batch_size=10, shuffle=True, generator=torch.Generator().manual_seed(3)))[:2]
    with torch.no_grad():
        means = [model[0](x).mean(0) for x, _, _ in batches]
    assert torch.allclose(model[1].running_mean, (means[0] + means[1]) / 2, atol=1e-6)
    assert int(model[1].num_batches_tracked) == 2
    plain = nn.Sequential(nn.Linear(6, 3))
    assert not has_batch_norm(plain) and recalibrate_batch_norm(plain, data) == 0


@pytest.mark.slow
def test_recalibration_rescues_a_collapsed_pruned_bn_network():
    """A BN MLP on digits pruned to 95% (one-shot, global magnitude) predicts a single class with its dense
    statistics; recalibrated on training data it predicts many classes and is far more accurate."""
    from prunefair.data import load_dataset
    from prunefair.models import build_model
    from prunefair.train import TrainSettings, fit

    torch.manual_seed(0)
    data = load_dataset("digits")
    model = build_model("mlp", num_classes=10, input_shape=data.train.input_shape, batch_norm=True, width=0.5)
    fit(model, data.train, TrainSettings(epochs=3, batch_size=64, lr=0.05), seed=0)
    pruned = copy.deepcopy(model)
    make_masks(pruned, 0.95).bind(pruned).apply()

    def predictions(m):
        m.eval()
        with torch.no_grad():
            return torch.cat([m(x).argmax(1) for x, _, _ in iterate_batches(data.test, batch_size=512)])

    y = data.test.y
    before = predictions(pruned)
    recalibrate_batch_norm(pruned, data.train, batch_size=128, max_batches=10)
    after = predictions(pruned)
    acc_before = float((before == y).float().mean())
    acc_after = float((after == y).float().mean())
    print(f"95% pruned BN MLP: accuracy {acc_before:.3f} (old statistics, {len(before.unique())} class predicted) "
          f"-> {acc_after:.3f} recalibrated ({len(after.unique())} classes)")
    assert len(before.unique()) == 1  # the collapse
    assert len(after.unique()) >= 8
    assert acc_after > acc_before + 0.2
