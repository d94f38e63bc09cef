"""Decode-once cache vs decoding the JPEGs every epoch, on real UTKFace (target: cached epoch >= 10x faster).

Both produce the same thing per epoch: every training image once, shuffled, as normalised float batches
with random crop (padding 4) and horizontal flip, at 48x48 (the paper's size).
- baseline: decode and resize every JPEG again each epoch the way a per-file Dataset does (Pillow's
  ``Image.open(path).convert("RGB").resize(...)``, torchvision's loader; none of prunefair's extra work per file:
  no file digest, no EXIF orientation), spread over the same number of worker processes as prunefair's one
  decode, then batch, normalise and augment; its pixels are checked equal to the cache's before timing;
- prunefair: iterate the cached uint8 tensor (``iterate_batches`` with ``Augment``).
Also printed: the first decode (cold), and a reload from the on-disk cache in a fresh memory cache.

Usage: python benchmarks/bench_data_cache.py [--images 23708] [--size 48] [--rounds 3] [--workers N] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from common import SHARED_DATA, compare, machine, report
from prunefair.data import Augment, GroupedData, iterate_batches
from prunefair.data import images as img
from prunefair.data.utkface import MEAN, STD, scan_folder


def _plain_decode(args: tuple[list[str], int]) -> list[np.ndarray]:
    """What a per-file Dataset's loader does: open, convert to RGB, resize (bilinear, as prunefair)."""
    from PIL import Image

    paths, size = args
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.uint8))
    return out


def decode_files(paths: list[str], size: int, workers: int) -> list[np.ndarray]:
    """Every file decoded by ``workers`` processes (in chunks, in order), or in this process for fewer than 512
    files, as prunefair's own decode does (a pool's start-up would cost more than it saves)."""
    if workers <= 1 or len(paths) < 512:
        return _plain_decode((paths, size))
    chunk = max(64, len(paths) // (workers * 8))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return [a for part in pool.map(_plain_decode, [(paths[i:i + chunk], size)
                                                       for i in range(0, len(paths), chunk)]) for a in part]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=23708)
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=img.default_workers())
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: fair on a loaded machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = SHARED_DATA / "utkface"
    if not root.is_dir():
        print(f"skipped: {root} (real UTKFace) not present; set PRUNEFAIR_DATA")
        return None
    files, parsed, _ = scan_folder(root)
    files = files[: args.images]
    y = torch.tensor([p.gender for p in parsed[: len(files)]])
    print(machine())
    print(f"{len(files)} UTKFace JPEGs at {args.size}x{args.size}, {args.workers} decode worker(s)")
    augment = Augment(crop_padding=4, flip=True)

    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        decoded = img.load_images(files, size=args.size, cache_dir=cache, workers=args.workers)
        cold = time.perf_counter() - t0
        img.clear_memory_cache()
        t0 = time.perf_counter()
        img.load_images(files, size=args.size, cache_dir=cache, workers=args.workers)
        warm = time.perf_counter() - t0
    data = GroupedData(decoded.x, y, y.clone(), ("m", "f"), ("m", "f"), mean=MEAN, std=STD)
    print(f"first decode into the cache: {cold:.2f} s; reload from the on-disk cache: {warm:.3f} s")

    # the same pixels both ways (the baseline does not win by decoding something else)
    sample = [str(f) for f in files[:256]]
    plain = torch.from_numpy(np.stack(decode_files(sample, args.size, 1))).permute(0, 3, 1, 2)
    if decoded.kept.tolist()[:256] != list(range(len(sample))) or not torch.equal(plain, decoded.x[: len(sample)]):
        raise SystemExit("the per-file decode and prunefair's cache differ in the first 256 images")

    def cached_epoch():
        gen = torch.Generator().manual_seed(0)
        n = 0
        for x, _, _ in iterate_batches(data, batch_size=args.batch_size, shuffle=True, generator=gen, augment=augment):
            n += len(x)
        assert n == len(data)

    def decode_every_epoch():
        gen = torch.Generator().manual_seed(0)
        order = torch.randperm(len(files), generator=gen).tolist()
        pixels = decode_files([files[i] for i in order], args.size, args.workers)
        mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        std = torch.tensor(STD).view(1, 3, 1, 1)
        n = 0
        for s in range(0, len(order), args.batch_size):
            batch = np.stack(pixels[s : s + args.batch_size])
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
            x = augment((x - mean) / std, gen)
            n += len(x)
        assert n == len(files)

    ours, base = compare(cached_epoch, decode_every_epoch, rounds=args.rounds, warmup=1)
    r = report("data epoch (cached uint8 vs decode JPEGs each epoch)", ours, base, unit="s", target="<= 0.1",
               higher_is_better=False)
    print(f"speed-up of a cached epoch: {base / ours:.1f}x (target >= 10x)")
    return r


if __name__ == "__main__":
    main()
