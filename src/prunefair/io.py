"""Atomic file writes shared by every stage (masks, checkpoints, results, reports).

A file is written to a temporary name in the same folder, flushed, fsynced and renamed over the target, and the
folder is fsynced after the rename, so a reader (or a killed process, or a power cut) never sees half a file, and
a failed write leaves the previous file intact. The file
gets the usual permissions (0666 less the umask), not the temporary file's private 0600.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()  # read once, at import (setting it is process-wide, so not per write)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any]) -> None:
    """``write(fh)`` into a temporary file in the same folder, fsync, then rename over ``path`` (for writers that
    stream, e.g. a large array, rather than build the bytes first)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        blocker = _not_a_folder(path.parent) if exc.errno in (errno.EEXIST, errno.ENOTDIR) else None
        if blocker is not None:  # "File exists" would read as if the path were taken
            reason = blocker
        raise OSError(exc.errno, f"{path}: cannot write ({reason}); nothing stored was changed") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), _MODE)
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        # the system's own errors name the temporary file (os.replace: both): said of ``path`` instead; ours,
        # already naming it, pass as they are
        if isinstance(exc, OSError) and (exc.filename is not None or str(path) not in str(exc)):
            hint = " (disk full?)" if exc.errno == errno.ENOSPC else ""
            reason = exc.strerror if exc.filename is not None and exc.strerror else str(exc)
            raise OSError(exc.errno, f"{path}: cannot write{hint} ({reason}); the previous file, if any, is "
                                     "intact") from exc
        raise


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable: after a power cut the folder's entry names the new file, not the old one or
    none. Best effort: a file system that cannot fsync a folder (some network ones) keeps the rename, as it is."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _not_a_folder(folder: Path) -> str | None:
    """Why ``folder`` cannot be created: the nearest of it and its parents that exists and is not a folder (a file,
    or a link to nothing), said in words; None if there is none."""
    for p in (folder, *folder.parents):
        if p.is_symlink() and not p.exists():
            return f"{p} is a broken link (to {os.readlink(p)})"
        if p.exists():
            return None if p.is_dir() else f"{p} is a file, not a folder"
    return None


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False, allow_nan=True) + "\n")
