"""fit with a model that has fewer logits than the data has classes: a named error at the first batch, not torch's
"IndexError: Target 2 is out of bounds" (a device-side assert on CUDA); more logits than classes train as before."""

import pytest
import torch
from torch import nn

from prunefair.data import GroupedData
from prunefair.train import TrainSettings, fit


def _data(n=48):
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(0))
    return GroupedData(x, torch.arange(n) % 3, torch.zeros(n, dtype=torch.long), ("a", "b", "c"), ("all",))


def test_fewer_logits_than_classes_are_named_before_a_step():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    before = model.weight.detach().clone()
    with pytest.raises(ValueError, match=r"returned 2 logits per sample but the data has 3 classes"):
        fit(model, _data(), TrainSettings(epochs=1, batch_size=16, lr=0.1), seed=0)
    assert torch.equal(model.weight, before)  # refused before the first step


def test_more_logits_than_classes_still_train():
    torch.manual_seed(0)
    fit(nn.Linear(4, 5), _data(), TrainSettings(epochs=1, batch_size=16, lr=0.1), seed=0)

