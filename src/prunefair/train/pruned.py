"""Prune and fine-tune under a schedule: one-shot, gradual (cubic, mask grown each epoch), or iterative rounds.

The pruning function ``prune(model, rate, previous) -> MaskSet`` carries the criterion and scope (for
example ``functools.partial`` of a ``make_masks`` call); the schedule decides when and to what rate it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from prunefair.data import GroupedData
from prunefair.progress import NULL_PROGRESS, Progress
from prunefair.prune import GradualPruner, MaskSet, dense_masks, iterative_rates
from prunefair.train.loop import TrainHistory, TrainSettings, fit
from prunefair.train.objective import Objective

SCHEDULES = ("oneshot", "gradual", "iterative")


@dataclass
class PrunedRun:
    masks: MaskSet
    history: TrainHistory
    steps: list[dict] = field(default_factory=list)  # each mask made: epoch or round, target, achieved sparsity


def finetune_pruned(
    model: nn.Module, data: GroupedData, settings: TrainSettings, *, rate: float,
    prune: Callable[[nn.Module, float, MaskSet | None], MaskSet], schedule: str = "oneshot",
    masks: MaskSet | None = None, gradual_start_epoch: int = 0, gradual_end_epoch: int | None = None,
    gradual_initial: float = 0.0, rounds: int = 3, seed: int, device: torch.device | str | None = None,
    objective: Objective | None = None, channels_last: bool = False, progress: Progress = NULL_PROGRESS,
    description: str = "fine-tune",
) -> PrunedRun:
    """Prune ``model`` (in place) to ``rate`` under ``schedule`` while fine-tuning it with ``settings``.

    oneshot: ``masks`` (or ``prune(model, rate, None)``) once, then ``settings.epochs`` of fine-tuning.
    gradual: from the dense model, the cubic schedule over epochs ``gradual_start_epoch``..``gradual_end_epoch``
    (default: the last epoch) of the ``settings.epochs``, reaching ``rate`` at ``gradual_end_epoch``.
    iterative: ``rounds`` rounds of prune (to 1 - (1 - rate)^(r/rounds)) then ``settings.epochs`` of fine-tuning.
    """
    common = dict(seed=seed, device=device, objective=objective, channels_last=channels_last, progress=progress)
    if schedule == "oneshot":
        masks = masks if masks is not None else prune(model, rate, None)
        history = fit(model, data, settings, masks=masks, description=description, **common)
        return PrunedRun(masks, history, [{"epoch": 0, "target": rate, "sparsity": masks.sparsity}])
    if schedule == "gradual":
        end = settings.epochs - 1 if gradual_end_epoch is None else gradual_end_epoch
        if end >= settings.epochs:
            raise ValueError(f"gradual_end_epoch = {end} must be below the number of fine-tuning epochs "
                             f"({settings.epochs}), or the final sparsity is never reached")
        pruner = GradualPruner(prune, rate, end_epoch=end, initial=gradual_initial, start_epoch=gradual_start_epoch)
        if objective is not None:
            objective.final_mask_from(end)  # the mask of epoch ``end`` (0-based) is the final one
        history = fit(model, data, settings, on_epoch_start=pruner, description=description, **common)
        final = pruner.masks if pruner.masks is not None else dense_masks(model)
        steps = [{"epoch": e, "target": t, "sparsity": s} for e, t, s in pruner.log]
        return PrunedRun(final, history, steps)
    if schedule == "iterative":
        history, steps = TrainHistory(), []
        for r, s in enumerate(iterative_rates(rate, rounds)):
            masks = prune(model, s, masks)
            steps.append({"round": r + 1, "target": s, "sparsity": masks.sparsity})
            if objective is not None and r == rounds - 1:
                objective.final_mask_from(len(history.epochs))  # the last round runs at the final mask
            h = fit(model, data, settings, masks=masks, description=f"{description} (round {r + 1}/{rounds})",
                    **{**common, "seed": seed + r})
            history.epochs += [{**rec, "round": r + 1, "sparsity": masks.sparsity} for rec in h.epochs]
        return PrunedRun(masks if masks is not None else dense_masks(model), history, steps)
    raise ValueError(f"unknown pruning schedule {schedule!r}; allowed: {', '.join(SCHEDULES)}")


__all__ = ["PrunedRun", "SCHEDULES", "finetune_pruned"]
