"""Hutchinson's estimator of tr(H): the mean of v^T H v over Rademacher vectors v, with its standard error."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from prunefair.diagnostics.eigen import _PRODUCT, NotFiniteError


@dataclass(frozen=True)
class TraceEstimate:
    value: float
    stderr: float  # sample std of v^T H v / sqrt(samples)
    samples: int
    seed: int

    def to_dict(self) -> dict:
        return asdict(self)


def hutchinson_trace(matvec: Callable[[torch.Tensor], torch.Tensor], dim: int, *, samples: int = 30,
                     seed: int = 0, device="cpu", dtype=torch.float32) -> TraceEstimate:
    """Unbiased estimate of the trace of a symmetric operator from ``samples`` Rademacher products."""
    if samples < 2:
        raise ValueError(f"Hutchinson needs at least 2 samples for a standard error, got {samples}")
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(samples):
        v = (torch.randint(0, 2, (dim,), generator=g) * 2 - 1).to(device=device, dtype=dtype)
        vals.append(float(v @ matvec(v)))
        if not math.isfinite(vals[-1]):
            raise NotFiniteError(_PRODUCT.format("Hessian-vector product", f"v^T H v = {vals[-1]}"))
    t = torch.tensor(vals, dtype=torch.float64)
    return TraceEstimate(float(t.mean()), float(t.std(unbiased=True)) / math.sqrt(samples), samples, seed)
