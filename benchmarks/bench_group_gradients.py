"""Per-group gradient norms for 10 groups vs one plain full-data gradient pass (target <= 1.1x the time).

Methods timed in the same run, on the same model and data (real CIFAR-10 images when present):
- baseline: one plain pass over mixed batches (the full-data gradient, no per-group information);
- prunefair ``group_gradient_norms``: one pass over group-sorted batches that never mix groups;
- one forward and backward per group on all of that group's rows (batches as large as the group);
- the masked-loss loop: one pass over all the data per group, the loss masked to that group.
All are exact in eval mode (checked against each other). With batch norm in TRAIN mode the batch statistics
depend on how samples are batched, so the per-group answer depends on the method: the script prints how far
each one is from the masked-loss loop over the plain pass's mixed batches.

Usage: python benchmarks/bench_group_gradients.py [--images 1024] [--width 0.5] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from common import machine, real_images, report
from prunefair.diagnostics import group_batches, group_gradient_norms
from prunefair.models import build_model


def clock_for(device: str):
    """CPU time of this process on the CPU (fair on a shared, overloaded machine; threads = 1), wall time on GPUs."""
    return time.process_time if device == "cpu" else time.perf_counter


def compare(fn_ours, fn_base, *, rounds: int, clock, sync: bool = False) -> tuple[float, float]:
    """Median times of two functions measured in alternation, after one warm-up of each."""
    fn_ours(), fn_base()
    ours, base = [], []
    for _ in range(rounds):
        for fn, acc in ((fn_base, base), (fn_ours, ours)):
            if sync:
                torch.cuda.synchronize()
            t0 = clock()
            fn()
            if sync:
                torch.cuda.synchronize()
            acc.append(clock() - t0)
    return statistics.median(ours), statistics.median(base)


def _grad(model, x, y, params, weight=None):
    loss = F.cross_entropy(model(x), y, reduction="none")
    loss = (loss * weight).sum() if weight is not None else loss.sum()
    return torch.autograd.grad(loss, params)


def plain_pass(model, data, bs, device):
    params = [p for p in model.parameters()]
    acc = [torch.zeros_like(p) for p in params]
    for s in range(0, len(data), bs):
        x = data.to_float(data.x[s : s + bs].to(device))
        torch._foreach_add_(acc, _grad(model, x, data.y[s : s + bs].to(device), params))
    return acc


def per_group_rows(model, data, device):
    params = [p for p in model.parameters()]
    out = np.zeros(data.num_groups)
    for a in range(data.num_groups):
        idx = torch.nonzero(data.g == a).flatten()
        g = _grad(model, data.to_float(data.x[idx].to(device)), data.y[idx].to(device), params)
        out[a] = float(torch.cat([t.reshape(-1) for t in g]).norm()) / len(idx)
    return out


def masked_loop(model, data, bs, device):
    params = [p for p in model.parameters()]
    counts = data.group_counts()
    out = np.zeros(data.num_groups)
    for a in range(data.num_groups):
        acc = [torch.zeros_like(p) for p in params]
        for s in range(0, len(data), bs):
            x = data.to_float(data.x[s : s + bs].to(device))
            w = (data.g[s : s + bs] == a).float().to(device)
            torch._foreach_add_(acc, _grad(model, x, data.y[s : s + bs].to(device), params, w))
        out[a] = float(torch.cat([t.reshape(-1) for t in acc]).norm()) / counts[a]
    return out


def sorted_batches_train_mode(model, data, bs, device):
    """The one-pass method without switching to eval mode (to show what batch norm in train mode does)."""
    params = [p for p in model.parameters()]
    counts = data.group_counts()
    sums = {}
    for a, idx in group_batches(data, batch_size=bs):
        g = _grad(model, data.to_float(data.x[idx].to(device)), data.y[idx].to(device), params)
        sums[a] = [s + t for s, t in zip(sums[a], g)] if a in sums else list(g)
    return np.array([float(torch.cat([t.reshape(-1) for t in sums[a]]).norm()) / counts[a]
                     for a in range(data.num_groups)])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.manual_seed(0)
    data, source = real_images(args.images)
    dev = args.device
    if dev == "cpu":
        torch.set_num_threads(1)
    clock = clock_for(dev)
    print(machine())
    print(f"timing: {'CPU time of this process, 1 thread' if dev == 'cpu' else 'wall time'}")
    print(f"data: {source}, {len(data)} images, {data.num_groups} groups (classes); model {args.model} "
          f"width {args.width}, batch size {args.batch_size}, device {dev}")
    model = build_model(args.model, num_classes=data.num_classes, input_shape=data.input_shape,
                        width=args.width).to(dev)
    model.train()
    # a few SGD steps so batch-norm running statistics and weights are not at their initial values
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for s in range(0, len(data), 128):
        opt.zero_grad()
        F.cross_entropy(model(data.to_float(data.x[s : s + 128].to(dev))), data.y[s : s + 128].to(dev)).backward()
        opt.step()
    model.eval()
    sync = dev != "cpu"
    bs = args.batch_size
    ours = lambda: group_gradient_norms(model, data, batch_size=bs, device=dev)  # noqa: E731
    t_ours, t_plain = compare(ours, lambda: plain_pass(model, data, bs, dev), rounds=args.rounds, clock=clock, sync=sync)
    report("per-group gradient norms (10 groups), one sorted pass vs plain full-data gradient pass", t_ours, t_plain,
           unit="s", target="<= 1.1", higher_is_better=False)
    t_rows, t_plain2 = compare(lambda: per_group_rows(model, data, dev), lambda: plain_pass(model, data, bs, dev),
                               rounds=args.rounds, clock=clock, sync=sync)
    report("one forward+backward per group on its rows vs plain pass", t_rows, t_plain2, unit="s",
           target="(reference, ~0.7-1.0)", higher_is_better=False)
    t0 = clock()
    masked = masked_loop(model, data, bs, dev)
    t_masked = clock() - t0
    report("masked-loss loop vs plain pass (one run)", t_masked, t_plain, unit="s", target="(reference, ~10)",
           higher_is_better=False, labels=("masked-loss loop", "plain pass"))
    report("masked-loss loop vs prunefair one pass (one run)", t_masked, t_ours, unit="s",
           target="(reference)", higher_is_better=False, labels=("masked-loss loop", "prunefair one pass"))
    # exactness in eval mode
    res = ours()
    rows = per_group_rows(model, data, dev)
    rel = lambda a, b: float(np.max(np.abs(a - b) / np.abs(b)))  # noqa: E731
    print(f"eval mode, max relative difference of ||g_a|| vs masked loop: prunefair {rel(res.norms, masked):.2e}, "
          f"per-group rows {rel(rows, masked):.2e}; Proposition 1 cancellation "
          f"||sum |D_a| g_a|| / sum |D_a| ||g_a|| = {res.cancellation:.3f}")
    # batch norm in train mode: batch statistics depend on the batching
    model.train()
    masked_t = masked_loop(model, data, bs, dev)
    sorted_t = sorted_batches_train_mode(model, data, bs, dev)
    rows_t = per_group_rows(model, data, dev)
    model.eval()
    print("batch norm in TRAIN mode, max relative difference of ||g_a|| from the masked loop over the plain "
          f"pass's mixed batches: sorted one pass {rel(sorted_t, masked_t):.2e}, per-group rows "
          f"{rel(rows_t, masked_t):.2e} (only the masked loop reproduces the plain pass's batch statistics; "
          "prunefair therefore always works in eval mode, where every method is exact)")


if __name__ == "__main__":
    main()
