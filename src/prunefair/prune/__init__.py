"""Masks (create, hold, save, load) and pruning criteria."""

from prunefair.prune.magnitude import global_magnitude_masks, layerwise_magnitude_masks
from prunefair.prune.masks import MaskSet, dense_masks, parameter_distance, prunable_parameters


def make_masks(model, rate: float, *, scope: str = "global", method: str = "magnitude") -> MaskSet:
    """Masks for ``model`` at pruning ``rate`` by criterion ``method`` over ``scope``."""
    if method != "magnitude":
        raise ValueError(f"unknown pruning method {method!r}; allowed: magnitude")
    if scope == "global":
        return global_magnitude_masks(model, rate)
    if scope == "layer":
        return layerwise_magnitude_masks(model, rate)
    raise ValueError(f"unknown pruning scope {scope!r}; allowed: global, layer")


__all__ = [
    "MaskSet", "dense_masks", "global_magnitude_masks", "layerwise_magnitude_masks", "make_masks",
    "parameter_distance", "prunable_parameters",
]
