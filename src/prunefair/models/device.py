"""Where a model's batches go: the given device, or the model's own."""

from __future__ import annotations

import torch
from torch import nn


def model_device(model: nn.Module, device: torch.device | str | None, *, who: str = "") -> torch.device:
    """``device``, or with None the device of the model's parameters (cpu for a model without any); a ValueError
    when the model is elsewhere (a CUDA model with a "cpu" device failed deep in the forward pass with "Expected all
    tensors to be on the same device"). ``who`` prefixes the message (e.g. "evaluate_groups")."""
    here = next((p.device for p in model.parameters()), None)
    if device is None:
        return here if here is not None else torch.device("cpu")
    device = torch.device(device)
    if here is not None and (here.type != device.type or None not in (here.index, device.index)
                             and here.index != device.index):
        raise ValueError(f"{who + ': ' if who else ''}the model is on {here} but device = {str(device)!r}: move the "
                         f"model (model.to({str(device)!r})) or give device=None (the model's device)")
    return device
