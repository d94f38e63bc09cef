"""The study report: ONE self-contained HTML file (figures inlined as base64 PNG, inline CSS, no scripts,
nothing fetched from the network), built from the study folder alone.

Every piece of text that comes from data (group names, config values, error messages) goes through
``esc`` (html.escape); only strings wrapped in ``Html`` by this package are emitted as markup.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Iterable

from prunefair.report.stats import Interval
from prunefair.study.store import Store, atomic_write_text

CSS = """
:root{--fg:#1d2433;--muted:#667085;--line:#e4e7ec;--bg:#fff;--panel:#f7f8fa;--accent:#2f5dab;--bad:#b42318}
*{box-sizing:border-box}
body{margin:0;font:15px/1.55 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);
 background:var(--bg)}
main{max-width:1180px;margin:0 auto;padding:28px 32px 60px}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:20px;margin:38px 0 10px;padding-top:10px;border-top:1px solid var(--line)}
h3{font-size:16px;margin:22px 0 8px}
p{margin:8px 0}
.sub{color:var(--muted);margin-bottom:18px}
.badges span{display:inline-block;background:var(--panel);border:1px solid var(--line);border-radius:14px;
 padding:2px 10px;margin:2px 6px 2px 0;font-size:13px}
nav{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:10px 16px;margin:18px 0}
nav a{margin-right:14px;color:var(--accent);text-decoration:none;font-size:14px;white-space:nowrap}
.reading{background:#f3f7ff;border-left:4px solid var(--accent);padding:10px 18px;border-radius:4px}
.reading li{margin:6px 0}
.scroll{overflow-x:auto;margin:8px 0 4px}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
.cap{font-weight:600;margin:18px 0 4px;font-size:14px}
table.kv td,table.kv th{text-align:left}
.kvgrid{display:flex;gap:10px 28px;flex-wrap:wrap;align-items:flex-start}
.kvgrid .cap{margin-top:6px}
th,td{padding:4px 9px;border-bottom:1px solid var(--line);text-align:right;vertical-align:top;white-space:nowrap}
th{background:var(--panel);font-weight:600}
td:first-child,th:first-child{text-align:left}
tr.sum td{font-weight:600;background:#fbfbfc}
tr.sep td{border-top:2px solid #cfd4dc}
td.best{outline:2px solid #12b76a;outline-offset:-2px}
.ci{display:block;color:var(--muted);font-size:11px}
.note{color:var(--muted);font-size:13px}
figure{margin:14px 0}
figure img{max-width:100%;border:1px solid var(--line);border-radius:6px}
figcaption{color:var(--muted);font-size:13px;margin-top:4px}
pre{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:10px 14px;overflow-x:auto;
 font-size:12.5px}
.err{color:var(--bad)}
details{margin:10px 0}
summary{cursor:pointer;color:var(--accent)}
footer{margin-top:40px;color:var(--muted);font-size:12px}
"""


class Html(str):
    """A string that is already safe markup (built by this package, data inside escaped)."""


def esc(value) -> Html:
    return value if isinstance(value, Html) else Html(html.escape(str(value), quote=True))


def _fixed(x: float, digits: int) -> str:
    """x with ``digits`` decimals; a value that rounds to zero is '0.00', never '-0.00'."""
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def num(x: float, digits: int = 1, scale: float = 1.0) -> str:
    return "–" if x is None or not math.isfinite(x) else _fixed(x * scale, digits)


def signed(x: float, digits: int = 2) -> str:
    """'+1.25', '-0.40'; a value that rounds to zero is '+0.00', never '-0.00'."""
    text = _fixed(x, digits)
    return text if text.startswith("-") else "+" + text


def interval(iv: Interval, *, scale: float = 100.0, digits: int = 1, bounds: tuple | None = None) -> Html:
    """'97.2 ± 1.6' with its 95% CI underneath (or 'n=1' when there is no interval).

    ``bounds`` (in unscaled units, e.g. (0, 1) for an accuracy) clips the interval to the quantity's range.
    """
    if iv.n == 0 or not math.isfinite(iv.mean):
        return Html("–")
    main = _fixed(iv.mean * scale, digits)
    if iv.n >= 2:
        main += f" ± {_fixed(iv.std * scale, digits)}"
    lo, hi = iv.lo, iv.hi
    if bounds is not None and iv.has_ci:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    ci = (f"[{_fixed(lo * scale, digits)}, {_fixed(hi * scale, digits)}]" if iv.has_ci else f"n={iv.n}")
    return Html(f"{main}<span class=ci>{ci}</span>")


def table(header: Iterable, rows: Iterable, *, caption: str | None = None, cls: str = "",
          row_classes: Iterable[str] | None = None, cell_attrs: dict | None = None) -> Html:
    """An HTML table; every cell is escaped unless it is ``Html``. ``cell_attrs[(i, j)]`` adds safe attributes."""
    cell_attrs = cell_attrs or {}
    rows = list(rows)
    classes = list(row_classes or [""] * len(rows))
    out = [f"<div class=cap>{esc(caption)}</div>" if caption else "",
           f"<div class=scroll><table class={cls}>" if cls else "<div class=scroll><table>"]
    out.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead><tbody>")
    for i, (row, cls) in enumerate(zip(rows, classes)):
        tr = f"<tr class={cls}>" if cls else "<tr>"
        tds = "".join(f"<td{cell_attrs.get((i, j), '')}>{esc(c)}</td>" for j, c in enumerate(row))
        out.append(tr + tds + "</tr>")
    out.append("</tbody></table></div>")
    return Html("".join(out))


def figure(path: str | Path, caption: str) -> Html:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    alt = esc(caption)
    return Html(f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
                f"<figcaption>{alt}</figcaption></figure>")


def section(anchor: str, title: str, *parts: str) -> Html:
    body = "".join(esc(p) if not isinstance(p, Html) else p for p in parts if p)
    return Html(f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>')


def para(text: str, cls: str = "") -> Html:
    return Html(f"<p class={cls}>{esc(text)}</p>" if cls else f"<p>{esc(text)}</p>")


def details(summary: str, *parts: str) -> Html:
    return Html(f"<details><summary>{esc(summary)}</summary>{''.join(esc(p) for p in parts)}</details>")


def page(title: str, subtitle: str, badges: list[str], reading: list[str], sections: list[tuple[str, str, Html]],
         footer: str, *, intro: list[tuple[str, str, Html]] = ()) -> str:
    """The whole page: ``intro`` sections (what was done), the reading, then ``sections``."""
    nav = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t, _ in [*intro, *sections])
    items = "".join(f"<li>{esc(s)}</li>" for s in reading)
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{esc(title)}</h1><div class=sub>{esc(subtitle)}</div>"
        f"<div class=badges>{''.join(f'<span>{esc(b)}</span>' for b in badges)}</div>"
        f"<nav>{nav}</nav>"
        + "".join(body for _, _, body in intro)
        + f'<section id="reading"><h2>What the numbers show</h2><ul class=reading>{items}</ul></section>'
        + "".join(body for _, _, body in sections)
        + f"<footer>{esc(footer)}</footer></main></body></html>\n"
    )


def build_report(results, root: str | Path, figures: dict[str, Path] | None = None, *, ctx=None) -> str:
    """The report's HTML text for a StudyResults whose store lives in ``root``."""
    from prunefair import __version__
    from prunefair.report import narrative, sections
    from prunefair.report.protocol import protocol_section

    root = Path(root)
    if ctx is None:
        group_size, unread = _group_size_or_error(root)
        ctx = sections.Context.build(results, figures, group_size=group_size)
        ctx.errors += [unread] if unread else []
    cfg = results.config
    n_seeds = int(results.measures.seed.nunique()) if not results.measures.empty else 0
    badges = [f"dataset: {cfg.data.dataset}", f"groups: {cfg.data.group}", f"model: {cfg.model.name}",
              f"{n_seeds} seed(s) done", f"{len(results.cells)} cells done", f"{len(results.failed)} failed",
              *([f"{len(results.pending)} pending"] if getattr(results, "pending", None) else []),
              "intervals: 95% t over seeds"]
    subtitle = (f"Disparate impact of pruning on groups ({cfg.data.dataset}, group attribute "
                f"'{cfg.data.group}'); study folder {root}")
    # no clock time: the same folder gives the same page, byte for byte (the file's own time says when it was written)
    footer = (f"Generated by prunefair {__version__} from {root} (config.toml and cells/*/result.json). "
              f"Regenerate with: prunefair report {root}")
    reading = narrative.reading(results, ctx)
    return page(f"{cfg.name}: pruning report", subtitle, badges, reading, sections.all_sections(results, ctx), footer,
                intro=[("protocol", "What was done", protocol_section(results))])


class UnreadGroupSize(UserWarning):
    """``group_size.csv`` of a study folder could not be read: the report is written without Figures 14-15."""


class UnreadDataDescription(UserWarning):
    """``data.json`` of a study folder could not be read: results are reported unchecked against their data."""


def read_group_size(root: Path):
    """``root/group_size.csv`` (columns factor, group, grad_norm[, seed, upsampled]) if a group-size experiment wrote
    one, else None. A file that is not such a table (empty, cut short, edited) is a ValueError naming it."""
    import pandas as pd

    p = Path(root) / "group_size.csv"
    if not p.is_file():
        return None
    try:
        df = pd.read_csv(p, dtype={"group": str, "upsampled": str}, keep_default_na=False)
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' EmptyDataError and ParserError are ValueErrors
        raise ValueError(f"{p}: not a group-size table ({type(exc).__name__}: {exc})") from None
    missing = [c for c in ("factor", "group", "grad_norm") if c not in df.columns]
    if missing:
        raise ValueError(f"{p}: not a group-size table (no column {', '.join(missing)}; it has "
                         f"{', '.join(map(str, df.columns)) or 'none'})")
    for c in ("factor", "grad_norm"):
        values = pd.to_numeric(df[c].replace("", float("nan")), errors="coerce")
        bad = df[c][values.isna() & (df[c].astype(str) != "")]
        if len(bad):
            raise ValueError(f"{p}: not a group-size table (column {c} holds {bad.iloc[0]!r}, not a number)")
        df[c] = values
    return df


def _group_size_or_error(root: Path) -> tuple:
    """(group-size table or None, error text or None): a damaged group_size.csv costs Figures 14-15 only, with a
    warning naming it, never the rest of the report."""
    import warnings

    try:
        return read_group_size(root), None
    except ValueError as exc:
        warnings.warn(UnreadGroupSize(f"{exc}; the report leaves out Figures 14-15 (rewrite the file with "
                                      f"prunefair report {root} --group-size STUDY ...)"), stacklevel=3)
        return None, f"group size: {exc}"


def _data_json_problem(root: Path) -> str | None:
    """What is wrong with ``root/data.json`` (the data the study's last run loaded), None if it reads or is absent.
    Unreadable, it cannot tell results of other data apart: every stored result is reported, and the page says so."""
    p = Path(root) / "data.json"
    if not p.exists() or Store(root).data_fingerprint() is not None:
        return None
    return (f"{p}: cannot be read (not JSON, or no data fingerprint in it), so the stored results could not be checked "
            "against the data they were computed on and are all reported; prunefair study rewrites it")


def write_report(results, root: str | Path, figures: dict[str, Path] | None = None, *,
                 group_size_dirs: list[str | Path] | None = None, drawn: dict[str, Path] | None = None) -> Path:
    """Write ``root/report.html`` (plus the figure PNGs under ``root/figures``) and return its path.

    ``figures`` (name -> PNG) are embedded; when None, the study's figures are (re)drawn first. Names starting
    with fig1_, fig12/fig13/diag, mitigation, fig14/fig15/group_size go to their sections, others at the end.
    ``group_size_dirs``: the studies of a group-size experiment (one per upsampling factor); their gradient
    norms are collected into ``root/group_size.csv``, which later reports read again.
    ``drawn``: a dict that receives the figures this call drew itself (name -> PNG), e.g. Figures 12-13 on a split
    the diagnostics outputs did not draw.
    """
    from prunefair.report import sections
    from prunefair.report.explain_figures import figure_diagnostics
    from prunefair.report.figures import write_figures
    from prunefair.report.group_size import figure_group_size, group_size_table

    root = Path(root)
    figs = dict(figures) if figures is not None else (
        write_figures(results, root) if not results.by_group.empty else {})
    if group_size_dirs:
        atomic_write_text(root / "group_size.csv", group_size_table(group_size_dirs).to_csv(index=False))
    group_size, unread = _group_size_or_error(root)
    if group_size is not None and not group_size.empty and not any(k.startswith(("fig14", "fig15")) for k in figs):
        figs["fig14_15_group_size"] = figure_group_size(group_size, root / "figures" / "fig14_15_group_size.png",
                                                        title=f"{results.config.name}: group size vs gradient norm")
    ctx = sections.Context.build(results, figs, group_size=group_size)
    if unread:  # shown under "Data this report could not read"
        ctx.errors.append(unread)
    if problem := _data_json_problem(root):
        import warnings

        warnings.warn(UnreadDataDescription(problem), stacklevel=2)
        ctx.errors.append(f"data: {problem}")
    if not ctx.diag.empty and not any(k.startswith(("fig12", "fig13", "diag")) for k in figs):
        p = figure_diagnostics(results, ctx.diag, ctx.corr, root / "figures" / "fig12_13_diagnostics.png",
                               split=ctx.main_split)
        if p is not None:
            ctx.figures["fig12_13_diagnostics"] = p
    if drawn is not None:
        drawn.update({k: Path(p) for k, p in ctx.figures.items()
                      if p is not None and (figures is None or k not in figures)})
    path = root / "report.html"
    atomic_write_text(path, build_report(results, root, ctx=ctx))
    return path
