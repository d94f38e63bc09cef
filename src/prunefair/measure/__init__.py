"""Per-group evaluation (counts and sums) and the disparity measures, as pure functions."""

from prunefair.measure.disparity import (
    PruningImpact, accuracy_drop, accuracy_gap, excess_accuracy_gap, excess_loss, excess_loss_disparity,
    normalized_accuracy, pairwise_excess_accuracy_gap, pruning_impact,
)
from prunefair.measure.evaluate import evaluate_groups
from prunefair.measure.group_stats import GroupStats, batch_group_sums

__all__ = [
    "GroupStats", "PruningImpact", "accuracy_drop", "accuracy_gap", "batch_group_sums", "evaluate_groups",
    "excess_accuracy_gap", "excess_loss", "excess_loss_disparity", "normalized_accuracy",
    "pairwise_excess_accuracy_gap", "pruning_impact",
]
