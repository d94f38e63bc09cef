"""Running markers (``cells/<cell>/running.json``): whether the process a marker names still runs the cell, and what
`prunefair status` says of it (running, queued or running, stale)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path


def alive(m: dict | None) -> bool:
    """The running marker ``m`` belongs to a live process (or one on another host, which cannot be checked). A live
    process that started after the marker was written is another one that got the pid since (after a reboot, or in
    a container restarted): the marker's is gone."""
    if m is None:
        return False
    if m.get("host") != socket.gethostname():
        return True
    try:
        pid, written = int(m.get("pid", -1)), float(m.get("started", 0))
    except (TypeError, ValueError):
        return False
    born = _process_start(pid)
    # a minute's slack: /proc's boot time is in whole seconds and drifts from the wall clock (NTP, suspend)
    return _pid_alive(pid) and (born is None or born <= written + 60.0)


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), from Linux's /proc; None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime: clock ticks after boot
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def marker_state(m: dict, diagnostics: bool = False) -> tuple[str, str]:
    """(state, detail) of the running marker ``m`` of a cell: running (its process is alive, or on another host),
    queued or running (a Ray task, whose driver is alive), or stale (the process on this host is gone);
    ``diagnostics``: the marker of a done dense cell whose diagnostics are being computed."""
    who = f"{m.get('host')}:{m.get('pid')}"
    started = m.get("started", 0) if isinstance(m.get("started", 0), (int, float)) else 0
    same_day = time.localtime(started)[:3] == time.localtime()[:3]
    since = time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S", time.localtime(started))
    what = "computing its diagnostics (the model and its result are stored): " if diagnostics else ""
    if alive(m):
        if m.get("executor") == "ray":
            return "queued or running", f"{what}a Ray task submitted by {who} at {since} (Ray does not say " \
                                        "whether it has started)"
        return "running", f"{what}{who} since {since}"
    if diagnostics:
        return "stale", f"its diagnostics were computed by {who} since {since}; that process is gone (rerun to " \
                        "compute them; the model and its result are stored)"
    return "stale", f"was run by {who} since {since}; that process is gone (rerun to resume)"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
