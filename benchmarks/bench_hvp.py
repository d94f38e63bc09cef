"""One Hessian-vector product: prunefair's double backward (``second_order_rules``) against plain autograd.

Both build the gradient graph of the same model on the same batch once, then time products through it in
alternation (median of ``--rounds``); the products are checked equal (relative difference printed). This is the
unit every eigenvalue, trace and residual in the diagnostics is paid in.

Usage: python benchmarks/bench_hvp.py [--models cnn,resnet18] [--width 0.5] [--samples 92] [--rounds 9]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import machine, real_images
from prunefair.diagnostics import GroupHessian
from prunefair.models import build_model


def randomise_batch_norm(model: torch.nn.Module) -> None:
    """Running statistics of a trained-looking model (an untrained one has mean 0, variance 1)."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="cnn,resnet18")
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--samples", type=int, default=92)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    dev = args.device
    if dev == "cpu":
        torch.set_num_threads(1)
    clock = time.process_time if dev == "cpu" else time.perf_counter

    def sync():
        if dev != "cpu":
            torch.cuda.synchronize()

    print(machine())
    data, source = real_images(max(256, 2 * args.samples))  # the training split of a subset: about 0.9 of it
    x = data.to_float(data.x[: args.samples].to(dev))
    y = data.y[: args.samples].to(dev)
    print(f"timing: {'CPU time of this process, 1 thread' if dev == 'cpu' else 'wall time'}; {len(x)} images"
          + (f" (of {args.samples} asked: the data has no more)" if len(x) < args.samples else ""))
    for name in args.models.split(","):
        model = build_model(name, num_classes=data.num_classes, input_shape=data.input_shape,
                            width=args.width).to(dev).eval()
        randomise_batch_norm(model)
        ops = {"prunefair": GroupHessian(model, x, y, method="double_backward"),
               "autograd": GroupHessian(model, x, y, method="double_backward", rules=False)}
        v = torch.randn(ops["autograd"].dim, generator=torch.Generator().manual_seed(0)).to(dev)
        graph, product, out = {k: [] for k in ops}, {k: [] for k in ops}, {}
        for r in range(args.rounds + 1):
            for k, op in ops.items():
                op.release()
                sync()
                t0 = clock()
                op.gradient()  # builds the graph
                sync()
                t1 = clock()
                out[k] = op(v)
                sync()
                t2 = clock()
                if r:  # round 0 is the warm-up
                    graph[k].append(t1 - t0)
                    product[k].append(t2 - t1)
        diff = float((out["prunefair"] - out["autograd"]).norm() / out["autograd"].norm())
        g = {k: statistics.median(t) * 1e3 for k, t in graph.items()}
        p = {k: statistics.median(t) * 1e3 for k, t in product.items()}
        print(f"{name} (width {args.width}, {ops['autograd'].dim:,} parameters): product {p['prunefair']:.1f} ms "
              f"vs plain autograd {p['autograd']:.1f} ms, ratio {p['prunefair'] / p['autograd']:.3f}; gradient "
              f"graph {g['prunefair']:.1f} vs {g['autograd']:.1f} ms, ratio {g['prunefair'] / g['autograd']:.3f}; "
              f"products differ by {diff:.1e} (relative)")


if __name__ == "__main__":
    main()
