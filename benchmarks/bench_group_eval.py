"""Per-group evaluation: all metrics for 100 groups vs a plain accuracy pass (target <= 1.05x the time).

Usage: python benchmarks/bench_group_eval.py [--model cnn] [--images 4096] [--groups 100]
"""

from __future__ import annotations

import argparse

import torch

from common import compare, machine, real_images, report
from prunefair.data import GroupedData
from prunefair.measure import evaluate_groups
from prunefair.models import build_model


@torch.no_grad()
def plain_accuracy(model, data, batch_size, device):
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    for s in range(0, len(data), batch_size):
        x = data.to_float(data.x[s : s + batch_size].to(device)).contiguous(memory_format=torch.channels_last)
        correct += (model(x).argmax(1) == data.y[s : s + batch_size].to(device)).sum()
    return int(correct) / len(data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    data, source = real_images(args.images)
    g = torch.randint(0, args.groups, (len(data),), generator=torch.Generator().manual_seed(0))
    data = GroupedData(data.x, data.y, g, data.class_names, tuple(f"g{i}" for i in range(args.groups)),
                       data.mean, data.std)
    print(machine())
    print(f"data: {source}, {len(data)} images, {args.groups} groups; model {args.model}")
    torch.manual_seed(0)
    model = build_model(args.model, num_classes=data.num_classes, input_shape=data.input_shape).to(args.device)
    model = model.to(memory_format=torch.channels_last).eval()
    sync = args.device != "cpu"
    t_group, t_plain = compare(
        lambda: evaluate_groups(model, data, batch_size=args.batch_size, device=args.device, channels_last=True),
        lambda: plain_accuracy(model, data, args.batch_size, args.device), rounds=7, sync=sync)
    report(f"per-group eval ({args.groups} groups) time", t_group, t_plain, unit="s", target="<= 1.05",
           higher_is_better=False)


if __name__ == "__main__":
    main()
