"""What prunefair needs from a model's forward: a tensor of class logits, shape (N, C) with C >= 2."""

from __future__ import annotations

import torch


def check_logits(out, n: int | None = None, num_classes: int | None = None) -> torch.Tensor:
    """``out`` if it is a (N, C >= 2) tensor of logits, else a ValueError that says what the model returned and
    what to return instead (a binary model's single logit z is the two-class softmax of [0, z]). With
    ``num_classes`` (the data's), C must be at least that number: a builder that ignored its ``num_classes`` once
    gave torch's "IndexError: Target 9 is out of bounds" (on CUDA, a device-side assert). More logits than classes
    are accepted (e.g. a model trained on more classes, evaluated on the first ones)."""
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"the model returned a {type(out).__name__}; prunefair needs a tensor of class logits of "
                         "shape (N, C) (a model that also returns features: wrap it to return the logits alone)")
    if out.dim() != 2 or out.shape[1] < 2 or (n is not None and out.shape[0] != n):
        raise ValueError(f"the model returned logits of shape {tuple(out.shape)}; prunefair needs (N, C) with one "
                         "logit per class, C >= 2 (cross-entropy over classes). A binary model with one logit z: "
                         "return torch.cat([torch.zeros_like(z), z], 1) for shape (N, 1), the same probabilities")
    if num_classes is not None and out.shape[1] < num_classes:
        raise ValueError(f"the model returned {out.shape[1]} logits per sample but the data has {num_classes} "
                         "classes: build its output layer with the num_classes its builder is given")
    return out
