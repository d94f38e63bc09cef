"""Common machinery of the fine-tuning objectives: per-group batch losses, validation tracking and
model selection on the validation split (never on test).

Every epoch the model is evaluated on the validation split; its accuracy, max psi (against the dense
model's validation accuracies) and max |J_a - J| are logged with the method's own multipliers and
violations. ``finish(model)`` loads the epoch chosen by ``selection``:

- ``last``: the last epoch (no selection);
- ``val_accuracy``: the epoch of highest validation accuracy;
- ``val_max_psi``: among the epochs whose validation accuracy is within ``tolerance`` of the best one,
  the one of lowest validation max psi (ties: higher accuracy, then earlier epoch).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from prunefair.data import GroupedData
from prunefair.measure import GroupStats, evaluate_groups, pruning_impact
from prunefair.train.objective import Objective

SELECTIONS = ("last", "val_accuracy", "val_max_psi")


def group_means(values: torch.Tensor, g: torch.Tensor, num_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group means of per-sample ``values`` (differentiable) and the mask of groups present."""
    counts = torch.zeros(num_groups, dtype=values.dtype, device=values.device).index_add_(
        0, g, torch.ones_like(values))
    sums = torch.zeros(num_groups, dtype=values.dtype, device=values.device).index_add_(0, g, values)
    present = counts > 0
    return sums / counts.clamp_min(1), present


def select_epoch(records: list[dict], selection: str, tolerance: float, first: int = 0) -> int:
    """Index of the chosen epoch in ``records`` (each with val_accuracy and val_max_psi), among ``records[first:]``
    (the epochs at the final mask under a gradual or iterative schedule)."""
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; allowed: {', '.join(SELECTIONS)}")
    if tolerance < 0:
        raise ValueError(f"selection tolerance must be >= 0, got {tolerance}")
    first = min(max(first, 0), max(len(records) - 1, 0))
    if selection == "last" or not records:
        return len(records) - 1
    acc = np.array([r["val_accuracy"] for r in records[first:]], float)
    if selection == "val_accuracy":
        return first + int(np.argmax(acc))
    psi = np.array([r["val_max_psi"] for r in records[first:]], float)
    ok = np.flatnonzero(acc >= acc.max() - tolerance)
    order = sorted(ok, key=lambda i: (psi[i], -acc[i], i))
    return first + int(order[0])


class MitigationObjective(Objective):
    """Base of NFT, EL, EL+RB, CEAG and VKD: tracks validation metrics and keeps every epoch's state."""

    name = "nft"
    dual_lr_key: str | None = None  # the [mitigate] key of the method's dual step size (None: no duals)

    def __init__(self, *, num_groups: int, val: GroupedData | None = None, dense_val: GroupStats | None = None,
                 selection: str = "last", tolerance: float = 0.01, eval_batch_size: int = 512,
                 channels_last: bool = False) -> None:
        if selection not in SELECTIONS:
            raise ValueError(f"unknown selection {selection!r}; allowed: {', '.join(SELECTIONS)}")
        if selection != "last" and (val is None or dense_val is None):
            raise ValueError(f"selection {selection!r} needs a validation split (data.val_fraction > 0)")
        self.num_groups = num_groups
        self.val, self.dense_val = val, dense_val
        self.selection, self.tolerance = selection, tolerance
        self.eval_batch_size, self.channels_last = eval_batch_size, channels_last
        self.model = None
        self.device = "cpu"
        self.records: list[dict] = []
        self.states: list[dict | None] = []  # per epoch: its weights, None where it cannot be selected
        self.selected_epoch: int | None = None
        self.eligible_from = 0  # the first epoch (index into records) at the final mask

    # -- hooks of fit --------------------------------------------------------------------------
    def start(self, *, model, data, device) -> None:
        self.model, self.device = model, device

    def batch_loss(self, logits, y, g):
        return F.cross_entropy(logits, y)

    def method_log(self, epoch: int) -> dict:
        """Multipliers and violations of the method (and its end-of-epoch dual step)."""
        return {}

    def dual_step_setting(self) -> str | None:
        """The dual step size as the study file sets it (``mitigate.ceag_dual_lr=0.01``), for the advice of a
        diverged run (train.loop.divergence_advice); None for a method without duals."""
        if self.dual_lr_key is None or not self.duals.lr:  # no step, or a step of 0: not a cause
            return None
        return f"mitigate.{self.dual_lr_key}={self.duals.lr}"

    # -- per-epoch violation bookkeeping shared by the Lagrangian methods --------------------------
    def _reset_epoch(self) -> None:
        self.viol_sum = torch.zeros(self.num_groups, dtype=torch.float64)
        self.viol_n = torch.zeros(self.num_groups, dtype=torch.float64)

    def epoch_violations(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean violation per group over the epoch's steps, groups seen at least once)."""
        return self.viol_sum / self.viol_n.clamp_min(1), self.viol_n > 0

    def dual_log(self) -> dict:
        """The multipliers and the epoch's mean violations (None for unseen groups); starts a new epoch."""
        mean_viol, present = self.epoch_violations()
        out = {"multipliers": self.duals.tolist(),
               "violations": [float(v) if p else None for v, p in zip(mean_viol, present)]}
        self._reset_epoch()
        return out

    def end_epoch(self, epoch: int) -> dict:
        record = dict(self.method_log(epoch))
        if self.val is not None and len(self.val) and self.dense_val is not None:
            stats = self.evaluate_val()
            impact = pruning_impact(self.dense_val, stats)
            loss = stats.loss
            record.update({"val_accuracy": stats.overall_accuracy, "val_max_psi": impact.measures["max_psi"],
                           "val_loss_gap": float(np.nanmax(np.abs(loss - stats.overall_loss)))})
            self.after_val(stats, impact)
        self.records.append(record)
        if self.selection != "last":
            eligible = len(self.records) - 1 >= self.eligible_from  # an epoch before the final mask is never loaded
            self.states.append({k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
                               if eligible else None)
        return record

    def final_mask_from(self, epochs_done: int) -> None:
        self.eligible_from = epochs_done

    def after_val(self, stats: GroupStats, impact) -> None:
        """Hook for methods that use the validation evaluation (VKD's dual step)."""

    def evaluate_val(self) -> GroupStats:
        return evaluate_groups(self.model, self.val, batch_size=self.eval_batch_size, device=self.device,
                               channels_last=self.channels_last)

    def finish(self, model) -> dict:
        """Load the selected epoch into ``model``; return what to store with the cell. ``selected_epoch`` is the
        1-based position in the cell's history (which runs on across the rounds of an iterative schedule)."""
        i = select_epoch(self.records, self.selection, self.tolerance, self.eligible_from)
        if self.selection != "last" and self.states:
            model.load_state_dict(self.states[i])
        self.states = []
        self.selected_epoch = i + 1
        return {"method": self.name, "selection": self.selection, "selected_epoch": i + 1}


def dense_group_stats(dense_model, data: GroupedData, *, device, batch_size: int = 512,
                      channels_last: bool = False) -> GroupStats:
    return evaluate_groups(dense_model, data, batch_size=batch_size, device=device,
                           channels_last=channels_last)
