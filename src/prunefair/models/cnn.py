"""Compact CNN for CPU experiments (288,746 parameters at width 1 for 3-channel images and 10 classes).

Three conv-BN-ReLU stages with max-pooling and a linear head, in the spirit of the small VGG-style
networks of Simonyan and Zisserman (ICLR 2015). Adapts to any input size through global average pooling.
"""

from __future__ import annotations

import torch
from torch import nn

from prunefair.models.shapes import check_image_size, image_shape

# a leaf of torch.fx traces (its shape test would stop symbolic_trace, and with it the fused conv-batch-norm
# Hessian rules, diagnostics/hvp_rules.py)
torch.fx.wrap("check_image_size")


def _stage(cin: int, cout: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for c_in in (cin, cout):
        layers.append(nn.Conv2d(c_in, cout, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU(inplace=True))
    layers.append(nn.MaxPool2d(2))
    return layers


class SmallCNN(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, widths=(32, 64, 128), batch_norm: bool = True):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for w in widths:
            layers += _stage(c, w, batch_norm)
            c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_size("cnn", x, 8, "3 2x2 max-pools")
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def small_cnn(*, num_classes: int, input_shape: tuple[int, ...], width: float = 1.0, batch_norm: bool = True) -> SmallCNN:
    channels, _, _ = image_shape("cnn", input_shape)
    widths = tuple(max(1, int(round(w * width))) for w in (32, 64, 128))
    return SmallCNN(channels, num_classes, widths, batch_norm)
