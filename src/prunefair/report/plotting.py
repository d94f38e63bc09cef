"""Saving matplotlib figures: one place for layout, folder creation, resolution and closing."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Group names in scripts DejaVu Sans lacks (Chinese, Japanese, Korean): drawn with the first of these fonts that
# is installed (matplotlib falls back glyph by glyph); with none, such glyphs show as boxes in the figures only
# (the HTML report and the CSVs keep the names exactly).
FALLBACK_FONTS = ("Noto Sans CJK JP", "Noto Sans CJK SC", "Source Han Sans", "WenQuanYi Zen Hei", "Arial Unicode MS")


def _use_fallback_fonts() -> list[str]:
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    found = [name for name in FALLBACK_FONTS if name in installed]
    if found:
        matplotlib.rcParams["font.family"] = ["DejaVu Sans", *found]
    return found


_use_fallback_fonts()


MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def group_style(i: int, n: int) -> dict:
    """Line style of the i-th of n groups, distinct for every group: tab10's colours up to 10 groups, tab20's up
    to 20, then tab20's again with another marker and line style for each further 20."""
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    k = cmap.N
    return {"color": cmap(i % k), "marker": MARKERS[(i // k) % len(MARKERS)],
            "linestyle": ("-", "--", ":", "-.")[(i // k) % 4]}


def legend_outside(ax, **kw):
    """The axes' legend to the right of it, outside the data (tight_layout makes room for it)."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kw)


def save_figure(fig, path: str | Path, *, dpi: int = 120) -> Path:
    """Lay out ``fig``, write it as PNG to ``path`` (creating its folder), close it, return the path. Every text is
    drawn literally: group and study names come from the data, and a '$' in them is not matplotlib's mathtext."""
    import io

    from matplotlib.text import Text

    from prunefair.io import atomic_write_bytes

    for text in fig.findobj(Text):
        text.set_parse_math(False)
    fig.tight_layout()
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())  # a killed report never leaves half a figure
    return path
