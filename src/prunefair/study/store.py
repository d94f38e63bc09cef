"""The study folder: atomic writes, safetensors checkpoints, cell results keyed by a config hash.

Layout::

    STUDY_DIR/config.toml                 the resolved configuration
    STUDY_DIR/cells/<cell-name>/result.json   one cell's metrics (written last, atomically)
    STUDY_DIR/cells/<cell-name>/model.safetensors  dense checkpoints (and pruned, if asked)
    STUDY_DIR/cells/<cell-name>/running.json  while a cell runs: who runs it (host, pid, start time)

A cell is done when its result.json exists with status "done" and the key of the current config.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import torch

from prunefair.io import atomic_write_bytes, atomic_write_json, atomic_write_text  # noqa: F401 (re-exported)
from prunefair.prune.interop import load_checkpoint, load_fitting_state, untied  # noqa: F401 (load_checkpoint re-exported)
from prunefair.study.markers import alive as _alive, marker_state as _marker_state
from prunefair.study.result_checks import CorruptResult, check_result, data_problem  # noqa: F401 (re-exported)


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> str:
    """Save tensors as safetensors, atomically (no pickled objects); a tied weight once, under its first name.
    Returns the digest of the file written (a dense result records it as "weights", its pruning cells as
    "dense_weights": see ``Store.pruned_from_other_dense``)."""
    from safetensors.torch import save

    flat = {k: v.detach().contiguous().cpu() for k, v in untied(tensors).items()}
    blob = _sorted_header(save(flat, metadata=metadata))
    atomic_write_bytes(path, blob)
    return hashlib.sha256(blob).hexdigest()[:16]


def _sorted_header(blob: bytes) -> bytes:
    """``blob`` (a safetensors file) with its JSON header's keys sorted. safetensors writes the metadata keys in an
    order that changes from process to process (a hash map), so one seed's checkpoints differed in bytes though
    not in numbers; sorted, the same tensors and metadata give the same file. The header keeps its length (the
    same compact JSON, padded with spaces as safetensors pads it), so the data offsets stand."""
    n = int.from_bytes(blob[:8], "little")
    text = json.dumps(json.loads(blob[8:8 + n]), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > n:  # not the compact JSON expected: leave the file as safetensors wrote it
        return blob
    return blob[:8] + text.ljust(n, b" ") + blob[8 + n:]


def checkpoint_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a safetensors file, from its header alone; {} if it has none or cannot be read (loading it
    then says why)."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n)) if 0 < n < 100_000_000 else {}
    except (OSError, ValueError):
        return {}
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def checkpoint_problem(path: str | Path) -> str | None:
    """Why the safetensors file at ``path`` cannot be loaded, judged from its header and size alone (no tensor is
    read); None if it looks whole. Lets ``prunefair status`` see a truncated checkpoint before a cell needs it."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n <= size - 8:
                return f"damaged: a header of {n} bytes in a file of {size}"
            header = json.loads(f.read(n))
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    except (ValueError, UnicodeDecodeError):
        return "damaged: its header is not JSON"
    if not isinstance(header, dict):
        return "damaged: its header is not an object"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)
            and isinstance(v.get("data_offsets"), list) and len(v["data_offsets"]) == 2]
    need = 8 + n + max(ends, default=0)
    return f"truncated: {size} of {need} bytes" if size < need else None


def load_model_state(model: torch.nn.Module, path: str | Path) -> None:
    """Load a checkpoint into ``model``; a checkpoint of another architecture is a clear error."""
    state = load_checkpoint(path)
    load_fitting_state(model, {k: v for k, v in state.items() if not k.startswith("mask::")},
                       source=f"{path}: checkpoint")


def on_other_data(r: dict, data: str | None) -> bool:
    """A done result that recorded a data fingerprint other than ``data`` (the data at hand; None: unknown). Results
    written before fingerprints were recorded count as on the same data."""
    return data is not None and r.get("status") == "done" and r.get("data", data) != data


class Store:
    """A study folder on disk."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._data_json: tuple[tuple, dict | None] | None = None  # (data.json's stat, its parsed content)

    @property
    def cells_dir(self) -> Path:
        return self.root / "cells"

    def cell_dir(self, name: str) -> Path:
        return self.cells_dir / name

    def result_path(self, name: str) -> Path:
        return self.cell_dir(name) / "result.json"

    def read_result(self, name: str) -> dict | None:
        """The cell's result record, None if it has none; CorruptResult (naming the file) if it is damaged."""
        p = self.result_path(name)
        if not p.is_file():
            return None
        try:
            r = check_result(read_json(p), p)
        except CorruptResult:
            raise
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CorruptResult(str(exc) if str(p) in str(exc) else f"{p}: {exc}") from None
        if r.get("data") is not None and (problem := data_problem(r, self.data_description())):
            raise CorruptResult(f"{p}: {problem}")
        return r

    def has_model(self, name: str, key: str) -> bool:
        """The cell's checkpoint is there and was written for ``key`` (one written by a run of another config,
        e.g. killed between its checkpoint and its result, is not this cell's model). Checkpoints without a key
        in their metadata are taken as the cell's."""
        path = self.cell_dir(name) / "model.safetensors"
        return path.is_file() and checkpoint_metadata(path).get("key", key) == key

    def damaged_model(self, name: str) -> str | None:
        """What is wrong with the cell's checkpoint, if it is there but truncated or damaged, and what that means for
        a done cell (said by `prunefair status` and by a rerun); None if there is none or it looks whole."""
        path = self.cell_dir(name) / "model.safetensors"
        problem = checkpoint_problem(path) if path.is_file() else None
        return None if problem is None else f"{path}: {problem}; the result of {name} stands, but the cells that " \
                                            "need this model fail until the file is deleted (the next run then " \
                                            "retrains it)"

    def is_done(self, name: str, key: str, data: str | None = None) -> bool:
        """Done with this key and, where ``data`` (the fingerprint of the data at hand) is given, on that data: a
        result recorded on other data (an edited CSV, re-registered arrays) is not done. Results that recorded no
        fingerprint (written before it was) count as done. A damaged result is not done: it is recomputed."""
        try:
            r = self.read_result(name)
        except CorruptResult:
            return False
        return bool(r) and r.get("status") == "done" and r.get("key") == key and not on_other_data(r, data) \
            and not self.pruned_from_other_dense(r)

    def pruned_from_other_dense(self, r: dict) -> bool:
        """``r`` (a done pruning result) was pruned from another dense model than the one stored now: its dense cell
        was retrained since (its result.json was damaged, or its checkpoint deleted, and training is not bit for bit
        repeatable here: another thread count, a GPU), so the weights differ. Such a result is recomputed, not mixed
        into the tables with the new dense model's. Results that recorded no digest (older ones), and a dense result
        missing or unreadable (it is about to be retrained), count as the same model."""
        used = r.get("dense_weights")
        if r.get("kind") != "prune" or not isinstance(used, str) or not isinstance(r.get("dense"), str):
            return False
        try:
            dense = self.read_result(r["dense"])
        except CorruptResult:
            return False
        now = (dense or {}).get("weights") if (dense or {}).get("status") == "done" else None
        return isinstance(now, str) and now != used

    def resume_summary(self, cells, data: str | None) -> str | None:
        """What a rerun keeps of ``cells`` (objects with a name and a key): ``resuming ROOT: N of M cells are done
        and kept, K to run``, where cells done on other data than ``data`` (the fingerprint of the data at hand) are
        counted as to run, not as kept; None when no cell is done or outdated (nothing to resume)."""
        if not self.cells_dir.is_dir():
            return None
        states = [self.cell_state(c.name, c.key, data)[0] for c in cells]
        done, outdated = states.count("done"), states.count("outdated")
        if not done and not outdated:
            return None
        other = f" ({outdated} of them computed on other data)" if outdated else ""
        return f"resuming {self.root}: {done} of {len(states)} cells are done and kept, {len(states) - done} to " \
               f"run{other}"

    def note_other_data(self, cells, data: str, log) -> None:
        """``log`` what a rerun keeps of ``cells`` (objects with a name and a key; see ``resume_summary``), then which
        of them are done on other data than ``data``, the fingerprint of the data at hand (just loaded, so only an
        executor knows it): they are recomputed, not reused."""
        if summary := self.resume_summary(cells, data):
            log(summary)
        for c in cells:
            try:
                r = self.read_result(c.name)
            except CorruptResult:
                continue
            if r and r.get("key") == c.key and on_other_data(r, data):
                log(f"[yellow]{c.name}: computed on other data (fingerprint {r['data']}, now {data}): recomputed")

    def write_result(self, name: str, result: dict) -> None:
        atomic_write_json(self.result_path(name), result)
        self.clear_running(name)

    # -- running markers -------------------------------------------------------------------------
    def running_path(self, name: str) -> Path:
        return self.cell_dir(name) / "running.json"

    def mark_running(self, name: str, key: str, **extra: Any) -> None:
        """Record that this process (host, pid) started the cell now; cleared when its result is written."""
        atomic_write_json(self.running_path(name), {"key": key, "host": socket.gethostname(), "pid": os.getpid(),
                                                    "started": time.time(), **extra})

    def clear_running(self, name: str) -> None:
        try:
            self.running_path(name).unlink()
        except FileNotFoundError:
            pass

    def read_running(self, name: str) -> dict | None:
        p = self.running_path(name)
        try:
            return json.loads(p.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def data_description(self) -> dict | None:
        """The study's ``data.json`` (what the last run loaded: groups, sizes, fingerprint), None if unreadable.
        Parsed again only when the file changed (its inode, size or mtime): every result read checks against it.
        The dict is shared between calls: read it, do not change it."""
        p = self.root / "data.json"
        try:
            st = p.stat()
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
            if self._data_json is not None and self._data_json[0] == stamp:
                return self._data_json[1]
            d = json.loads(p.read_text())
        except (OSError, ValueError):
            return None
        d = d if isinstance(d, dict) else None
        self._data_json = (stamp, d)
        return d

    def data_fingerprint(self) -> str | None:
        """The fingerprint of the data the study's last run loaded (``data.json``), None if unknown."""
        fp = (self.data_description() or {}).get("fingerprint")
        return fp if isinstance(fp, str) else None

    def cell_state(self, name: str, key: str, data: str | None = None,
                   diagnostics: str | None = None) -> tuple[str, str]:
        """(state, detail): done, outdated (done on other data than ``data``, the fingerprint of the data now),
        running (a live process has it, even over an earlier failure; for a done dense cell: computes its
        diagnostics, those of key ``diagnostics``, the ones the study wants), queued or running (submitted as a Ray
        task: Ray does not say whether it has started), failed, corrupt (a damaged result.json), stale (its process
        is gone) or pending (the detail says when a result of other settings is stored)."""
        try:
            r, corrupt = self.read_result(name), None
        except CorruptResult as exc:
            r, corrupt = None, exc
        mine = r is not None and r.get("key") == key
        m = self.read_running(name)
        if m is not None and m.get("key") != key:
            m = None  # a marker of another config
        if mine and on_other_data(r, data):
            if not _alive(m):
                return "outdated", f"computed on other data (fingerprint {r['data']}; data.json now {data}): the " \
                                   "next run recomputes it"
        elif mine and r.get("status") == "done" and self.pruned_from_other_dense(r):
            if not _alive(m):
                return "pending", f"pruned from another {r['dense']} model than the one stored now (retrained " \
                                  "since): the next run recomputes it"
        elif mine and r.get("status") == "done":
            stored = (r.get("diagnostics") or {}).get("key") if isinstance(r.get("diagnostics"), dict) else None
            if m is None or m.get("stage") != "diagnostics" or diagnostics is None \
                    or m.get("diagnostics") != diagnostics or stored == diagnostics:
                return "done", ""
            return _marker_state(m, diagnostics=True)
        if m is not None:
            # writing a result clears the marker: a marker left is newer than any failure or damage recorded
            return _marker_state(m)
        if corrupt is not None:
            return "corrupt", f"{corrupt} (rerun the study to recompute the cell)"
        if mine and r.get("status") == "failed":
            return "failed", r.get("error", "")
        if r is not None and not mine and r.get("status") == "done":  # what other_settings() says, from r at hand
            return "pending", "a result of other settings than config.toml is stored (config.toml edited after it " \
                              "ran, or the file copied from another study?): the next run recomputes it; restore " \
                              "config.toml to use it"
        return "pending", ""

    def other_settings(self, name: str, key: str) -> bool:
        """The cell holds a done result of another key than ``key`` (its settings changed since it ran: config.toml
        edited, or a result.json copied from another study)."""
        try:
            r = self.read_result(name)
        except CorruptResult:
            return False
        return r is not None and r.get("status") == "done" and r.get("key") != key


    def results(self) -> list[dict]:
        """Every readable result record (damaged ones are left out; ``cell_state`` names them)."""
        if not self.cells_dir.is_dir():
            return []
        out = []
        for p in sorted(self.cells_dir.glob("*/result.json")):
            try:
                out.append(self.read_result(p.parent.name))
            except CorruptResult:
                pass
        return [r for r in out if r is not None]
