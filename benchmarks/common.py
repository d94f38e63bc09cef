"""Shared helpers for the benchmark scripts: timing, the real-data sample, machine description."""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PRUNEFAIR_DATA", ROOT.parent / "shared" / "data"))


def cpu_name() -> str:
    """The CPU's model name and the instruction set torch's kernels use (e.g. "AMD EPYC 7B13, AVX512"): the ratios
    depend on it (plain autograd's Hessian-vector product took 1.8x ours on one CPU of this project and 2.3x on
    another, at the same sizes; docs/benchmarks.md, session 13)."""
    name = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {torch.backends.cpu.get_cpu_capability()}"


def machine() -> str:
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.node()} | {cpu_name()} | {os.cpu_count()} CPUs | torch {torch.__version__} | threads "
            f"{torch.get_num_threads()} | {dev}")


def timeit(fn, *, repeat: int = 5, warmup: int = 1, sync: bool = False) -> float:
    """Median wall time of ``fn()`` over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if sync and torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if sync and torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def compare(fn_ours, fn_base, *, rounds: int = 5, warmup: int = 1, sync: bool = False) -> tuple[float, float]:
    """Median times of two functions measured in alternation (fair under background load)."""
    for _ in range(warmup):
        fn_ours()
        fn_base()
    ours, base = [], []
    for _ in range(rounds):
        base.append(timeit(fn_base, repeat=1, warmup=0, sync=sync))
        ours.append(timeit(fn_ours, repeat=1, warmup=0, sync=sync))
    return statistics.median(ours), statistics.median(base)


def real_images(n: int = 2048, *, size: int = 32):
    """A GroupedData of real CIFAR-10 images: the training split of a stratified subset of n (so about 0.9 n), or
    digits tiled to 3x32x32 if CIFAR-10 is absent (at most 1,797 images in all)."""
    from prunefair.data import GroupedData, dataset_names, load_dataset

    root = SHARED_DATA / "cifar10"
    if "cifar10" in dataset_names() and root.is_dir():
        try:
            data = load_dataset("cifar10", root=str(root), image_size=size, options={"limit": n}).train
        except TypeError:
            data = load_dataset("cifar10", root=str(root), image_size=size).train
        return data.subset(range(min(n, len(data)))), "CIFAR-10 (real, JPEG copy)"
    d = load_dataset("digits").train
    idx = torch.arange(n) % len(d)
    x = torch.nn.functional.interpolate(d.x[idx], size=(size, size)).repeat(1, 3, 1, 1)
    return GroupedData(x, d.y[idx], d.g[idx], d.class_names, d.group_names), "digits upsampled (CIFAR-10 loader absent)"


def report(name: str, ours: float, base: float, *, unit: str, target: str, higher_is_better: bool,
           labels: tuple[str, str] = ("prunefair", "baseline")) -> dict:
    ratio = ours / base
    print(f"{name}: {labels[0]} {ours:.4g} {unit}, {labels[1]} {base:.4g} {unit}, ratio {ratio:.3f} (target {target})")
    return {"case": name, "ours": ours, "baseline": base, "ratio": ratio, "target": target}
