"""The disparity measures of Tran et al. (2022) and Balancing Act (README, "A worked example"), as pure functions
of per-group accuracies and losses.

Notation: acc_a and J_a per group for the dense model (theta*) and the pruned model (theta_bar). Each function takes
one value per group (a 1-d sequence; two sequences must have the same length). Groups with no samples are NaN and
are ignored by the max/min measures; ``pruning_impact`` ignores only those: a group with samples whose loss is NaN
(NaN logits) makes the loss measures NaN, with a warning naming it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from prunefair.measure.group_stats import GroupStats, per_group


def _per_group(values, name: str) -> np.ndarray:
    """``values`` as a 1-d float array, one value per group; a ValueError naming the argument otherwise."""
    try:
        out = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: one number per group, got {values!r}") from None
    if out.ndim != 1:
        raise ValueError(f"{name}: one number per group (a 1-d sequence), got shape {out.shape}")
    return out


def _paired(dense, pruned, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    d, p = _per_group(dense, names[0]), _per_group(pruned, names[1])
    if d.shape != p.shape:
        raise ValueError(f"{names[0]} has {len(d)} group(s) but {names[1]} has {len(p)}: one value per group in "
                         "each, in the same order")
    return d, p


def _spread(values, name: str) -> float:
    """max - min over the groups that are not NaN; NaN when none is."""
    v = _per_group(values, name)
    if not len(v):
        raise ValueError(f"{name}: no group given")
    v = v[~np.isnan(v)]
    return float(v.max() - v.min()) if len(v) else math.nan


def excess_loss(dense_loss: np.ndarray, pruned_loss: np.ndarray) -> np.ndarray:
    """R(a) = J(theta_bar; D_a) - J(theta*; D_a)."""
    d, p = _paired(dense_loss, pruned_loss, ("dense_loss", "pruned_loss"))
    return p - d


def excess_loss_disparity(r: np.ndarray) -> float:
    """xi = max_{a,a'} |R(a) - R(a')| = max R - min R."""
    return _spread(r, "r")


def accuracy_gap(acc: np.ndarray) -> float:
    """max_a acc_a - min_a acc_a."""
    return _spread(acc, "acc")


def accuracy_drop(dense_acc: np.ndarray, pruned_acc: np.ndarray) -> np.ndarray:
    """Delta_a = acc_a(dense) - acc_a(pruned)."""
    d, p = _paired(dense_acc, pruned_acc, ("dense_acc", "pruned_acc"))
    return d - p


def excess_accuracy_gap(delta_a: np.ndarray, delta: float) -> np.ndarray:
    """psi_a = Delta_a - Delta (Balancing Act); ``delta``, the overall drop, is one number."""
    if np.ndim(delta) != 0:
        raise ValueError(f"delta: the overall accuracy drop, one number, got shape {np.shape(delta)}")
    return _per_group(delta_a, "delta_a") - float(delta)


def pairwise_excess_accuracy_gap(psi: np.ndarray) -> float:
    """Psi_PW = max_a psi_a - min_a psi_a."""
    return _spread(psi, "psi")


def normalized_accuracy(dense_acc: np.ndarray, pruned_acc: np.ndarray) -> np.ndarray:
    """acc_a(pruned) / acc_a(dense) (inf or NaN where acc_a(dense) is 0)."""
    d, p = _paired(dense_acc, pruned_acc, ("dense_acc", "pruned_acc"))
    with np.errstate(invalid="ignore", divide="ignore"):
        return p / d


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
        """max - min of a by_group column across the groups with samples (as ``measures`` takes them:
        ``difference("excess_loss")`` is xi); NaN if one of them is NaN (a NaN loss)."""
        numeric = [c for c in self.by_group.columns if c != "group"]
        if column not in numeric:
            raise KeyError(f"difference: no numeric by_group column {column!r}; allowed: {', '.join(numeric)}")
        return _over_present(self.by_group[column].to_numpy(float), self.by_group["n"].to_numpy() > 0, _range)


def _range(v: np.ndarray) -> float:
    return float(v.max() - v.min())


def _over_present(values: np.ndarray, present: np.ndarray, reduce) -> float:
    """``reduce`` over the groups with samples; NaN when there is none or one of them is NaN (never ignored)."""
    v = np.asarray(values, float)[present]
    return reduce(v) if len(v) and not np.isnan(v).any() else math.nan


def pruning_impact(dense: GroupStats, pruned: GroupStats) -> PruningImpact:
    """Compare per-group stats of a dense and a pruned model on the same data (the same groups, in the same
    order, with the same sample counts; anything else is an error, not a silent pairing).

    The max/min measures run over the groups with samples. A NaN loss of such a group (NaN logits: NaN inputs or
    overflowing weights) makes xi NaN, with a warning naming the group, instead of leaving the group out."""
    for what, stats in (("dense", dense), ("pruned", pruned)):
        if not isinstance(stats, GroupStats):
            raise TypeError(f"pruning_impact: {what} is the GroupStats of evaluate_groups(model, data), got a "
                            f"{type(stats).__name__}")
    if tuple(dense.group_names) != tuple(pruned.group_names):
        raise ValueError(f"pruning_impact: dense and pruned stats cover different groups (dense "
                         f"{list(dense.group_names)}, pruned {list(pruned.group_names)}); evaluate both on the same data")
    if not np.array_equal(np.asarray(dense.count), np.asarray(pruned.count)):
        raise ValueError(f"pruning_impact: dense and pruned stats count different samples per group (dense "
                         f"{np.asarray(dense.count).tolist()}, pruned {np.asarray(pruned.count).tolist()}); "
                         "evaluate both on the same data")
    present = np.asarray(dense.count) > 0
    if not present.any():
        warnings.warn("pruning_impact: no group has samples; every measure is NaN", RuntimeWarning, stacklevel=2)
    for what, stats in (("dense", dense), ("pruned", pruned)):
        bad = [name for name, ok in zip(stats.group_names, np.isfinite(stats.loss) | ~present) if not ok]
        if bad:
            warnings.warn(f"pruning_impact: the {what} model's mean loss is not finite on group(s) "
                          f"{', '.join(map(repr, bad[:5]))}{', ...' if len(bad) > 5 else ''} (NaN inputs, or "
                          "weights so large that the logits overflow): xi is NaN", RuntimeWarning, stacklevel=2)
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
        "xi": _over_present(r, present, _range),  # excess_loss_disparity, over the groups with samples
        "accuracy_gap_dense": _over_present(acc_d, present, _range),
        "accuracy_gap_pruned": _over_present(acc_p, present, _range),
        "max_psi": _over_present(psi, present, lambda v: float(v.max())),
        "psi_pw": _over_present(psi, present, _range),
    }
    return PruningImpact(dense, pruned, by_group, measures)
