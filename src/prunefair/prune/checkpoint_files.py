"""Reading a checkpoint file into a flat ``{name: tensor}`` state dict, never unpickling arbitrary objects.

Two formats, told apart by their first bytes (not by the file's extension):
- safetensors (the primary format; what prunefair writes): 8 bytes of header length, then a JSON header ``{``;
- ``torch.save`` files (a zip archive, ``PK``, or the legacy pickle format, ``0x80``): read with
  ``torch.load(path, map_location="cpu", weights_only=True)``, torch's restricted unpickler, which admits
  tensors and plain containers only. A state dict may be wrapped as ``{"state_dict": ...}``,
  ``{"model_state_dict": ...}`` or ``{"model": ...}`` (other entries, such as an epoch, are ignored); a whole
  pickled ``nn.Module`` is refused with the advice to save ``model.state_dict()``.
"""

from __future__ import annotations

from pathlib import Path

import torch

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
SAVE_ADVICE = ("save the weights with torch.save(model.state_dict(), path) or, better, "
               "safetensors.torch.save_file(model.state_dict(), path)")


# torch.save's legacy (non-zip) format opens with this number, pickled (a LONG1 of 10 bytes); a pickle without it
# is a plain pickle.dump, which no unpickler of ours is given
_TORCH_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
HEAD_BYTES = 32


def checkpoint_format(head: bytes, size: int) -> str | None:
    """'safetensors', 'torch', 'pickle' (a plain pickle.dump: refused, never unpickled), 'truncated safetensors'
    or None, from the first bytes (``HEAD_BYTES``) of a file of ``size`` bytes."""
    if len(head) >= 9 and head[8:9] == b"{":
        n = int.from_bytes(head[:8], "little")
        if 2 <= n <= size - 8:
            return "safetensors"
        if n > size - 8:
            return "truncated safetensors"
    if head[:4] == b"PK\x03\x04":
        return "torch"
    if head[:1] == b"\x80" and len(head) >= 2:
        start = 11 if head[1:2] >= b"\x04" and head[2:3] == b"\x95" else 2  # protocol 4+: a FRAME opcode first
        return "torch" if head[start:start + len(_TORCH_MAGIC)] == _TORCH_MAGIC else "pickle"
    return None


def load_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint (safetensors, or a state dict saved with torch.save); errors name the path."""
    path = Path(path)
    if path.is_dir():
        # FileNotFoundError, as for a missing file (what callers catch), but saying what is there
        raise FileNotFoundError(f"{path}: is a folder, not a checkpoint file (give the .safetensors or .pt file "
                                "inside it)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
        size = path.stat().st_size
    except OSError as exc:  # no permission to read it: a ValueError naming it, as for every unreadable checkpoint
        raise ValueError(f"{path}: cannot read the checkpoint ({exc.strerror or exc})") from None
    kind = checkpoint_format(head, size)
    if kind == "safetensors":
        return _load_safetensors(path)
    if kind == "torch":
        return _load_torch(path)
    if not size:
        raise ValueError(f"{path}: an empty file (0 bytes), not a checkpoint; was it written completely?")
    if kind == "truncated safetensors":
        n = int.from_bytes(head[:8], "little")
        raise ValueError(f"{path}: a truncated safetensors file: its header alone takes {n + 8:,} bytes, the file has "
                         f"{size:,}; copy or save it again")
    if kind == "pickle":
        raise ValueError(f"{path}: a plain Python pickle (pickle.dump), not a torch.save or safetensors checkpoint; "
                         f"prunefair never unpickles arbitrary objects, so it was not read: {SAVE_ADVICE}")
    raise ValueError(f"{path}: unreadable checkpoint: neither safetensors nor a torch.save file "
                     f"(it starts with {head[:8]!r})")


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    try:
        return load(path.read_bytes())
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise ValueError(f"{path}: unreadable checkpoint ({exc})") from None


def _load_torch(path: Path) -> dict[str, torch.Tensor]:
    import pickle
    import re

    try:
        with open(path, "rb") as f:  # a file object: torch.load would read a path named *.safetensors as one
            obj = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # weights_only refused an object: a whole model, an optimizer class...
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"a {found.group(1)}" if found else "Python objects other than tensors"
        raise ValueError(f"{path}: holds {what} (a whole nn.Module saved with torch.save(model)?), not only "
                         f"tensors; prunefair never unpickles arbitrary objects (torch.load(weights_only=True)): "
                         f"{SAVE_ADVICE}") from None
    except Exception as exc:  # a truncated or corrupt archive
        raise ValueError(f"{path}: unreadable torch.save checkpoint, truncated or damaged ({type(exc).__name__}: "
                         f"{exc})") from None
    return _state_dict_of(obj, path)


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _state_dict_of(obj, path: Path) -> dict[str, torch.Tensor]:
    """``obj`` itself if it is a state dict, else the state dict under a common wrapper key."""
    if _is_state_dict(obj):
        return dict(obj)
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if _is_state_dict(obj.get(key)):
                return dict(obj[key])
        tensors = [k for k, v in obj.items() if isinstance(v, torch.Tensor)]
        others = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
        if tensors and others:
            raise ValueError(f"{path}: a dict of tensors mixed with other entries ({', '.join(others[:5])}); "
                             f"expected a state dict, or one under {' / '.join(map(repr, WRAPPER_KEYS))}")
        if not obj:
            raise ValueError(f"{path}: an empty dict, no tensors; {SAVE_ADVICE}")
        raise ValueError(f"{path}: a dict with keys {', '.join(map(str, list(obj)[:8]))} but no state dict (looked "
                         f"under {', '.join(map(repr, WRAPPER_KEYS))}); {SAVE_ADVICE}")
    raise ValueError(f"{path}: holds a {type(obj).__name__}, not a state dict; {SAVE_ADVICE}")
