"""A running marker left by a killed study names a pid that another process may get later (after a reboot, in a
restarted container): `prunefair status` showed the cell as running for as long as that other process lived."""

import json
import socket
import subprocess
import sys
import time

import pytest

from prunefair.study import Store


@pytest.fixture()
def other_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _marker(tmp_path, pid: int, started: float) -> Store:
    store = Store(tmp_path)
    store.cell_dir("s0_p0.5_nft").mkdir(parents=True)
    store.running_path("s0_p0.5_nft").write_text(json.dumps({"key": "k", "host": socket.gethostname(), "pid": pid,
                                                             "started": started}))
    return store


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process start times are read from /proc")
def test_a_marker_whose_pid_was_reused_since_is_stale(tmp_path, other_process):
    store = _marker(tmp_path, other_process.pid, time.time() - 86400)  # written yesterday, the pid's process is new
    state, detail = store.cell_state("s0_p0.5_nft", "k")
    assert state == "stale", (state, detail)
    assert time.strftime("%Y-%m-%d", time.localtime(time.time() - 86400)) in detail  # not only the time of day


def test_a_marker_of_a_live_process_is_running(tmp_path, other_process):
    store = _marker(tmp_path, other_process.pid, time.time())  # written by that process, after it started
    assert store.cell_state("s0_p0.5_nft", "k")[0] == "running"
