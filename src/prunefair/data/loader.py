"""Mini-batches from a GroupedData held in (device) memory, with optional tensor augmentation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from prunefair.data.base import GroupedData


@dataclass(frozen=True)
class Augment:
    """Random crop with zero padding and horizontal flip, applied to a float batch on its device."""

    crop_padding: int = 0
    flip: bool = False

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.flip

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if x.dim() != 4 or not self.active:
            return x
        n, _, h, w = x.shape
        dev = x.device
        if self.flip:
            flip = torch.rand(n, generator=generator) < 0.5
            x = torch.where(flip.to(dev).view(n, 1, 1, 1), x.flip(3), x)
        p = self.crop_padding
        if p > 0:
            padded = torch.nn.functional.pad(x, (p, p, p, p))
            dy = torch.randint(0, 2 * p + 1, (n,), generator=generator).to(dev)
            dx = torch.randint(0, 2 * p + 1, (n,), generator=generator).to(dev)
            rows = (dy.view(n, 1) + torch.arange(h, device=dev).view(1, h))  # (n, h)
            cols = (dx.view(n, 1) + torch.arange(w, device=dev).view(1, w))  # (n, w)
            idx_r = rows.view(n, 1, h, 1).expand(n, x.shape[1], h, w + 2 * p)
            x = padded.gather(2, idx_r)
            idx_c = cols.view(n, 1, 1, w).expand(n, x.shape[1], h, w)
            x = x.gather(3, idx_c)
        return x


def iterate_batches(
    data: GroupedData,
    *,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    augment: Augment | None = None,
    channels_last: bool = False,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield (x, y, g) batches; x is float, normalised, on ``device``. Every sample appears once."""
    n = len(data)
    if shuffle:
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.arange(n)
    stop = n - (n % batch_size) if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        if data.x.device != torch.device("cpu"):
            idx_d = idx.to(data.x.device)
        else:
            idx_d = idx
        x = data.to_float(data.x[idx_d].to(device, non_blocking=True))
        if augment is not None and augment.active:
            x = augment(x, generator if generator is not None else torch.default_generator)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, data.y[idx_d].to(device, non_blocking=True), data.g[idx_d].to(device, non_blocking=True)
