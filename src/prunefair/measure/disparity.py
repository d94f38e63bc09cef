"""The disparity measures of Tran et al. (2022) and Balancing Act (README, "A worked example"), as pure functions
of per-group accuracies and losses.

Notation: acc_a and J_a per group for the dense model (theta*) and the pruned model (theta_bar).
Groups with no samples are NaN and are ignored by the max/min measures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from prunefair.measure.group_stats import GroupStats, per_group


def excess_loss(dense_loss: np.ndarray, pruned_loss: np.ndarray) -> np.ndarray:
    """R(a) = J(theta_bar; D_a) - J(theta*; D_a)."""
    return np.asarray(pruned_loss, float) - np.asarray(dense_loss, float)


def excess_loss_disparity(r: np.ndarray) -> float:
    """xi = max_{a,a'} |R(a) - R(a')| = max R - min R."""
    return float(np.nanmax(r) - np.nanmin(r))


def accuracy_gap(acc: np.ndarray) -> float:
    """max_a acc_a - min_a acc_a."""
    return float(np.nanmax(acc) - np.nanmin(acc))


def accuracy_drop(dense_acc: np.ndarray, pruned_acc: np.ndarray) -> np.ndarray:
    """Delta_a = acc_a(dense) - acc_a(pruned)."""
    return np.asarray(dense_acc, float) - np.asarray(pruned_acc, float)


def excess_accuracy_gap(delta_a: np.ndarray, delta: float) -> np.ndarray:
    """psi_a = Delta_a - Delta (Balancing Act)."""
    return np.asarray(delta_a, float) - float(delta)


def pairwise_excess_accuracy_gap(psi: np.ndarray) -> float:
    """Psi_PW = max_a psi_a - min_a psi_a."""
    return float(np.nanmax(psi) - np.nanmin(psi))


def normalized_accuracy(dense_acc: np.ndarray, pruned_acc: np.ndarray) -> np.ndarray:
    """acc_a(pruned) / acc_a(dense)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(pruned_acc, float) / np.asarray(dense_acc, float)


@dataclass(frozen=True)
class PruningImpact:
    """Dense vs pruned on one split: ``by_group`` (a row per group id 0..G-1, its name in the ``group`` column)
    and every disparity measure in ``measures``. In the spirit of Fairlearn's MetricFrame, not its interface:
    ``difference(column)`` names a ``by_group`` column and returns one float (max - min across groups)."""

    dense: GroupStats
    pruned: GroupStats
    by_group: pd.DataFrame = field(repr=False)
    measures: dict[str, float]

    def difference(self, column: str = "acc_pruned") -> float:
        """max - min of a by_group column across groups."""
        numeric = [c for c in self.by_group.columns if c != "group"]
        if column not in numeric:
            raise KeyError(f"difference: no numeric by_group column {column!r}; allowed: {', '.join(numeric)}")
        return float(self.by_group[column].max() - self.by_group[column].min())


def pruning_impact(dense: GroupStats, pruned: GroupStats) -> PruningImpact:
    """Compare per-group stats of a dense and a pruned model on the same data (the same groups, in the same
    order, with the same sample counts; anything else is an error, not a silent pairing)."""
    if tuple(dense.group_names) != tuple(pruned.group_names):
        raise ValueError(f"pruning_impact: dense and pruned stats cover different groups (dense "
                         f"{list(dense.group_names)}, pruned {list(pruned.group_names)}); evaluate both on the same data")
    if not np.array_equal(np.asarray(dense.count), np.asarray(pruned.count)):
        raise ValueError(f"pruning_impact: dense and pruned stats count different samples per group (dense "
                         f"{np.asarray(dense.count).tolist()}, pruned {np.asarray(pruned.count).tolist()}); "
                         "evaluate both on the same data")
    acc_d, acc_p = dense.accuracy, pruned.accuracy
    r = excess_loss(dense.loss, pruned.loss)
    # the drops from the counts, (c_dense - c_pruned) / n: one rounding, so equal drops are equal floats
    # (acc_dense - acc_pruned gives 0.3, 0.29999999999999993 and 0.30000000000000004 for 3 of 10)
    delta_a = per_group(np.asarray(dense.correct) - np.asarray(pruned.correct), dense.count)
    total = int(np.sum(dense.count))
    delta = (int(np.sum(dense.correct)) - int(np.sum(pruned.correct))) / total if total else math.nan
    psi = excess_accuracy_gap(delta_a, delta)
    by_group = pd.DataFrame({
        "group": list(dense.group_names),
        "n": dense.count,
        "acc_dense": acc_d,
        "acc_pruned": acc_p,
        "loss_dense": dense.loss,
        "loss_pruned": pruned.loss,
        "accuracy_drop": delta_a,
        "excess_loss": r,
        "psi": psi,
        "normalized_accuracy": normalized_accuracy(acc_d, acc_p),
    })
    measures = {
        "acc_dense": dense.overall_accuracy,
        "acc_pruned": pruned.overall_accuracy,
        "loss_dense": dense.overall_loss,
        "loss_pruned": pruned.overall_loss,
        "accuracy_drop": delta,
        "xi": excess_loss_disparity(r),
        "accuracy_gap_dense": accuracy_gap(acc_d),
        "accuracy_gap_pruned": accuracy_gap(acc_p),
        "max_psi": float(np.nanmax(psi)),
        "psi_pw": pairwise_excess_accuracy_gap(psi),
    }
    return PruningImpact(dense, pruned, by_group, measures)
