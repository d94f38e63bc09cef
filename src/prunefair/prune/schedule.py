"""Pruning schedules: when the mask grows and to what sparsity.

- gradual: the cubic schedule of Zhu and Gupta (2017), s_t = s_f + (s_i - s_f)(1 - (t - t0)/(t1 - t0))^3 for
  epochs t0 <= t <= t1 (dense before t0, s_f after t1), applied at the start of each epoch through the
  training loop's ``on_epoch_start`` hook (``GradualPruner``);
- iterative: R rounds of prune-and-fine-tune, each removing the same fraction of the weights still there,
  s_r = 1 - (1 - s_f)^(r/R) (Han et al. 2015; Frankle and Carbin 2019), the last round exactly s_f.

Masks are nested: the pruning function receives the previous mask and a weight pruned once stays pruned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from prunefair.prune.masks import MaskSet

PruneFn = Callable[[nn.Module, float, "MaskSet | None"], MaskSet]


def cubic_sparsity(epoch: int, *, final: float, end_epoch: int, initial: float = 0.0, start_epoch: int = 0) -> float:
    """Target sparsity at the start of ``epoch`` (0-based) under the cubic schedule."""
    if not 0.0 <= initial <= final < 1.0:
        raise ValueError(f"the gradual schedule needs 0 <= initial ({initial}) <= final ({final}) < 1")
    if end_epoch <= start_epoch:
        raise ValueError(f"the gradual schedule needs start_epoch ({start_epoch}) < end_epoch ({end_epoch})")
    if epoch < start_epoch:
        return 0.0
    if epoch >= end_epoch:
        return final
    t = (epoch - start_epoch) / (end_epoch - start_epoch)
    return final + (initial - final) * (1.0 - t) ** 3


def iterative_rates(final: float, rounds: int) -> list[float]:
    """The sparsity after each of ``rounds`` prune-and-fine-tune rounds (the last is ``final``)."""
    if rounds < 1:
        raise ValueError(f"iterative pruning needs rounds >= 1, got {rounds}")
    if not 0.0 <= final < 1.0:
        raise ValueError(f"pruning rate must be in [0, 1), got {final}")
    rates = [1.0 - (1.0 - final) ** (r / rounds) for r in range(1, rounds + 1)]
    rates[-1] = final
    return rates


@dataclass
class GradualPruner:
    """An ``on_epoch_start(epoch, model)`` hook for the training loop: a new mask when the target grows.

    ``prune(model, rate, previous)`` computes the mask (for example a ``make_masks`` partial);
    ``log`` keeps (epoch, target sparsity, achieved sparsity) for every mask it made.
    """

    prune: PruneFn
    final: float
    end_epoch: int
    initial: float = 0.0
    start_epoch: int = 0
    masks: MaskSet | None = None
    log: list[tuple[int, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        cubic_sparsity(0, final=self.final, end_epoch=self.end_epoch, initial=self.initial,
                       start_epoch=self.start_epoch)  # validates

    def target(self, epoch: int) -> float:
        return cubic_sparsity(epoch, final=self.final, end_epoch=self.end_epoch, initial=self.initial,
                              start_epoch=self.start_epoch)

    def __call__(self, epoch: int, model: nn.Module) -> MaskSet | None:
        s = self.target(epoch)
        if self.log and s == self.log[-1][1]:
            return None
        if not self.log and s == 0.0:
            return None
        self.masks = self.prune(model, s, self.masks)
        self.log.append((epoch, s, self.masks.sparsity))
        return self.masks
