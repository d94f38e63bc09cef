"""Residual networks: He, Zhang, Ren and Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.

- ``resnet18`` / ``resnet50``: the CIFAR-style variants common in pruning studies: a 3x3 stride-1 stem and no
  max-pool, four stages of BasicBlocks [2, 2, 2, 2] or Bottlenecks [3, 4, 6, 3] at widths
  64..512, global average pooling, one linear layer. About 11.2M and 23.5M parameters for 10 classes.
  Global pooling makes them work unchanged at 48x48 (UTKFace, the paper's size) and 64x64; the last
  feature map is then 6x6 or 8x8 instead of 4x4. ``stem="imagenet"`` gives the original 7x7 stride-2
  stem with max-pool (11.69M / 25.56M parameters at 1000 classes, the published figures); the registry's
  ``resnet50_imagenet`` is that ResNet50, the one Tran et al.'s appendix B.2 describes (48 convolutions, one
  max-pool, one average pool).
- ``resnet20``: the narrow CIFAR ResNet of the same paper (Sec. 4.2: 6n+2 layers, n = 3, widths 16/32/64,
  parameter-free "option A" shortcuts; 0.27M parameters): a small model that trains in minutes on a CPU.

``width`` multiplies every channel count; ``batch_norm=False`` replaces batch norm by conv biases.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from prunefair.models.shapes import image_shape


def _norm(c: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(c) if batch_norm else nn.Identity()


def _conv(cin: int, cout: int, k: int, stride: int, batch_norm: bool) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=not batch_norm)


class _PadShortcut(nn.Module):
    """Option A shortcut: subsample spatially and zero-pad the new channels (no parameters)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride, self.extra = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


def _shortcut(cin: int, cout: int, stride: int, batch_norm: bool, kind: str) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    if kind == "pad":
        return _PadShortcut(cin, cout, stride)
    return nn.Sequential(_conv(cin, cout, 1, stride, batch_norm), _norm(cout, batch_norm))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and an identity (or projection) shortcut."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, batch_norm: bool = True, shortcut: str = "conv"):
        super().__init__()
        self.conv1 = _conv(cin, planes, 3, stride, batch_norm)
        self.bn1 = _norm(planes, batch_norm)
        self.conv2 = _conv(planes, planes, 3, 1, batch_norm)
        self.bn2 = _norm(planes, batch_norm)
        self.shortcut = _shortcut(cin, planes, stride, batch_norm, shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), with a projection shortcut when shapes change. The stride sits on the 3x3
    convolution (the "v1.5" block of torchvision and most pruning code; He et al. put it on the first 1x1): the same
    parameters (25,557,032 at 1000 classes), slightly more computation and accuracy."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, batch_norm: bool = True, shortcut: str = "conv"):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = _conv(cin, planes, 1, 1, batch_norm)
        self.bn1 = _norm(planes, batch_norm)
        self.conv2 = _conv(planes, planes, 3, stride, batch_norm)
        self.bn2 = _norm(planes, batch_norm)
        self.conv3 = _conv(planes, out, 1, 1, batch_norm)
        self.bn3 = _norm(out, batch_norm)
        self.shortcut = _shortcut(cin, out, stride, batch_norm, shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, block, layers, *, in_channels: int = 3, num_classes: int = 10, widths=(64, 128, 256, 512),
                 batch_norm: bool = True, stem: str = "cifar", shortcut: str = "conv"):
        super().__init__()
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"unknown stem {stem!r}; allowed: cifar, imagenet")
        c = widths[0]
        if stem == "cifar":
            self.stem = nn.Sequential(_conv(in_channels, c, 3, 1, batch_norm), _norm(c, batch_norm), nn.ReLU(inplace=True))
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 7, stride=2, padding=3, bias=not batch_norm),
                                      _norm(c, batch_norm), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        stages = []
        for i, (planes, n) in enumerate(zip(widths, layers)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(c, planes, stride, batch_norm, shortcut))
                c = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def _widths(base, width: float) -> tuple[int, ...]:
    return tuple(max(1, int(round(w * width))) for w in base)


def resnet18(*, num_classes: int, input_shape: tuple[int, ...], width: float = 1.0, batch_norm: bool = True,
             stem: str = "cifar") -> ResNet:
    channels = image_shape("resnet18" if stem == "cifar" else "resnet18_imagenet", input_shape)[0]
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels=channels, num_classes=num_classes,
                  widths=_widths((64, 128, 256, 512), width), batch_norm=batch_norm, stem=stem)


def resnet50(*, num_classes: int, input_shape: tuple[int, ...], width: float = 1.0, batch_norm: bool = True,
             stem: str = "cifar") -> ResNet:
    channels = image_shape("resnet50" if stem == "cifar" else "resnet50_imagenet", input_shape)[0]
    return ResNet(Bottleneck, (3, 4, 6, 3), in_channels=channels, num_classes=num_classes,
                  widths=_widths((64, 128, 256, 512), width), batch_norm=batch_norm, stem=stem)


def resnet20(*, num_classes: int, input_shape: tuple[int, ...], width: float = 1.0, batch_norm: bool = True) -> ResNet:
    return ResNet(BasicBlock, (3, 3, 3), in_channels=image_shape("resnet20", input_shape)[0], num_classes=num_classes,
                  widths=_widths((16, 32, 64), width), batch_norm=batch_norm, stem="cifar", shortcut="pad")
