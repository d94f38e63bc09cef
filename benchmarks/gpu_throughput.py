"""GPU throughput: images/s of the paper's models, train and eval, prunefair vs a bare PyTorch loop.

For each model: bare loops in fp32 (NCHW, and channels_last) and in bf16+channels_last (the best a researcher
writes by hand), and prunefair's fit() (masks held at 90% sparsity, data and augmentation on the device,
channels_last) in fp32 and bf16, and in bf16 with torch.compile (for --compile-models, after every model's other
figures: compiling is the slow part, so a run cut short by a time limit keeps them). Each ratio compares like with
like: prunefair fp32 against the bare fp32 channels_last loop, prunefair bf16 against the bare bf16 channels_last
loop (the NCHW fp32 loop is printed for reference only). Eval: evaluate_groups (100 groups) vs a plain accuracy
pass, both fp32 channels_last. Every figure is the best of 2 timed epochs after one warm-up epoch, for every side alike.
Writes a JSON of the figures to --json after each model. Needs a CUDA device (exits with a message without one).
Usage: python benchmarks/gpu_throughput.py [--models resnet18,...] [--compile-models resnet18] [--no-compile]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time

import torch
import torch.nn.functional as F

from common import machine
from prunefair.data import GroupedData
from prunefair.measure import evaluate_groups
from prunefair.models import build_model, count_parameters
from prunefair.prune import make_masks
from prunefair.train import TrainSettings, fit


def synthetic_cifar(n: int, device) -> GroupedData:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    g = torch.randint(0, 100, (n,), generator=gen)
    names = tuple(str(i) for i in range(10))
    return GroupedData(x, y, g, names, tuple(f"g{i}" for i in range(100)), (0.49, 0.48, 0.45),
                       (0.25, 0.24, 0.26)).to(device)


def bare_train(model, data, bs, bf16: bool, cl: bool):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    model.train()
    perm = torch.randperm(len(data), device=data.x.device)
    for s in range(0, len(data), bs):
        idx = perm[s : s + bs]
        x = data.to_float(data.x[idx])
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(data.x.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        loss = F.cross_entropy(out.float(), data.y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


@torch.no_grad()
def bare_eval(model, data, bs, bf16: bool):
    model.eval()
    correct = torch.zeros((), device=data.x.device, dtype=torch.long)
    for s in range(0, len(data), bs):
        x = data.to_float(data.x[s : s + bs]).contiguous(memory_format=torch.channels_last)
        with torch.autocast(data.x.device.type, dtype=torch.bfloat16, enabled=bf16):
            correct += (model(x).argmax(1) == data.y[s : s + bs]).sum()
    return int(correct)


def _sync() -> None:
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn, n_images: int, reps: int = 2) -> float:
    """Images/s of the best of ``reps`` runs after one warm-up run (cudnn autotune, compile), queue drained
    before and after each."""
    fn()
    _sync()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync()
        best = min(best, time.perf_counter() - t0)
    return n_images / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet18,vgg19,resnet50")
    ap.add_argument("--images", type=int, default=12800)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--json", default="gpu_throughput.json")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--compile-models", help="the models also timed with torch.compile (default: every model of "
                    "--models); each compiles for about a minute on a cold cache")
    ap.add_argument("--device", default="cuda", help="cuda; cpu only checks that the script runs (tiny --images)")
    args = ap.parse_args()
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"gpu_throughput.py: needs a CUDA device; torch {torch.__version__} sees none "
                 f"(torch.cuda.is_available() is False); --device cpu only checks that the script runs")
    torch.backends.cudnn.benchmark = True
    print(machine())
    if dev.type != "cuda":
        print(f"device {dev}: a check that the script runs, not a throughput figure")
    data = synthetic_cifar(args.images, dev)
    rows = []
    names = args.models.split(",")
    for name in names:
        torch.manual_seed(0)
        base = build_model(name, num_classes=10, input_shape=(3, 32, 32)).to(dev)
        print(f"\n{name}: {count_parameters(base) / 1e6:.2f}M parameters, {args.images} images, batch {args.batch_size}")
        res = {"model": name, "params": count_parameters(base)}
        m = copy.deepcopy(base)
        res["bare_fp32_train"] = timed(lambda: bare_train(m, data, args.batch_size, False, False), len(data))
        m = copy.deepcopy(base).to(memory_format=torch.channels_last)
        res["bare_fp32_cl_train"] = timed(lambda: bare_train(m, data, args.batch_size, False, True), len(data))
        m = copy.deepcopy(base).to(memory_format=torch.channels_last)
        res["bare_bf16_cl_train"] = timed(lambda: bare_train(m, data, args.batch_size, True, True), len(data))
        for precision in ("fp32", "bf16"):
            prunefair_train(res, base, data, args, dev, precision, False)
        m = copy.deepcopy(base).to(memory_format=torch.channels_last)
        res["bare_bf16_eval"] = timed(lambda: bare_eval(m, data, 1024, True), len(data))
        res["bare_fp32_eval"] = timed(lambda: bare_eval(m, data, 1024, False), len(data))
        res["prunefair_groups100_fp32_eval"] = timed(
            lambda: evaluate_groups(m, data, batch_size=1024, device=dev, channels_last=True), len(data))
        for k, v in res.items():
            if k.endswith(("_train", "_eval")):
                print(f"  {k:34s} {v:10.0f} img/s")
        if "prunefair_bf16_train" in res:
            print(f"  ratio prunefair bf16 (masks, aug) / bare bf16 train: "
                  f"{res['prunefair_bf16_train'] / res['bare_bf16_cl_train']:.3f}")
        if "prunefair_fp32_train" in res:
            print(f"  ratio prunefair fp32 (masks, aug) / bare fp32 channels_last train: "
                  f"{res['prunefair_fp32_train'] / res['bare_fp32_cl_train']:.3f} (against the NCHW bare fp32 loop: "
                  f"{res['prunefair_fp32_train'] / res['bare_fp32_train']:.3f}, reference only)")
        else:
            print("  ratio prunefair fp32 / bare fp32 train: failed (no prunefair fp32 run)")
        print(f"  ratio per-group eval (100 groups, fp32) / plain fp32 eval: "
              f"{res['prunefair_groups100_fp32_eval'] / res['bare_fp32_eval']:.3f} (throughput)")
        rows.append(res)
        base = m = None  # free the GPU memory before the next model
        torch.cuda.empty_cache()
        write(args.json, rows)  # after each model: a run cut short by gpu.sh's time limit keeps the rest
    compiled = [] if args.no_compile else (args.compile_models.split(",") if args.compile_models else names)
    for name in compiled:  # last: one cold compile of a paper model takes about a minute
        res = next((r for r in rows if r["model"] == name), None)
        if res is None:
            print(f"\n--compile-models names {name!r}, which --models does not time: left out")
            continue
        torch.manual_seed(0)
        base = build_model(name, num_classes=10, input_shape=(3, 32, 32)).to(dev)  # the same weights as above
        print(f"\n{name} with torch.compile (bf16; the first epoch compiles):")
        t0 = time.perf_counter()
        prunefair_train(res, base, data, args, dev, "bf16", True)
        if "prunefair_bf16_compile_train" in res:
            ratio = (f", ratio to eager bf16 {res['prunefair_bf16_compile_train'] / res['prunefair_bf16_train']:.3f}"
                     if "prunefair_bf16_train" in res else "")
            print(f"  {'prunefair_bf16_compile_train':34s} {res['prunefair_bf16_compile_train']:10.0f} img/s{ratio}")
        print(f"  (compile and 3 epochs: {time.perf_counter() - t0:.0f} s)")
        del base
        torch.cuda.empty_cache()
        write(args.json, rows)


def prunefair_train(res: dict, base, data, args, dev, precision: str, comp: bool) -> None:
    """prunefair's fit() (masks at 90%, crop and flip on the device, channels_last) into ``res``."""
    m = copy.deepcopy(base).to(memory_format=torch.channels_last)
    masks = make_masks(m, 0.9)
    st = TrainSettings(epochs=1, batch_size=args.batch_size, lr=0.01, crop_padding=4, flip=True,
                       precision=precision, compile=comp)
    key = f"prunefair_{precision}{'_compile' if comp else ''}_train"
    try:
        res[key] = timed(lambda: fit(m, data, st, seed=0, device=dev, masks=masks, channels_last=True), len(data))
    except Exception as exc:  # report, keep going
        print(f"  {key} failed: {type(exc).__name__}: {exc}")


def write(path: str, rows: list[dict]) -> None:
    with open(path, "w") as fh:
        json.dump({"machine": machine(), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
