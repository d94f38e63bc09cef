"""Models pruned elsewhere, and pruned models on disk.

- ``torch.nn.utils.prune`` keeps ``<name>_orig`` (a parameter) and ``<name>_mask`` (a buffer) per pruned
  tensor; ``masks_from_state_dict`` turns them back into plain ``<name>`` = orig * mask plus a MaskSet.
- A plain state dict (any tool that zeroes weights) gives its exact zeros as the mask.
- Our own checkpoints hold the weights and the masks side by side (``mask::<param>`` keys, safetensors).
- Files are safetensors or state dicts saved with ``torch.save`` (``checkpoint_files``: no arbitrary objects);
  keys under a shared wrapper prefix (``module.`` of DataParallel) are loaded without it, with a warning.

So a model pruned by another tool can be audited like one pruned here: load it, get its masks, measure.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from prunefair.io import atomic_write_bytes
from prunefair.prune.checkpoint_files import load_checkpoint  # noqa: F401 (re-exported: the one reader of files)
from prunefair.prune.masks import MaskSet, prunable_parameters

log = logging.getLogger("prunefair.prune")

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


class ArchitectureMismatch(ValueError):
    """A state dict that does not fit a model: what is missing, unexpected, and the shapes that differ."""

    def __init__(self, message: str, *, missing: list[str], unexpected: list[str],
                 shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]):
        super().__init__(message)
        self.missing, self.unexpected, self.shapes = missing, unexpected, shapes  # shapes: (checkpoint, model)


def _listed(items: list[str], k: int = 4, sep: str = ", ") -> str:
    return sep.join(items[:k]) + (f" (+{len(items) - k} more)" if len(items) > k else "")


def _base_name(key: str) -> str:
    """The parameter a state-dict key stands for (``mask::x``, ``x_orig`` and ``x_mask`` stand for ``x``)."""
    key = key[len(_OURS):] if key.startswith(_OURS) else key
    for suffix in (_ORIG, _MASK):
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return key


def strip_wrapper_prefix(state: dict[str, torch.Tensor], expected: set[str], *,
                         source: str) -> dict[str, torch.Tensor]:
    """``state`` without a prefix every key shares (``module.`` of DataParallel, ``_orig_mod.`` of torch.compile,
    ``model.`` of a Lightning module) when none of its keys fits the model as they are and stripping makes them
    fit; a warning names the prefix. Otherwise ``state`` unchanged."""

    def fits(st) -> bool:
        return any(_base_name(k) in expected for k in st)

    def split(key: str) -> tuple[str, str]:
        ours = key.startswith(_OURS)
        return (_OURS if ours else ""), key[len(_OURS):] if ours else key

    current, removed = state, ""
    for _ in range(3):
        if not current or fits(current):
            break
        firsts = {split(k)[1].split(".", 1)[0] for k in current}
        if len(firsts) != 1 or any("." not in split(k)[1] for k in current):
            break
        prefix = firsts.pop() + "."
        current = {tag + name[len(prefix):]: v for tag, name, v in ((*split(k), v) for k, v in current.items())}
        removed += prefix
    if removed and current and fits(current):
        log.warning("%s: every key starts with %r (a DataParallel or wrapped model); loading it without that "
                    "prefix", source, removed)
        return current
    return state


def _same_tensor(t: torch.Tensor) -> tuple:
    """What makes two state-dict entries one tensor (tied weights); sparse and meta tensors are never tied."""
    if t.layout != torch.strided or t.is_meta:
        return ("own", id(t))
    return t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride())


def untied(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with each tensor once: a weight shared by several modules (tied weights) appears in a state dict
    under each name, which safetensors refuses to write; the first name is kept (``load_fitting_state`` gives
    the others back from it)."""
    seen, out = set(), {}
    for k, v in state.items():
        key = _same_tensor(v)
        if key not in seen:
            seen.add(key)
            out[k] = v
    return out


def _retied(plain: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``plain`` with the names of the model's tied weights that it lacks, taken from the name it has."""
    groups: dict[tuple, list[str]] = {}
    for k, v in expected.items():
        groups.setdefault(_same_tensor(v), []).append(k)
    out = dict(plain)
    for names in groups.values():
        have = [k for k in names if k in plain]
        for k in names:
            if have and k not in out:
                out[k] = plain[have[0]]
    return out


def load_fitting_state(model: nn.Module, plain: dict[str, torch.Tensor], *, source: str) -> None:
    """Load ``plain`` into ``model`` if it has exactly the model's keys and shapes; else an ArchitectureMismatch
    naming ``source`` and listing what differs (shapes as checkpoint vs model). A tied weight may be stored under
    one of its names."""
    expected = model.state_dict()
    plain = _retied(strip_wrapper_prefix(plain, set(expected), source=source), expected)
    missing = sorted(set(expected) - set(plain))
    unexpected = sorted(set(plain) - set(expected))
    shapes = {k: (tuple(plain[k].shape), tuple(v.shape)) for k, v in expected.items()
              if k in plain and tuple(v.shape) != tuple(plain[k].shape)}
    if missing or unexpected or shapes:
        lines = [f"{source} does not fit this architecture:"]
        if shapes:
            lines.append(f"  {len(shapes)} shape(s) differ: " + _listed(
                [f"{k}: checkpoint {c}, model {m}" for k, (c, m) in shapes.items()], 3, "; "))
        if missing:
            lines.append(f"  {len(missing)} tensor(s) of the model missing from the checkpoint: {_listed(missing)}")
        if unexpected:
            lines.append(f"  {len(unexpected)} tensor(s) of the checkpoint not in the model: {_listed(unexpected)}")
        raise ArchitectureMismatch("\n".join(lines), missing=missing, unexpected=unexpected, shapes=shapes)
    check_tensor_values(model, plain, source=source)
    model.load_state_dict(plain)


def _non_finite(t: torch.Tensor) -> int:
    """How many values of a floating ``t`` are NaN or infinite (a sparse tensor's stored values; meta: none)."""
    if t.is_meta:
        return 0
    if t.layout != torch.strided:
        try:
            t = t.coalesce().values() if t.layout == torch.sparse_coo else t.values()
        except (RuntimeError, NotImplementedError):
            return 0
    if t.numel() == 0:
        return 0
    if t.element_size() == 1:  # float8: no isfinite / aminmax kernels (float8_e4m3fn)
        t = t.float()
    lo, hi = torch.aminmax(t)  # NaN carries through: one pass, no bool tensor the size of t (vgg19: 1-2 s -> 0.03 s)
    if bool(torch.isfinite(lo)) and bool(torch.isfinite(hi)):
        return 0
    return int(t.numel() - torch.isfinite(t).sum().item())


def check_tensor_values(model: nn.Module, plain: dict[str, torch.Tensor], *, source: str) -> None:
    """A ValueError naming ``source`` and the key when a tensor of ``plain`` (keys and shapes already fitting
    ``model``) would load meaningless values: a non-floating tensor (integer, bool) for a floating parameter or
    buffer, which ``load_state_dict`` would cast silently (truncating every weight), or NaN/inf values in a tensor
    that the freshly built model holds finite (a damaged checkpoint or a diverged model). Integer and bool buffers
    (masks, BatchNorm's num_batches_tracked) are not checked; a buffer that the model itself builds with inf (an
    attention mask of -inf) may hold inf."""
    params = {k for k, _ in model.named_parameters(remove_duplicate=False)}
    for key, mine in model.state_dict(keep_vars=False).items():
        theirs = plain.get(key)
        if theirs is None or not isinstance(theirs, torch.Tensor) or not mine.is_floating_point():
            continue
        what = "parameter" if key in params else "buffer"
        if not theirs.is_floating_point():
            kind = str(theirs.dtype).removeprefix("torch.")
            raise ValueError(f"{source} tensor {key} is {kind}, the model's {what} is "
                             f"{str(mine.dtype).removeprefix('torch.')}; loading it would cast every value "
                             "(save the model's floating-point state dict)")
        bad = _non_finite(theirs)
        if bad and not _non_finite(mine):
            raise ValueError(f"{source} tensor {key} holds {bad} NaN/inf value(s); the checkpoint is damaged or "
                             "the model diverged")


def load_pruned_state_dict(model: nn.Module, state: dict[str, torch.Tensor], *, source: str = "state dict") -> MaskSet:
    """Load a pruned state dict (any of the forms above) into a plain ``model``; return its masks, bound and
    applied. Only prunable weights (conv/linear) carry masks: a torch mask on a bias is applied to its values
    but not counted, since biases are never pruned here."""
    prunable = set(prunable_parameters(model))
    params = dict(model.named_parameters(remove_duplicate=False))  # a tied weight under each of its names
    canonical = {id(params[k]): k for k in prunable}  # the name prunable_parameters gives each weight
    # every name of a prunable weight (a tied weight stored once may be under its embedding's name)
    aliases = {k for k, p in params.items() if id(p) in canonical}
    state = strip_wrapper_prefix(state, set(model.state_dict()), source=source)
    plain, masks = masks_from_state_dict(state, prunable=prunable | aliases)
    load_fitting_state(model, plain, source=f"{source}:")
    # a tied weight's mask may come under any of its names (torch prune on another module, or an embedding's name):
    # the name prunable_parameters gives the weight holds it, and two masks of one weight are combined (a weight
    # either of them prunes is pruned)
    kept: dict[str, torch.Tensor] = {}
    for k, v in masks.masks.items():
        k = canonical.get(id(params[k]), k) if k in params else k
        if k in prunable:
            kept[k] = kept[k] & v if k in kept else v
    masks = MaskSet(kept)
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
    tensors = {k: v.detach().contiguous().cpu() for k, v in untied(plain).items()}
    tensors.update(masks.state_dict())
    data = save(tensors, metadata={"format": "prunefair-pruned", **(metadata or {})})
    atomic_write_bytes(path, data)


def load_pruned(path: str | Path, model: nn.Module) -> MaskSet:
    """Load a pruned checkpoint (ours, a torch.nn.utils.prune state dict, or plain with zeros; safetensors or a
    torch.save state dict) into ``model``."""
    return load_pruned_state_dict(model, load_checkpoint(path), source=str(path))
