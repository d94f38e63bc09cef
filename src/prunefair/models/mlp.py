"""Multi-layer perceptron: the CPU model for the embedded digits dataset.

A plain fully connected ReLU network (Rumelhart, Hinton, Williams 1986), optionally with batch norm.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_features: int, num_classes: int, hidden: tuple[int, ...] = (128, 64), batch_norm: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.ReLU(inplace=True))
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def mlp(*, num_classes: int, input_shape: tuple[int, ...], width: float = 1.0, batch_norm: bool = False) -> MLP:
    hidden = tuple(max(1, int(round(h * width))) for h in (128, 64))
    return MLP(math.prod(input_shape), num_classes, hidden, batch_norm)
