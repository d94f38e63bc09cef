"""Mitigation: fine-tuning objectives that bound what each group pays for pruning.

NFT (plain fine-tuning), EL and EL+RB (the paper's equal-loss constraints), CEAG (Balancing Act) and VKD
(ours: validation-estimated duals with distillation from the dense model), on a small dual-ascent module.
"""

from prunefair.mitigate.base import MitigationObjective, select_epoch
from prunefair.mitigate.ceag import CEAG
from prunefair.mitigate.duals import DualAscent
from prunefair.mitigate.equal_loss import EqualLoss, EqualLossReplay
from prunefair.mitigate.registry import METHODS, MitigateOptions, method_options, objective_for
from prunefair.mitigate.replay import GroupReplayBuffer
from prunefair.mitigate.vkd import ValidationDistillation, distillation_losses

__all__ = [
    "CEAG", "DualAscent", "EqualLoss", "EqualLossReplay", "GroupReplayBuffer", "METHODS", "MitigateOptions",
    "MitigationObjective", "ValidationDistillation", "distillation_losses", "method_options", "objective_for",
    "select_epoch",
]
