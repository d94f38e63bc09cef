"""Per-group counts and sums: exact under batching and across processes (never average averages)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from prunefair.models import check_logits


def batch_group_sums(logits: torch.Tensor, y: torch.Tensor, g: torch.Tensor, num_groups: int) -> torch.Tensor:
    """(3, G) float64 tensor of per-group [count, correct, summed cross-entropy] for one batch."""
    check_logits(logits, len(y))
    # in float32 at least (bf16/fp16 logits promoted), float64 logits as they are
    loss = F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), y, reduction="none").double()
    # a sample whose loss is NaN (NaN logits, or +inf ones: overflowing weights) has no prediction: wrong, not the
    # class argmax happens to pick (torch ranks NaN highest and breaks ties by the first, so such samples once
    # counted as correct for class 0); its NaN loss shows in the group's loss
    correct = ((logits.argmax(1) == y) & ~loss.isnan()).double()
    out = torch.zeros(3, num_groups, dtype=torch.float64, device=logits.device)
    out[0].index_add_(0, g, torch.ones_like(loss))
    out[1].index_add_(0, g, correct)
    out[2].index_add_(0, g, loss)
    return out


def per_group(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """total / count per group, NaN for a group without samples (one division: equal ratios are equal floats)."""
    count = np.asarray(count)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.asarray(total) / np.maximum(count, 1), np.nan)


@dataclass(frozen=True)
class GroupStats:
    """Counts and sums per group; accuracy and mean loss derive from them.

    Checked when made: one name, count, correct and loss_sum per group (lists are fine: kept as numpy arrays),
    whole counts with 0 <= correct <= count; a ValueError names the first value that breaks a rule."""

    group_names: tuple[str, ...]
    count: np.ndarray
    correct: np.ndarray
    loss_sum: np.ndarray

    def __post_init__(self) -> None:
        if isinstance(self.group_names, (str, bytes)):
            raise TypeError(f"GroupStats: group_names is a sequence of names, one per group, got the string "
                            f"{self.group_names!r}")
        names = tuple(self.group_names)
        arrays = {}
        for key in ("count", "correct", "loss_sum"):
            v = np.asarray(getattr(self, key), dtype=np.float64)
            if v.shape != (len(names),):
                raise ValueError(f"GroupStats: {key} has shape {v.shape}; one value per group is "
                                 f"({len(names)},) for group_names {list(names)}")
            arrays[key] = v
        for key in ("count", "correct"):
            v = arrays[key]
            bad = np.flatnonzero(~np.isfinite(v) | (v < 0) | (v != np.round(v)))
            if len(bad):
                a = int(bad[0])
                raise ValueError(f"GroupStats: {key} of group {names[a]!r} is {v[a]:g}; counts are whole numbers >= 0")
            arrays[key] = v.astype(np.int64)
        over = np.flatnonzero(arrays["correct"] > arrays["count"])
        if len(over):
            a = int(over[0])
            raise ValueError(f"GroupStats: group {names[a]!r} has {arrays['correct'][a]} correct of "
                             f"{arrays['count'][a]} samples; correct cannot exceed count")
        object.__setattr__(self, "group_names", names)
        for key, v in arrays.items():
            object.__setattr__(self, key, v)

    @classmethod
    def from_sums(cls, sums: torch.Tensor | np.ndarray, group_names) -> "GroupStats":
        s = np.asarray(sums.cpu() if isinstance(sums, torch.Tensor) else sums, dtype=np.float64)
        return cls(tuple(group_names), s[0].round().astype(np.int64), s[1].round().astype(np.int64), s[2])

    @property
    def accuracy(self) -> np.ndarray:
        return per_group(self.correct, self.count)

    @property
    def loss(self) -> np.ndarray:
        return per_group(self.loss_sum, self.count)

    @property
    def overall_accuracy(self) -> float:
        """Over all samples; NaN when there are none (not 0: nothing was measured)."""
        n = int(self.count.sum())
        return float(self.correct.sum() / n) if n else float("nan")

    @property
    def overall_loss(self) -> float:
        """Mean loss over all samples; NaN when there are none."""
        n = int(self.count.sum())
        return float(self.loss_sum.sum() / n) if n else float("nan")

    def __add__(self, other: "GroupStats") -> "GroupStats":
        if not isinstance(other, GroupStats):
            return NotImplemented
        if self.group_names != other.group_names:
            raise ValueError(f"cannot add GroupStats over different groups ({list(self.group_names)} and "
                             f"{list(other.group_names)})")
        return GroupStats(self.group_names, self.count + other.count, self.correct + other.correct,
                          self.loss_sum + other.loss_sum)

    def to_dict(self) -> dict:
        return {
            "group_names": list(self.group_names),
            "count": self.count.tolist(),
            "correct": self.correct.tolist(),
            "loss_sum": self.loss_sum.tolist(),
            "accuracy": [None if np.isnan(v) else float(v) for v in self.accuracy],
            "loss": [None if np.isnan(v) else float(v) for v in self.loss],
            "overall_accuracy": None if np.isnan(self.overall_accuracy) else self.overall_accuracy,
            "overall_loss": None if np.isnan(self.overall_loss) else self.overall_loss,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "GroupStats":
        return cls(tuple(d["group_names"]), np.asarray(d["count"], dtype=np.int64),
                   np.asarray(d["correct"], dtype=np.int64), np.asarray(d["loss_sum"], dtype=np.float64))
