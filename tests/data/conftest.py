"""Helpers for the data tests: small real-format image files written on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prunefair.data.images import clear_memory_cache


def write_jpeg(path: Path, seed: int, size: int = 16) -> np.ndarray:
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG" if path.suffix == ".png" else "JPEG", quality=95)
    return pixels


@pytest.fixture(autouse=True)
def _fresh_memory_cache():
    clear_memory_cache()
    yield
    clear_memory_cache()
