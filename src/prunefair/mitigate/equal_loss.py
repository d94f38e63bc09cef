"""EL, the paper's equal-loss fine-tuning (Tran et al. 2022, Lagrangian dual framework of Fioretto et al.).

    min_theta J(theta)  s.t.  J_a(theta) = J(theta) for every group a
    L(theta, lambda) = J + sum_a lambda_a |J_a - J|,   lambda = 0 at the start

Primal: SGD on L for the batch (J and J_a are batch means; a group absent from the batch adds nothing).
Dual: lambda_a += s |J_a - J| with s = ``dual_lr`` (0.001), either once per epoch from the epoch's mean
violation (mean over the batches where the group was present; the default) or after every mini-batch.
Multipliers stay non-negative (the violation |.| is non-negative, so they only grow).

EL+RB: the dual estimate of J_a comes from a per-group replay buffer of the last ``buffer_size`` per-sample
losses, J from the same buffers weighted by the training group shares; only full buffers count; the
dual step is taken after every mini-batch (the buffers exist to make a per-batch estimate stable).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from prunefair.mitigate.base import MitigationObjective, group_means
from prunefair.mitigate.duals import DualAscent
from prunefair.mitigate.replay import GroupReplayBuffer


class EqualLoss(MitigationObjective):
    name = "el"
    dual_lr_key = "el_dual_lr"

    def __init__(self, *, num_groups: int, dual_lr: float = 1e-3, dual_update: str = "epoch", **kw) -> None:
        super().__init__(num_groups=num_groups, **kw)
        if dual_update not in ("epoch", "batch"):
            raise ValueError(f"unknown dual_update {dual_update!r}; allowed: epoch, batch")
        self.duals = DualAscent(num_groups, dual_lr, nonnegative=True)
        self.dual_update = dual_update
        self._reset_epoch()

    def lagrangian(self, losses: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(L, per-group |J_a - J| detached, groups present) for per-sample ``losses`` of one batch."""
        j = losses.mean()
        j_a, present = group_means(losses, g, self.num_groups)
        viol = (j_a - j).abs()
        lam = self.duals.weights(losses.device, losses.dtype)
        loss = j + (lam * torch.where(present, viol, torch.zeros_like(viol))).sum()
        return loss, viol.detach().double().cpu(), present.cpu()

    def batch_loss(self, logits, y, g):
        losses = F.cross_entropy(logits, y, reduction="none")
        loss, viol, present = self.lagrangian(losses, g)
        self.viol_sum += torch.where(present, viol, torch.zeros_like(viol))
        self.viol_n += present.double()
        if self.dual_update == "batch":
            self.duals.step(viol, present)
        return loss

    def dual_step_setting(self) -> str | None:
        setting = super().dual_step_setting()
        return None if setting is None else f"{setting} with mitigate.dual_update={self.dual_update!r}"

    def method_log(self, epoch: int) -> dict:
        if self.dual_update == "epoch":
            self.duals.step(*self.epoch_violations())
        return self.dual_log()


class EqualLossReplay(EqualLoss):
    name = "el_rb"

    def __init__(self, *, num_groups: int, group_shares, buffer_size: int = 40, dual_lr: float = 1e-3, **kw):
        kw.pop("dual_update", None)
        super().__init__(num_groups=num_groups, dual_lr=dual_lr, dual_update="batch", **kw)
        self.buffer = GroupReplayBuffer(num_groups, buffer_size)
        self.shares = torch.as_tensor(group_shares, dtype=torch.float64)

    def buffer_violation(self) -> tuple[torch.Tensor, torch.Tensor]:
        """|J_a - J| from the buffers (J = share-weighted mean over full buffers) and the full mask."""
        means, full = self.buffer.means(), self.buffer.full
        if not full.any():
            return torch.zeros(self.num_groups, dtype=torch.float64), full
        w = torch.where(full, self.shares, torch.zeros_like(self.shares))
        j = (w * torch.nan_to_num(means)).sum() / w.sum()
        return (means - j).abs(), full

    def dual_step_setting(self) -> str | None:
        return MitigationObjective.dual_step_setting(self)  # a step every mini-batch: dual_update is not read

    def batch_loss(self, logits, y, g):
        losses = F.cross_entropy(logits, y, reduction="none")
        self.buffer.push(losses, g)
        viol, full = self.buffer_violation()
        self.duals.step(viol, full)
        loss, _, _ = self.lagrangian(losses, g)
        self.viol_sum += torch.where(full, viol, torch.zeros_like(viol))
        self.viol_n += full.double()
        return loss

    def method_log(self, epoch: int) -> dict:
        return self.dual_log()
