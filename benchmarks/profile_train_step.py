"""Where a training step's time goes: torch.profiler over a few steps of the bare bf16 loop and of prunefair's
fit (masks at 90%, augmentation on the device), CPU and CUDA. Prints per-step host time, kernel launches and
the host operations that differ most. Usage: python benchmarks/profile_train_step.py [--model resnet18]"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from gpu_throughput import bare_train, synthetic_cifar
from prunefair.models import build_model
from prunefair.prune import make_masks
from prunefair.train import TrainSettings, fit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    data = synthetic_cifar(args.batch_size * args.steps, dev)
    model = build_model(args.model, num_classes=10, input_shape=(3, 32, 32)).to(dev).to(
        memory_format=torch.channels_last)
    masks = make_masks(model, 0.9)
    st = TrainSettings(epochs=1, batch_size=args.batch_size, lr=0.01, crop_padding=4, flip=True, precision="bf16")
    runs = {"bare": lambda: bare_train(model, data, args.batch_size, True, True),
            "prunefair": lambda: fit(model, data, st, seed=0, device=dev, masks=masks, channels_last=True)}
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    counts = {}
    for name, fn in runs.items():
        fn()
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        with profile(activities=acts) as prof:
            fn()
            if dev.type == "cuda":
                torch.cuda.synchronize()
        ev = prof.key_averages()
        counts[name] = {e.key: (e.count, e.self_cpu_time_total) for e in ev}
        kernels = sum(e.count for e in ev if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA)
        cpu = sum(e.self_cpu_time_total for e in ev) / 1e3 / args.steps
        gpu = sum(getattr(e, "self_device_time_total", 0) for e in ev) / 1e3 / args.steps
        print(f"{name}: host {cpu:.2f} ms/step (self time of all ops), device {gpu:.2f} ms/step, "
              f"{kernels / args.steps:.0f} kernels/step")
        print(ev.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))
    diff = sorted(((counts["prunefair"].get(k, (0, 0))[1] - counts["bare"].get(k, (0, 0))[1], k)
                   for k in set(counts["bare"]) | set(counts["prunefair"])), reverse=True)
    print("host self time added by prunefair per step (ms):")
    for d, k in diff[:15]:
        print(f"  {k:50s} {d / 1e3 / args.steps:+.3f}  (calls {counts['prunefair'].get(k, (0, 0))[0] / args.steps:.1f}"
              f" vs {counts['bare'].get(k, (0, 0))[0] / args.steps:.1f})")


if __name__ == "__main__":
    main()
