"""Models pruned elsewhere, and pruned models on disk.

- ``torch.nn.utils.prune`` keeps ``<name>_orig`` (a parameter) and ``<name>_mask`` (a buffer) per pruned
  tensor; ``masks_from_state_dict`` turns them back into plain ``<name>`` = orig * mask plus a MaskSet.
- A plain state dict (any tool that zeroes weights) gives its exact zeros as the mask.
- Our own checkpoints hold the weights and the masks side by side (``mask::<param>`` keys, safetensors).

So a model pruned by another tool can be audited like one pruned here: load it, get its masks, measure.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from prunefair.io import atomic_write_bytes
from prunefair.prune.masks import MaskSet, prunable_parameters

_ORIG, _MASK, _OURS = "_orig", "_mask", "mask::"


def masks_from_state_dict(
    state: dict[str, torch.Tensor], *, prunable: set[str] | None = None
) -> tuple[dict[str, torch.Tensor], MaskSet]:
    """(plain state dict, masks) from a state dict in torch.nn.utils.prune form, ours, or plain with zeros.

    Explicit masks win (``<name>_mask`` of torch, ``mask::<name>`` of ours); every other tensor named in
    ``prunable`` (by default: every ``*weight`` of two or more dimensions, i.e. conv and linear weights)
    takes its exact zeros as pruned.
    """
    plain: dict[str, torch.Tensor] = {}
    masks: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(_OURS):
            masks[key[len(_OURS):]] = value.bool()
        elif key.endswith(_ORIG) and key[: -len(_ORIG)] + _MASK in state:
            name = key[: -len(_ORIG)]
            mask = state[name + _MASK]
            plain[name] = value * mask.to(value.dtype)
            masks[name] = mask.bool()
        elif key.endswith(_MASK) and key[: -len(_MASK)] + _ORIG in state:
            continue
        else:
            plain[key] = value
    for name, value in plain.items():
        if name in masks:
            continue
        is_prunable = name in prunable if prunable is not None else (name.endswith("weight") and value.dim() >= 2)
        if is_prunable:
            masks[name] = value.ne(0)
    return plain, MaskSet({k: v.cpu() for k, v in masks.items()})


def load_fitting_state(model: nn.Module, plain: dict[str, torch.Tensor], *, source: str) -> None:
    """Load ``plain`` into ``model`` if it has exactly the model's keys and shapes; else an error naming ``source``."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(plain))
    unexpected = sorted(set(plain) - set(expected))
    bad = [k for k in expected if k in plain and tuple(expected[k].shape) != tuple(plain[k].shape)]
    if missing or unexpected or bad:
        raise ValueError(f"{source} does not fit this architecture (missing {missing[:3]}, unexpected "
                         f"{unexpected[:3]}, shape mismatch {bad[:3]})")
    model.load_state_dict(plain)


def load_pruned_state_dict(model: nn.Module, state: dict[str, torch.Tensor], *, source: str = "state dict") -> MaskSet:
    """Load a pruned state dict (any of the forms above) into a plain ``model``; return its masks, bound and
    applied. Only prunable weights (conv/linear) carry masks: a torch mask on a bias is applied to its values
    but not counted, since biases are never pruned here."""
    prunable = set(prunable_parameters(model))
    plain, masks = masks_from_state_dict(state, prunable=prunable)
    load_fitting_state(model, plain, source=f"{source}:")
    masks = MaskSet({k: v for k, v in masks.masks.items() if k in prunable})
    masks.bind(model).apply()
    return masks


def to_torch_prune(model: nn.Module, masks: MaskSet) -> nn.Module:
    """Reparametrise ``model`` in place the way torch.nn.utils.prune does (``custom_from_mask``)."""
    from torch.nn.utils import prune

    for name, mask in masks.masks.items():
        mod_name, _, pname = name.rpartition(".")
        module = model.get_submodule(mod_name) if mod_name else model
        prune.custom_from_mask(module, pname, mask.to(getattr(module, pname).device))
    return model


def save_pruned(path: str | Path, model: nn.Module, masks: MaskSet, *, metadata: dict[str, str] | None = None) -> None:
    """Weights and masks in one safetensors file, written atomically (temporary file, fsync, rename)."""
    from safetensors.torch import save

    plain, _ = masks_from_state_dict(model.state_dict(), prunable=set())  # undo a torch prune reparametrisation
    tensors = {k: v.detach().contiguous().cpu() for k, v in plain.items()}
    tensors.update(masks.state_dict())
    data = save(tensors, metadata={"format": "prunefair-pruned", **(metadata or {})})
    atomic_write_bytes(path, data)


def load_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (no pickled objects); a missing or unreadable file names the path."""
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return load(path.read_bytes())
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise ValueError(f"{path}: unreadable checkpoint ({exc})") from None


def load_pruned(path: str | Path, model: nn.Module) -> MaskSet:
    """Load a pruned checkpoint (ours, a torch.nn.utils.prune state dict, or plain with zeros) into ``model``."""
    return load_pruned_state_dict(model, load_checkpoint(path), source=str(path))
