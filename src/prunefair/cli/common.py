"""What every command shares: the typer app, the two consoles, and the one-line errors and checks."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Optional

import typer

from prunefair.progress import make_console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="prunefair: measure, explain and mitigate the disparate impact of pruning on groups "
         "(Tran et al., NeurIPS 2022).",
)
# a terminal's own width; piped, $COLUMNS or 120 (rich's 80 would fold the tables of a log file)
console = make_console()
err_console = make_console(stderr=True)


@app.callback()
def _setup() -> None:
    """Warnings (e.g. a config setting that leaves a check out) as one line on stderr, not Python's file:line."""
    from rich.markup import escape

    def show(message, category, filename, lineno, file=None, line=None):
        err_console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False)

    warnings.showwarning = show


def fail(message: str, code: int = 2, *, one_line: bool = False) -> None:
    """Print ``message`` (as given: paths and values may hold [brackets]) and exit with ``code``; ``one_line``:
    not folded at the terminal's width (a script reading stderr gets it whole)."""
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True,
                      soft_wrap=one_line or not err_console.is_terminal)  # piped: whole lines for a script
    raise typer.Exit(code)


INTERRUPTED = "interrupted; finished cells are kept: rerun the same command to resume"


def refuse_a_file(study_dir: Path) -> None:
    """``prunefair status study.toml``: a file where a study folder is wanted; name the study file's folder."""
    if not study_dir.is_file():
        return
    import tomllib

    try:
        out = tomllib.loads(study_dir.read_text(encoding="utf-8")).get("output_dir")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        out = None
    hint = f": this study file's folder is {out}" if isinstance(out, str) else " (its output_dir)"
    fail(f"{study_dir}: a file, not a study folder; give the folder the study writes{hint}")


def flag_overrides(**fields) -> list[str]:
    """Dotted-key overrides (``run__workers`` -> ``run.workers``) for the flags that were given, values as TOML."""
    import json

    return [f"{key.replace('__', '.')}={json.dumps(value)}" for key, value in fields.items() if value is not None]


def csv_override(key: str, text: Optional[str]) -> list[str]:
    return [] if text is None else [f"{key}=[{text}]"]


def cell_problems(results) -> list[str]:
    """A line per failed or corrupt cell of ``results`` (a StudyResults), with its error."""
    return [f"{r.get('status', 'failed')} cell {r['name']}: {r.get('error')}" for r in results.failed]


def print_problems(lines: list[str]) -> None:
    from rich.markup import escape

    for line in lines:
        err_console.print(f"[red]{escape(line)}", highlight=False)


def escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def os_error(exc: OSError, folder: Path, what: str = "write") -> str:
    """One line for an OSError of reading or writing a study folder: the file (our atomic writes name it in their
    message; else the error's filename) and what to do."""
    if exc.filename is not None:
        message = f"{exc.filename}: cannot {what} ({exc.strerror or exc})"
    elif exc.strerror:  # prunefair.io's writes: "PATH: cannot write (REASON); ..."
        message = exc.strerror
    else:
        message = f"{folder}: cannot {what} ({exc})"
    fix = f"check that {folder} and what is in it can be written (no file where a folder belongs, no read-only " \
          "file or file system), or copy the folder and report the copy; files written before this one are new, " \
          "the others as they were" if what == "write" else f"make {folder} readable"
    return f"{message}; {fix}"


def writable(out: Path, name: str | None = None) -> None:
    """Check the output folder before any computing (without creating it): one that cannot be made or written
    fails now (exit 2), not after the work. ``name`` says which setting gave it (default ``--out OUT``)."""
    name = name or f"--out {out}"
    base = out.absolute()
    while not base.exists() and base != base.parent:
        base = base.parent
    if base == out.absolute() and not base.is_dir():
        fail(f"{name}: is a file, not a folder" if base.is_file() else f"{name}: exists and is not a folder")
    if not base.is_dir():
        fail(f"{name}: cannot create the folder ({base} is {'a file' if base.is_file() else 'not a folder'})")
    if not os.access(base, os.W_OK):
        fail(f"{name}: {base} is not writable")
