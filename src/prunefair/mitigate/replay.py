"""Per-group replay buffers: the last k per-sample values (losses or correctness bits) of each group.

Balancing Act estimates each group's accuracy from the last k = 40 correctness bits of that group and
uses the estimate only once the buffer is full.
"""

from __future__ import annotations

import torch


class GroupReplayBuffer:
    def __init__(self, num_groups: int, size: int) -> None:
        if size < 1:
            raise ValueError(f"buffer size must be >= 1, got {size}")
        self.num_groups, self.size = num_groups, size
        self.values = torch.zeros(num_groups, size, dtype=torch.float64)
        self.count = torch.zeros(num_groups, dtype=torch.long)  # total pushed (may exceed size)

    def push(self, values: torch.Tensor, g: torch.Tensor) -> None:
        """Append ``values`` (one per sample) to the buffer of each sample's group, oldest dropped first."""
        values = values.detach().double().cpu().reshape(-1)
        g = g.detach().cpu().reshape(-1)
        for a in torch.unique(g).tolist():
            v = values[g == a]
            if len(v) >= self.size:
                v = v[-self.size:]
            start = int(self.count[a]) % self.size
            idx = (start + torch.arange(len(v))) % self.size
            self.values[a, idx] = v
            self.count[a] += len(v)

    @property
    def full(self) -> torch.Tensor:
        return self.count >= self.size

    def means(self) -> torch.Tensor:
        """Mean of each group's buffer; NaN where the buffer is not full yet."""
        m = self.values.mean(1)
        return torch.where(self.full, m, torch.full_like(m, float("nan")))
