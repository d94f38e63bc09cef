"""Masks (create, hold, save, load), pruning criteria, schedules and interoperability.

``make_masks`` is the one entry point: a scope (global or layer-wise), a criterion (magnitude, random,
structured channels), the Balancing Act protocol option to keep the first and last layers dense, and
``previous`` for schedules (a weight pruned once stays pruned).
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from prunefair.prune.bn import has_batch_norm, recalibrate_batch_norm
from prunefair.prune.interop import (
    ArchitectureMismatch, load_checkpoint, load_pruned, load_pruned_state_dict, masks_from_state_dict, save_pruned,
    to_torch_prune,
)
from prunefair.prune.layers import first_prunable, kept_dense, last_linear
from prunefair.prune.magnitude import global_magnitude_masks, layerwise_magnitude_masks, magnitude_scores
from prunefair.prune.masks import MaskSet, dense_masks, parameter_distance, prunable_parameters
from prunefair.prune.random import random_scores
from prunefair.prune.schedule import GradualPruner, cubic_sparsity, iterative_rates
from prunefair.prune.select import LayerRemovalError, check_rate, unstructured_masks
from prunefair.prune.structured import filter_norms, structured_masks

log = logging.getLogger("prunefair.prune")

SCOPES = ("global", "layer")
CRITERIA = ("magnitude", "random", "structured")


def make_masks(
    model: nn.Module, rate: float, *, scope: str = "global", criterion: str = "magnitude",
    keep_first_last: bool = False, allow_layer_removal: bool = False, generator: torch.Generator | None = None,
    previous: MaskSet | None = None, method: str | None = None,
) -> MaskSet:
    """Keep-masks for ``model`` removing the ``rate`` fraction of the weights of the layers being pruned.

    scope: ``global`` ranks all conv/linear weights together, ``layer`` prunes each layer at ``rate``.
    criterion: ``magnitude`` (smallest |w|), ``random`` (control; draws from ``generator``, seed 0 if None),
    ``structured`` (whole output channels of smallest L2 norm; the classifier stays dense).
    keep_first_last: leave the first conv (first prunable layer) and the last linear layer dense; their masks
    are all ones, so the global sparsity reported counts them.
    allow_layer_removal: let layer-wise pruning remove every weight of a small layer (else LayerRemovalError).
    previous: weights pruned there stay pruned (for gradual and iterative schedules).
    method: the former name of ``criterion``.
    """
    criterion = method if method is not None else criterion
    if scope not in SCOPES:
        raise ValueError(f"unknown pruning scope {scope!r}; allowed: {', '.join(SCOPES)}")
    check_rate(rate)
    if rate > 0 and not prunable_parameters(model):
        raise ValueError(f"this model has no conv or linear layer (nn.Conv1d/2d/3d, nn.Linear), the only layers "
                         f"prunefair prunes: pruning it at rate {rate:g} would remove nothing")
    dense = kept_dense(model, keep_first_last)
    if rate > 0 and dense and not (set(prunable_parameters(model)) - dense):
        raise ValueError("keep_first_last leaves no layer to prune in this model (its first and last layers "
                         "are all its conv/linear layers)")
    if criterion == "structured":
        if rate > 0 and not (set(prunable_parameters(model)) - dense - {last_linear(model)}):
            raise ValueError("structured pruning keeps the classifier (the last linear layer) dense, and this model "
                             "has no other conv/linear layer to prune")
        masks = structured_masks(model, rate, scope=scope, dense=dense, allow_layer_removal=allow_layer_removal,
                                 previous=previous)
    elif criterion in ("magnitude", "random"):
        scores = magnitude_scores(model) if criterion == "magnitude" else random_scores(model, generator)
        masks = unstructured_masks(scores, rate, scope=scope, dense=dense, allow_layer_removal=allow_layer_removal,
                                   previous=previous)
    else:
        raise ValueError(f"unknown pruning criterion {criterion!r}; allowed: {', '.join(CRITERIA)}")
    if scope == "global":
        _warn_layer_collapse(masks, rate, criterion)
    return masks


def _warn_layer_collapse(masks: MaskSet, rate: float, criterion: str) -> None:
    """A log warning naming the layers that global pruning emptied: in a plain chain of layers the output then no
    longer depends on the input (layer-wise scope refuses this unless allow_layer_removal)."""
    emptied = [k for k, m in masks.masks.items() if m.numel() and not bool(m.any())]
    if emptied:
        log.warning("global %s pruning at rate %g removes every weight of %d layer(s): %s%s (layer collapse: "
                    "without a skip connection around them the output no longer depends on the input)", criterion,
                    rate, len(emptied), ", ".join(emptied[:3]), " ..." if len(emptied) > 3 else "")


def pruning_function(
    *, scope: str = "global", criterion: str = "magnitude", keep_first_last: bool = False,
    allow_layer_removal: bool = False, seed: int = 0,
):
    """``prune(model, rate, previous=None) -> MaskSet`` with these options fixed, for the schedules.

    The random criterion redraws from ``seed`` on every call, so its successive masks are nested.
    """
    def prune(model: nn.Module, rate: float, previous: MaskSet | None = None) -> MaskSet:
        return make_masks(model, rate, scope=scope, criterion=criterion, keep_first_last=keep_first_last,
                          allow_layer_removal=allow_layer_removal, generator=torch.Generator().manual_seed(seed),
                          previous=previous)
    return prune


__all__ = [
    "ArchitectureMismatch", "CRITERIA", "GradualPruner", "LayerRemovalError", "MaskSet", "SCOPES", "cubic_sparsity",
    "dense_masks", "filter_norms", "first_prunable", "global_magnitude_masks", "has_batch_norm", "iterative_rates",
    "kept_dense", "last_linear", "layerwise_magnitude_masks", "load_checkpoint", "load_pruned",
    "load_pruned_state_dict", "magnitude_scores", "make_masks", "masks_from_state_dict", "parameter_distance",
    "prunable_parameters", "pruning_function", "random_scores", "recalibrate_batch_norm", "save_pruned",
    "structured_masks", "to_torch_prune", "unstructured_masks",
]
