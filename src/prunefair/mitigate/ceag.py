"""CEAG, Balancing Act (Hashemizadeh, Ramirez et al., ICLR 2024): constrained excess accuracy gaps.

    min_theta J(theta)  s.t.  psi_a = Delta_a - Delta <= eps for every group a

Each mini-batch:
1. push the batch's per-sample correctness bits into per-group replay buffers (last k = 40);
2. dual step first: psi_a is estimated from the buffers (sparse accuracies) and the dense model's
   accuracies on the training set, for groups whose buffer is full only;
   lambda_a = max(0, lambda_a + eta (psi_a - eps));
3. primal step on J + sum_a lambda_a [(J_a - J_a^dense) - (J - J^dense)] (the loss surrogate of psi_a,
   J_a and J batch means, J_a^dense and J^dense precomputed on the training set; absent groups add nothing).

The sparse overall accuracy in psi_a is the share-weighted mean of the full buffers, and the dense one the
same weighting of the dense per-group accuracies, so that both sides of Delta use the same groups.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from prunefair.measure import GroupStats
from prunefair.mitigate.base import MitigationObjective, group_means
from prunefair.mitigate.duals import DualAscent
from prunefair.mitigate.replay import GroupReplayBuffer


class CEAG(MitigationObjective):
    name = "ceag"
    dual_lr_key = "ceag_dual_lr"

    def __init__(self, *, num_groups: int, dense_train: GroupStats, eps: float = 0.01, dual_lr: float = 0.01,
                 buffer_size: int = 40, **kw) -> None:
        super().__init__(num_groups=num_groups, **kw)
        count = np.asarray(dense_train.count, float)
        self.shares = torch.as_tensor(count / max(count.sum(), 1.0), dtype=torch.float64)
        self.dense_acc = torch.as_tensor(np.nan_to_num(dense_train.accuracy), dtype=torch.float64)
        # float64, cast to the loss's dtype per batch: float32 here rounded a float64 run's surrogate (by ~1e-8)
        self.dense_loss = torch.as_tensor(np.nan_to_num(dense_train.loss), dtype=torch.float64)
        self.dense_overall_loss = float(dense_train.overall_loss)
        self.eps = eps
        self.duals = DualAscent(num_groups, dual_lr, nonnegative=True)
        self.buffer = GroupReplayBuffer(num_groups, buffer_size)
        self._reset_epoch()

    def psi_estimate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """psi_a from the buffers (NaN where not full) and the mask of full buffers."""
        acc, full = self.buffer.means(), self.buffer.full
        if not full.any():
            return torch.full((self.num_groups,), float("nan"), dtype=torch.float64), full
        w = torch.where(full, self.shares, torch.zeros_like(self.shares))
        w = w / w.sum()
        sparse_overall = (w * torch.nan_to_num(acc)).sum()
        dense_overall = (w * self.dense_acc).sum()
        psi = (self.dense_acc - acc) - (dense_overall - sparse_overall)
        return psi, full

    def batch_loss(self, logits, y, g):
        correct = (logits.detach().argmax(1) == y).double()
        self.buffer.push(correct, g)
        psi, full = self.psi_estimate()
        viol = psi - self.eps
        self.duals.step(viol, full)                                       # dual step first
        self.viol_sum += torch.where(full, viol, torch.zeros_like(viol))
        self.viol_n += full.double()
        losses = F.cross_entropy(logits, y, reduction="none")
        j = losses.mean()
        j_a, present = group_means(losses, g, self.num_groups)
        dense_a = self.dense_loss.to(losses.device, losses.dtype)
        surrogate = (j_a - dense_a) - (j - self.dense_overall_loss)
        lam = self.duals.weights(losses.device, losses.dtype)
        return j + (lam * torch.where(present, surrogate, torch.zeros_like(surrogate))).sum()

    def method_log(self, epoch: int) -> dict:
        return self.dual_log()
