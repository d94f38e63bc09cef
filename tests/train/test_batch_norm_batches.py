"""fit with batch norm: a last batch of one sample (which batch norm cannot normalise) is skipped, not fatal."""

import pytest
import torch
from torch import nn

from prunefair.data import GroupedData
from prunefair.train import TrainSettings, fit


def _data(n: int) -> GroupedData:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 5, generator=gen)
    y = torch.randint(0, 3, (n,), generator=gen)
    return GroupedData(x, y, y.clone(), ("a", "b", "c"), ("a", "b", "c"))


def _model(batch_norm: bool) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), *([nn.BatchNorm1d(8)] if batch_norm else []), nn.ReLU(), nn.Linear(8, 3))


def test_a_last_batch_of_one_is_skipped_with_batch_norm_only():
    data = _data(17)  # batches of 8, 8 and 1
    steps = []
    settings = TrainSettings(epochs=2, batch_size=8, lr=0.1)
    model = _model(True)
    model.register_forward_pre_hook(lambda m, args: steps.append(len(args[0])))
    hist = fit(model, data, settings, seed=0)
    assert steps == [8, 8, 8, 8] and len(hist.epochs) == 2
    plain = _model(False)
    plain.register_forward_pre_hook(lambda m, args: steps.append(len(args[0])))
    steps.clear()
    fit(plain, data, settings, seed=0)
    assert steps == [8, 8, 1, 8, 8, 1]  # without batch norm every sample is used
    with pytest.raises(ValueError, match="single sample"):
        fit(_model(True), _data(1), settings, seed=0)


def test_batches_of_one_sample_with_batch_norm_name_the_batch_size():
    with pytest.raises(ValueError, match="batch_size = 1 gives batches of one sample") as err:
        fit(_model(True), _data(6), TrainSettings(epochs=1, batch_size=1, lr=0.1), seed=0)
    assert "Expected more than 1 value" in str(err.value.__cause__)  # torch's own error kept as the cause
