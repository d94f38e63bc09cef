"""Training step: prunefair's fine-tuning with masks held vs a bare PyTorch loop (target >= 0.95x images/s).

Same model, batch size, data and optimiser; the bare loop indexes the same in-memory tensor batches.
Usage: python benchmarks/bench_train_step.py [--model cnn] [--images 2048] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F

from common import compare, machine, real_images, report
from prunefair.models import build_model
from prunefair.prune import make_masks
from prunefair.train import TrainSettings, fit


def bare_epoch(model, data, batch_size, device, channels_last):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    model.train()
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    for s in range(0, len(data), batch_size):
        idx = perm[s : s + batch_size]
        x = data.to_float(data.x[idx].to(device))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = data.y[idx].to(device)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rate", type=float, default=0.9)
    args = ap.parse_args()
    data, source = real_images(args.images)
    print(machine())
    print(f"data: {source}, {len(data)} images {tuple(data.x.shape[1:])}; model {args.model}; batch {args.batch_size}")
    torch.manual_seed(0)
    cl = True  # channels_last for both loops, on every device (measured faster on this CPU; the GPU presets use it)
    base_model = build_model(args.model, num_classes=data.num_classes, input_shape=data.input_shape).to(args.device)
    base_model = base_model.to(memory_format=torch.channels_last)
    ours_model = copy.deepcopy(base_model)
    masks = make_masks(ours_model, args.rate)
    settings = TrainSettings(epochs=1, batch_size=args.batch_size, lr=0.01)
    t_ours, t_base = compare(
        lambda: fit(ours_model, data, settings, seed=0, device=args.device, masks=masks, channels_last=cl),
        lambda: bare_epoch(base_model, data, args.batch_size, args.device, cl), rounds=5, sync=args.device != "cpu")
    n = len(data)
    report("train step (masks held) images/s", n / t_ours, n / t_base, unit="img/s", target=">= 0.95",
           higher_is_better=True)


if __name__ == "__main__":
    main()
