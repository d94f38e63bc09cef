"""Training and fine-tuning with masks held; objectives plug in for mitigation."""

from prunefair.train.loop import NonFiniteLossError, TrainHistory, TrainSettings, fit, lr_factor
from prunefair.train.objective import ERM, Objective
from prunefair.train.pruned import SCHEDULES, PrunedRun, finetune_pruned

__all__ = ["ERM", "NonFiniteLossError", "Objective", "TrainHistory", "TrainSettings", "fit", "lr_factor",
           "PrunedRun", "SCHEDULES", "finetune_pruned"]
