"""VGG: Simonyan and Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition", ICLR 2015.

``vgg19`` is the CIFAR-style VGG19 with batch norm used in pruning studies: the 16 3x3 convolutions of
configuration E in five stages (64, 128, 256, 512, 512) with a max-pool after each, global average pooling
and one linear layer (about 20.0M parameters for 10 classes). At 32x32 the last map is 1x1; at 48x48
(UTKFace) and 64x64 global pooling averages the 1x1 or 2x2 map, so the same weights fit every size.
``head="imagenet"`` gives the original classifier (7x7 adaptive pool, 4096-4096 fully connected with
dropout; 143.7M parameters at 1000 classes, the published figure the paper quotes): the registry's
``vgg19_imagenet``, the VGG-19 of Tran et al.'s appendix B.2 (16 convolutions, 3 fully connected layers).
"""

from __future__ import annotations

import torch
from torch import nn

from prunefair.models.shapes import check_image_size, image_shape

# a leaf of torch.fx traces (its shape test would stop symbolic_trace, and with it the fused conv-batch-norm
# Hessian rules, diagnostics/hvp_rules.py)
torch.fx.wrap("check_image_size")

VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


class VGG(nn.Module):
    def __init__(self, cfg=VGG19_CFG, *, in_channels: int = 3, num_classes: int = 10, width: float = 1.0,
                 batch_norm: bool = True, head: str = "cifar"):
        super().__init__()
        if head not in ("cifar", "imagenet"):
            raise ValueError(f"unknown head {head!r}; allowed: cifar, imagenet")
        layers: list[nn.Module] = []
        c = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            out = max(1, int(round(v * width)))
            layers.append(nn.Conv2d(c, out, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU(inplace=True))
            c = out
        self.features = nn.Sequential(*layers)
        self._pools = cfg.count("M")  # each halves the map: inputs under 2**pools pixels a side end at 0x0
        self._label = ("vgg19" if head == "cifar" else "vgg19_imagenet") if tuple(cfg) == VGG19_CFG else "vgg"
        if head == "cifar":
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Linear(c, num_classes)
        else:
            hidden = max(1, int(round(4096 * width)))
            self.pool = nn.AdaptiveAvgPool2d(7)
            self.classifier = nn.Sequential(
                nn.Linear(c * 49, hidden), nn.ReLU(inplace=True), nn.Dropout(),
                nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(), nn.Linear(hidden, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_size(self._label, x, 2 ** self._pools, f"{self._pools} 2x2 max-pools")
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def vgg19(*, num_classes: int, input_shape: tuple[int, ...], width: float = 1.0, batch_norm: bool = True,
          head: str = "cifar") -> VGG:
    channels, _, _ = image_shape("vgg19" if head == "cifar" else "vgg19_imagenet", input_shape)
    return VGG(VGG19_CFG, in_channels=channels, num_classes=num_classes, width=width,
               batch_norm=batch_norm, head=head)
