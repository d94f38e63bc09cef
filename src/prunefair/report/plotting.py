"""Saving matplotlib figures: one place for layout, folder creation, resolution and closing."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save_figure(fig, path: str | Path, *, dpi: int = 120) -> Path:
    """Lay out ``fig``, write it as PNG to ``path`` (creating its folder), close it, return the path."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
