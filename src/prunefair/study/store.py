"""The study folder: atomic writes, safetensors checkpoints, cell results keyed by a config hash.

Layout::

    STUDY_DIR/config.toml                 the resolved configuration
    STUDY_DIR/cells/<cell-name>/result.json   one cell's metrics (written last, atomically)
    STUDY_DIR/cells/<cell-name>/model.safetensors  dense checkpoints (and pruned, if asked)

A cell is done when its result.json exists with status "done" and the key of the current config.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False, allow_nan=True) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Save tensors as safetensors, atomically (no pickled objects)."""
    from safetensors.torch import save

    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write_bytes(path, save(flat, metadata=metadata))


def load_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a safetensors checkpoint; errors name the path."""
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return load(path.read_bytes())
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise ValueError(f"{path}: unreadable checkpoint ({exc})") from None


def load_model_state(model: torch.nn.Module, path: str | Path) -> None:
    """Load a checkpoint into ``model``; a checkpoint of another architecture is a clear error."""
    state = load_checkpoint(path)
    model_state = {k: v for k, v in state.items() if not k.startswith("mask::")}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(model_state))
    unexpected = sorted(set(model_state) - set(expected))
    bad = [k for k in expected if k in model_state and tuple(expected[k].shape) != tuple(model_state[k].shape)]
    if missing or unexpected or bad:
        raise ValueError(
            f"{path}: checkpoint does not fit this architecture "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}, shape mismatch {bad[:3]})")
    model.load_state_dict(model_state)


class Store:
    """A study folder on disk."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def cells_dir(self) -> Path:
        return self.root / "cells"

    def cell_dir(self, name: str) -> Path:
        return self.cells_dir / name

    def result_path(self, name: str) -> Path:
        return self.cell_dir(name) / "result.json"

    def read_result(self, name: str) -> dict | None:
        p = self.result_path(name)
        if not p.is_file():
            return None
        return read_json(p)

    def is_done(self, name: str, key: str) -> bool:
        r = self.read_result(name)
        return bool(r) and r.get("status") == "done" and r.get("key") == key

    def write_result(self, name: str, result: dict) -> None:
        atomic_write_json(self.result_path(name), result)

    def results(self) -> list[dict]:
        if not self.cells_dir.is_dir():
            return []
        return [read_json(p) for p in sorted(self.cells_dir.glob("*/result.json"))]
