"""VKD (ours): validation-estimated duals with distillation from the dense model.

Why: EL and CEAG estimate their constraints on the training set. A pruned network fine-tuned on the
training set drives its training losses (and training accuracies) of every group towards their minimum,
so the train-side constraints are met while the generalisation gaps, which differ by group, decide psi_a
on unseen data. Two changes address that:

1. Distillation from the dense model. psi_a measures how much group a's accuracy moved away from the
   dense model's; the most direct target for psi_a = 0 is to reproduce the dense model's predictions, not
   the labels. Theorem 1 bounds R(a) by ||g_a|| ||theta_bar - theta*|| + lambda(H_a) ||.||^2 / 2: groups
   with large gradient norm or curvature pay more for the same parameter distance. Distillation
   penalises the function-space distance sample by sample (it is the second-order expansion of the
   Hessian-weighted distance around the teacher), so high-curvature groups are pulled back most.
   Per sample: l_i = (1 - alpha) CE(z_i, y_i) + alpha T^2 KL(softmax(z*_i / T) || softmax(z_i / T)).
2. Duals estimated on the held-out validation split. Once per epoch the model is evaluated on the
   validation split and lambda_a = max(0, lambda_a + eta (psi_a^val - eps)); the batch loss weights each
   sample by 1 + lambda_{a_i} (normalised by the weights' sum). A group whose validation accuracy fell
   more than the average gains weight, which the training-set estimate cannot see once the group's
   training accuracy saturates. With ``val_every = k`` > 0 the dual step is also taken after every k
   mini-batches since the last one (an extra validation pass each time; the epoch's end counts as one, so k equal
   to the batches of an epoch adds none). The test split is never used.

The dense teacher's logits are computed per batch from the inputs the model sees (captured by a forward
pre-hook, removed in ``finish``), with the dense model in eval mode and no gradient.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from prunefair.measure import pruning_impact
from prunefair.mitigate.base import MitigationObjective
from prunefair.mitigate.duals import DualAscent
from prunefair.mitigate.settings import checked_options
from prunefair.models.modes import module_modes, restore_modes
from prunefair.train.loop import loss_precision


def distillation_losses(logits: torch.Tensor, teacher: torch.Tensor, y: torch.Tensor, *, alpha: float,
                        temperature: float) -> torch.Tensor:
    """Per-sample (1 - alpha) CE + alpha T^2 KL(teacher_T || student_T)."""
    ce = F.cross_entropy(logits, y, reduction="none")
    t = temperature
    log_p = F.log_softmax(logits / t, dim=1)
    log_q = F.log_softmax(teacher / t, dim=1)
    kl = (log_q.exp() * (log_q - log_p)).sum(1)
    return (1 - alpha) * ce + alpha * t * t * kl


class ValidationDistillation(MitigationObjective):
    name = "vkd"
    dual_lr_key = "vkd_dual_lr"

    def __init__(self, *, num_groups: int, dense_model, alpha: float = 0.5, temperature: float = 2.0,
                 eps: float = 0.01, dual_lr: float = 2.0, val_every: int = 0, **kw) -> None:
        super().__init__(num_groups=num_groups, **kw)
        if self.val is None or not len(self.val):
            raise ValueError("vkd needs a validation split (data.val_fraction > 0)")
        # the study file's rules (built directly, alpha = 2 weighted the labels' cross-entropy by -1 and
        # temperature = 0 divided by zero, both silently)
        checked_options({"vkd_alpha": alpha, "vkd_temperature": temperature, "eps": eps})
        self.teacher = dense_model
        self.alpha, self.temperature, self.eps = alpha, temperature, eps
        self.duals = DualAscent(num_groups, dual_lr, nonnegative=True)
        self._inputs = None
        self._hook = None
        self._teacher_modes = None
        self._violation = [None] * num_groups
        self.val_every, self._batches = val_every, 0

    def start(self, *, model, data, device) -> None:
        super().start(model=model, data=data, device=device)
        if self._teacher_modes is None:  # restored in finish: the dense model is the caller's
            self._teacher_modes = module_modes(self.teacher)
        self.teacher.eval()
        if self._hook is None:  # start runs once per fit: an iterative schedule calls fit once per round
            self._hook = model.register_forward_pre_hook(self._capture)

    def _capture(self, module, args):
        if module.training:
            self._inputs = args[0]

    def batch_loss(self, logits, y, g):
        if self._inputs is None or len(self._inputs) != len(y):
            raise RuntimeError("vkd: the batch inputs were not captured (was start() called with this model?)")
        with torch.no_grad():
            teacher = self.teacher(self._inputs.detach())
        self._inputs = None
        logits = loss_precision(logits)  # float64 kept, float16 / bfloat16 up to float32
        teacher = loss_precision(teacher).to(logits.dtype)
        losses = distillation_losses(logits, teacher, y, alpha=self.alpha, temperature=self.temperature)
        if self.val_every and self._batches >= self.val_every:  # k primal steps since the last dual step
            stats = self.evaluate_val()
            self.after_val(stats, pruning_impact(self.dense_val, stats))
        self._batches += 1
        w = 1.0 + self.duals.weights(losses.device, losses.dtype)[g]
        return (w * losses).sum() / w.sum()

    def after_val(self, stats, impact) -> None:
        """The dual step from a validation pass (inside an epoch or at its end); counts k batches from here."""
        self._batches = 0
        psi = impact.by_group["psi"].to_numpy(float)
        present = np.isfinite(psi)
        viol = np.where(present, psi - self.eps, 0.0)
        self.duals.step(torch.as_tensor(viol), torch.as_tensor(present))
        self._violation = [float(v) if p else None for v, p in zip(viol, present)]

    def end_epoch(self, epoch: int) -> dict:
        record = super().end_epoch(epoch)
        record.update({"multipliers": self.duals.tolist(), "violations": list(self._violation)})
        return record

    def finish(self, model) -> dict:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self._teacher_modes is not None:
            restore_modes(self._teacher_modes)
            self._teacher_modes = None
        return super().finish(model)
