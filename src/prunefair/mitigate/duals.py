"""A small dual-ascent module: Lagrange multipliers with projected (or free) gradient ascent.

Why not cooper-optim 1.0.1: its optimizers own the primal step (``roll`` computes the CMP state, steps the
primal and dual optimizers together), while prunefair's ``fit`` owns the SGD step and the pruning masks,
and EL takes its dual step once per epoch from the epoch's mean violation. Wrapping cooper would mean
bypassing its optimizers; the semantics we need fit in a few lines instead:

    lambda_a <- lambda_a + lr * v_a            for every group a with an observation (``present``)
    lambda_a <- max(0, lambda_a)               when ``nonnegative`` (inequality constraints)

Groups without an observation keep their multiplier. Multipliers are plain tensors, detached from autograd.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class DualAscent:
    """Multipliers of ``num_constraints`` constraints, updated by ``step(violation)``."""

    num_constraints: int
    lr: float
    nonnegative: bool = True
    init: float = 0.0
    multipliers: torch.Tensor = field(init=False)
    steps: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.lr < 0:
            raise ValueError(f"dual step size must be >= 0, got {self.lr}")
        if self.nonnegative and self.init < 0:
            raise ValueError(f"initial multiplier {self.init} < 0 for non-negative multipliers")
        self.multipliers = torch.full((self.num_constraints,), float(self.init), dtype=torch.float64)

    def step(self, violation, present=None) -> torch.Tensor:
        """Ascent step on the multipliers from ``violation`` (one value per constraint)."""
        v = torch.as_tensor(violation, dtype=torch.float64).detach().cpu().reshape(-1)
        if v.numel() != self.num_constraints:
            raise ValueError(f"expected {self.num_constraints} violations, got {v.numel()}")
        mask = torch.ones_like(v, dtype=torch.bool) if present is None else \
            torch.as_tensor(present, dtype=torch.bool).cpu().reshape(-1)
        mask = mask & torch.isfinite(v)
        new = self.multipliers + self.lr * torch.where(mask, v, torch.zeros_like(v))
        if self.nonnegative:
            new = new.clamp_min(0.0)
        self.multipliers = new
        self.steps += 1
        return self.multipliers

    def weights(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """The multipliers as a constant tensor for the primal loss."""
        return self.multipliers.to(device=device, dtype=dtype)

    def tolist(self) -> list[float]:
        return [float(v) for v in self.multipliers]
