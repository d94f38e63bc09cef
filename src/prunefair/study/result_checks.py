"""What a cell's result.json must hold to be used: checked when read, so that a record edited or damaged by hand is
reported as corrupt (naming the file and what is wrong) and recomputed by the next run, not fatal to the tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class CorruptResult(ValueError):
    """A cell's result.json that cannot be read, or lacks what its status needs (e.g. edited by hand)."""


def check_result(r: Any, path: Path) -> dict:
    """``r`` if it is a well-formed result record, else CorruptResult naming the file and what is wrong."""
    if not isinstance(r, dict):
        raise CorruptResult(f"{path}: expected a JSON object, found {type(r).__name__}")
    status = r.get("status")
    if status not in ("done", "failed"):
        raise CorruptResult(f"{path}: status {status!r} is neither 'done' nor 'failed'")
    need = ["key"]  # a failure record only has to say which cell failed and why
    if status == "done":
        need += ["kind", "seed", "metrics"] + (["rate", "method", "oneshot"] if r.get("kind") == "prune" else [])
    missing = [k for k in need if k not in r]
    if missing:
        raise CorruptResult(f"{path}: missing {', '.join(missing)}")
    bad = [k for k in ("metrics", "oneshot") if k in r and not isinstance(r[k], dict)]
    if bad:
        raise CorruptResult(f"{path}: {bad[0]} is not an object")
    if status == "done" and (problem := _done_problem(r)):
        raise CorruptResult(f"{path}: {problem}")
    return r


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _count(v: Any) -> bool:
    """A count as JSON holds it: a non-negative integer (an integral float is accepted)."""
    return _number(v) and v >= 0 and float(v).is_integer()


def _stats_problem(s: Any, where: str) -> str | None:
    """What is wrong with the per-group stats ``s`` of one split (``where``: e.g. metrics.test), None if nothing:
    group_names, count, correct and loss_sum are lists of one length, of names, counts, counts and numbers."""
    if not isinstance(s, dict):
        return f"{where} is {type(s).__name__}, not an object"
    missing = [k for k in ("group_names", "count", "correct", "loss_sum") if k not in s]
    if missing:
        return f"{where} lacks {', '.join(missing)}"
    names = s["group_names"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return f"{where}.group_names is not a list of names"
    for k, ok, what in (("count", _count, "counts"), ("correct", _count, "counts"), ("loss_sum", _number, "numbers")):
        v = s[k]
        if not isinstance(v, list):
            return f"{where}.{k} is {type(v).__name__}, not a list"
        if len(v) != len(names):
            return f"{where}.{k} has {len(v)} values for {len(names)} groups"
        if not all(ok(x) for x in v):
            return f"{where}.{k} holds {next(x for x in v if not ok(x))!r}; expected {what}"
    if any(c > n for c, n in zip(s["correct"], s["count"])):
        return f"{where}.correct exceeds {where}.count"
    return None


def _done_problem(r: dict) -> str | None:
    """What makes a done result record unusable for the tables, None if nothing (keys only some versions wrote, such
    as data, layer_sparsity or diagnostics, stay optional)."""
    if r["kind"] not in ("dense", "prune"):
        return f"kind {r['kind']!r} is neither 'dense' nor 'prune'"
    if not isinstance(r["seed"], int) or isinstance(r["seed"], bool):
        return f"seed = {r['seed']!r} is not an integer"
    if "rate" in r and not (_number(r["rate"]) and 0.0 <= r["rate"] < 1.0):
        return f"rate = {r['rate']!r} is not a pruning rate (a number in [0, 1))"
    if "method" in r and not isinstance(r["method"], str):
        return f"method = {r['method']!r} is not a name"
    for k in ("achieved_sparsity", "distance", "distance_oneshot"):
        if r.get(k) is not None and not _number(r[k]):
            return f"{k} = {r[k]!r} is not a number"
    layers = r.get("layer_sparsity")
    if layers is not None and not (isinstance(layers, dict) and all(_number(v) for v in layers.values())):
        return "layer_sparsity is not an object of numbers"
    for part in ("metrics", "oneshot"):
        for split, stats in r.get(part, {}).items():
            if problem := _stats_problem(stats, f"{part}.{split}"):
                return problem
    for split, stats in r.get("oneshot", {}).items():  # one split, evaluated twice: the same groups and samples
        after = r["metrics"].get(split)
        if after is not None and (after["group_names"] != stats["group_names"] or after["count"] != stats["count"]):
            return f"oneshot.{split} and metrics.{split} cover different groups or samples"
    return None


def data_problem(r: dict, described: dict | None) -> str | None:
    """What in the done result ``r`` disagrees with ``described`` (the study's data.json) when both record the same
    data fingerprint: groups or per-group sample counts other than the data's. None if nothing, or if there is
    nothing to compare (results and data.json of versions without fingerprints, or of other data)."""
    if not isinstance(described, dict) or r.get("status") != "done" or r.get("data") is None \
            or r.get("data") != described.get("fingerprint"):
        return None
    names, counts = described.get("group_names"), described.get("group_counts")
    for part in ("metrics", "oneshot"):
        for split, stats in r.get(part, {}).items():
            if isinstance(names, list) and stats["group_names"] != names:
                return f"{part}.{split}.group_names {stats['group_names']} are not the data's groups {names} " \
                       "(data.json)"
            want = counts.get(split) if isinstance(counts, dict) else None
            if isinstance(want, list) and [int(c) for c in stats["count"]] != want:
                return f"{part}.{split}.count {stats['count']} is not the data's samples per group {want} (data.json)"
    return None
