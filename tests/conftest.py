"""Shared fixtures: the real data folder beside the checkout, and tiny study configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PRUNEFAIR_DATA", ROOT.parent / "shared" / "data"))

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not present")
    return SHARED_DATA


def tiny_study(tmp_path: Path, **over) -> dict:
    """A study dict on digits that runs in about a second."""
    cfg = {
        "name": "tiny",
        "seeds": [0],
        "output_dir": str(tmp_path / "study"),
        "data": {"dataset": "digits"},
        "model": {"name": "mlp", "width": 0.5},
        "train": {"epochs": 3, "batch_size": 64, "lr": 0.05},
        "prune": {"rates": [0.5, 0.9]},
        "finetune": {"epochs": 1, "lr": 0.01},
    }
    for k, v in over.items():
        if isinstance(v, dict):
            cfg.setdefault(k, {}).update(v)
        else:
            cfg[k] = v
    return cfg
