"""What the built-in convolutional models need of their inputs, said in prunefair's words.

A convolutional model given (F,) features, or images too small for its max-pools, once failed in every cell of a
study with torch's own message ("Expected 3D (unbatched) or 4D (batched) input to conv2d", "Output size is too
small"), which names neither the model nor the data. ``image_shape`` is checked when the model is built;
``check_image_size`` in its forward (a RuntimeError, as torch's own was: a model built for small images can still
be saved, loaded and refused where it runs).
"""

from __future__ import annotations

import torch


def image_shape(model: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``input_shape`` as (C, H, W); a ValueError naming ``model`` unless it is images."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3:
        what = f"(F,) = {shape} features" if len(shape) == 1 else f"samples of shape {shape}"
        raise ValueError(f"model {model!r} is convolutional and takes (C, H, W) images; the data holds {what}: "
                         "use model.name = 'mlp' (or a model of your own), or give the data as (N, C, H, W) images")
    return shape[0], shape[1], shape[2]


def check_image_size(model: str, x: torch.Tensor, min_size: int, why: str) -> None:
    """A RuntimeError naming ``model`` when the batch ``x`` (N, C, H, W) holds images under ``min_size`` pixels a
    side (``why``: what sets that size)."""
    h, w = x.shape[-2], x.shape[-1]
    if h < min_size or w < min_size:
        raise RuntimeError(f"model {model!r} needs images of at least {min_size}x{min_size} ({why}); these are "
                           f"{h}x{w}: set data.image_size = {min_size} or more (file datasets), resize the arrays, "
                           "or choose another model")
