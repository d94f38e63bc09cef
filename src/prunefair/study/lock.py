"""One study process per folder: an exclusive lock on ``OUT/.lock`` while a study runs into it.

Two ``prunefair study`` runs into one folder used to compute every unfinished cell twice. The lock is a
``flock`` on ``OUT/.lock``: the operating system releases it when its process ends, however it ends (a
``kill -9`` leaves no stale lock), and the file names the holder (host, pid, start) for the message a second
run gets. Within one thread the lock is re-entrant (``run_study`` holds it around ``execute_study``, which
takes it too); another thread of the same process is refused like another process. Worker processes and Ray
tasks of the holding run do not take it: they are that run.

While the lock is held nothing else writes a study's cells, so the temporary files a killed atomic write left
there (``.<name>.<random>.tmp``) are removed; those at the top of the folder and in ``figures/`` (where a
concurrent ``prunefair report``, which takes no lock, may be writing) only once they are a minute old.

The folders the lock created are removed again when the run leaves nothing else in them (a wrong data.root
fails before any file is written). Where ``flock`` is missing (Windows) or refused (some network filesystems),
the study runs unlocked, as before, and sweeps no temporary file (another run may be writing it).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_NAME = ".lock"
_HELD: dict[tuple[Path, int], int] = {}  # (folder, thread) -> how many times that thread holds it


class StudyLocked(RuntimeError):
    """Another process is running a study into this folder."""


def _holder(path: Path) -> str:
    try:
        h = json.loads(path.read_text())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(h["started"])))
        return f"pid {h['pid']} on {h['host']}, since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


@contextlib.contextmanager
def study_lock(root: str | Path) -> Iterator[None]:
    """Hold the folder's lock for the block; StudyLocked (naming the holder) if another process, or another thread
    of this one, has it."""
    root = Path(root).resolve()
    mine = (root, threading.get_ident())
    if mine in _HELD:  # re-entered by the thread that holds it
        _HELD[mine] += 1
        try:
            yield
        finally:
            _HELD[mine] -= 1
        return
    made = [p for p in (root, *root.parents) if not p.exists()]  # the folders this call creates, deepest first
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        locked = False
        if fcntl is not None:
            try:  # a second open file, even in this process, conflicts with the holder's: threads are refused too
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except BlockingIOError:
                raise StudyLocked(f"{root}: another prunefair study is running into this folder ({_holder(path)}; "
                                  f"lock file {path}); wait for it to finish (`prunefair status {root}` shows its "
                                  "cells), or write to another folder with --out") from None
            except OSError:  # flock not supported here: run unlocked
                pass
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}).encode())
        if locked:  # unlocked, another run may be writing its temporaries right now
            remove_stale_temporaries(root)
        _HELD[mine] = 1
        try:
            yield
        finally:
            del _HELD[mine]
            if made and [p.name for p in root.iterdir()] == [LOCK_NAME]:  # failed before writing anything
                path.unlink()
                for folder in made:
                    try:
                        folder.rmdir()
                    except OSError:  # something else was put there meanwhile
                        break
    finally:
        os.close(fd)  # releases the flock


def remove_stale_temporaries(root: str | Path, *, min_age_s: float = 60.0) -> list[Path]:
    """Temporary files of atomic writes that never finished (their process was killed): every one under
    ``cells/``, and those older than ``min_age_s`` at the top of the folder and in ``figures/``. Returns them."""
    root = Path(root)
    now, removed = time.time(), []
    candidates = [(p, 0.0) for p in root.glob("cells/*/.*.tmp")]
    candidates += [(p, min_age_s) for pattern in (".*.tmp", "figures/.*.tmp") for p in root.glob(pattern)]
    for p, age in candidates:
        try:
            if p.is_file() and now - p.stat().st_mtime >= age:
                p.unlink()
                removed.append(p)
        except FileNotFoundError:
            pass
    return removed
