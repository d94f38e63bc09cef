"""Saving matplotlib figures: one place for layout, folder creation, resolution and closing."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save_figure(fig, path: str | Path, *, dpi: int = 120) -> Path:
    """Lay out ``fig``, write it as PNG to ``path`` (creating its folder), close it, return the path."""
    import io

    from prunefair.io import atomic_write_bytes

    fig.tight_layout()
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())  # a killed report never leaves half a figure
    return path
