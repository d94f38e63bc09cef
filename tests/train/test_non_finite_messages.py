"""A diverged training run names both usual causes, the learning rate and the weight decay, with their values: a
run diverged by weight_decay once blamed only the learning rate (lr=0.05, which was fine)."""

import math

import pytest
import torch
from torch import nn

from prunefair.data import GroupedData
from prunefair.train import NonFiniteLossError, TrainSettings, fit


def _data(n=64):
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(0))
    return GroupedData(x, torch.arange(n) % 2, torch.zeros(n, dtype=torch.long), ("a", "b"), ("all",))


def test_non_finite_loss_message_names_the_weight_decay_too():
    torch.manual_seed(0)
    settings = TrainSettings(epochs=2, batch_size=4, lr=0.05, weight_decay=1e38, schedule="constant")
    with pytest.raises(NonFiniteLossError, match=r"non-finite training loss .* in epoch 1; lower the learning rate "
                                                 r"\(lr=0.05\) or the weight decay \(weight_decay=1e\+38\)"):
        fit(nn.Linear(3, 2), _data(), settings, seed=0)


def test_non_finite_weights_message_names_the_weight_decay_too():
    torch.manual_seed(0)
    settings = TrainSettings(epochs=1, batch_size=64, lr=0.05, weight_decay=math.inf, schedule="constant")
    with pytest.raises(NonFiniteLossError, match=r"not finite after the last step; lower the learning rate "
                                                 r"\(lr=0.05\) or the weight decay \(weight_decay=inf\)"):
        fit(nn.Linear(3, 2), _data(), settings, seed=0)
