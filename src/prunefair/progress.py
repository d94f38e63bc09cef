"""Progress reporting shared by every stage: rich bars on a terminal, nothing in quiet mode."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Iterator


def make_console(*, stderr: bool = False, **kwargs):
    """A rich Console: a terminal's own width, else $COLUMNS or 120 (rich's 80 wrapped piped lines mid-path)."""
    from rich.console import Console

    probe = Console(stderr=stderr)
    width = None if probe.is_terminal else int(os.environ.get("COLUMNS") or 120)
    return Console(stderr=stderr, width=width, **kwargs)


class Progress:
    """A thin wrapper over rich.progress that every stage can call without caring if it is shown."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self._rich = None

    def __enter__(self) -> "Progress":
        if not self.quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn
            from rich.progress import TimeElapsedColumn

            self._rich = RichProgress(  # on stderr, so stdout holds only results (tables, paths)
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                transient=True, console=make_console(stderr=True, log_path=False),
            )
            self._rich.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._rich is not None:
            self._rich.__exit__(*exc)
            self._rich = None

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator["_Task"]:
        if self._rich is None:
            yield _Task(None, None)
            return
        tid = self._rich.add_task(description, total=total)
        try:
            yield _Task(self._rich, tid)
        finally:
            self._rich.remove_task(tid)

    def log(self, message: str) -> None:
        if self._rich is None:
            return
        console = self._rich.console
        if console.is_terminal:
            console.log(message)
        else:  # a log file: one line a message, however long its paths (rich's log columns fold them); the
            # message's own markup ([red]...) is rendered as console.log renders it, the time is escaped text
            from rich.markup import escape

            console.print(escape(f"[{time.strftime('%H:%M:%S')}]") + f" {message}", soft_wrap=True, highlight=False)


class _Task:
    def __init__(self, rich, tid):
        self._rich, self._tid = rich, tid

    def advance(self, n: int = 1) -> None:
        if self._rich is not None:
            self._rich.advance(self._tid, n)


NULL_PROGRESS = Progress(quiet=True)
