"""Decode image files once into uint8 tensors (N, 3, H, W), cached in memory and on disk.

Decoding uses Pillow (no torchvision), in a process pool when there are many files. The on-disk cache
is one ``.npy`` per (file list, preprocessing): its name is a hash of every source file's name, size and
modification time plus the target size, so an edited file or a changed setting reads a new cache (a file
rewritten with the same size and its old mtime, as ``cp -p`` or ``rsync -t`` can leave it, is not noticed). Files
are written atomically (temporary file, then rename). A file that cannot be decoded raises
:class:`ImageReadError` naming it, or, with ``skip_unreadable``, is left out and counted.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from prunefair.io import atomic_write

log = logging.getLogger("prunefair.data")

CACHE_VERSION = 2  # 2: EXIF orientation, 16-bit grey and transparency decoded as a viewer shows them
_MEMORY: dict[str, "DecodedImages"] = {}


class ImageReadError(ValueError):
    """An image file could not be read or decoded; the message names the file."""


@dataclass
class DecodedImages:
    """Decoded pixels of the readable files, and which of the requested files those are."""

    x: torch.Tensor  # uint8 (N, 3, H, W)
    kept: np.ndarray  # indices into the requested file list, in order
    digests: np.ndarray  # (N,) bytes: BLAKE2b-128 of each kept file's bytes (finds byte-identical files)
    unreadable: list[str]  # files that could not be decoded (only with skip_unreadable)


def _to_rgb(im):
    """8-bit RGB as a viewer shows the image: EXIF orientation applied, 16-bit grey scaled to 8 bits, transparency
    composited on black. 32-bit integer and float images have no agreed range: refused (an error naming the file)."""
    from PIL import Image, ImageOps

    im = ImageOps.exif_transpose(im)
    if im.mode.startswith("I;16"):
        a = np.asarray(im).astype(np.uint32)
        im = Image.fromarray(((a * 255 + 32767) // 65535).astype(np.uint8), "L")
    elif im.mode in ("I", "F"):
        raise ValueError(f"unsupported pixel format {im.mode!r} (32-bit integer or float); save the image as 8-bit")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = Image.alpha_composite(Image.new("RGBA", im.size, (0, 0, 0, 255)), im.convert("RGBA"))
    return im.convert("RGB")


def _decode_one(path: str, size: int | None) -> tuple[np.ndarray, bytes] | str:
    """(H, W, 3) uint8 pixels of one file and the digest of its bytes, or the error message."""
    from PIL import Image

    try:
        with open(path, "rb") as f:
            raw = f.read()
        with Image.open(io.BytesIO(raw)) as im:
            im = _to_rgb(im)
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8), hashlib.blake2b(raw, digest_size=16).digest()
    except Exception as exc:  # Pillow raises many kinds (OSError, SyntaxError, ValueError, ...)
        # Pillow names the stream it read, here an in-memory copy ("<_io.BytesIO object at 0x...>"): the caller
        # names the file instead
        reason = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", str(exc))
        return f"{type(exc).__name__}: {reason}"


def _decode_chunk(args: tuple[list[str], int | None]) -> list[tuple[np.ndarray, bytes] | str]:
    paths, size = args
    return [_decode_one(p, size) for p in paths]


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def _decode_all(paths: list[str], size: int | None, workers: int) -> list[np.ndarray | str]:
    if workers <= 1 or len(paths) < 512:
        return _decode_chunk((paths, size))
    chunk = max(64, len(paths) // (workers * 8))
    jobs = [(paths[i:i + chunk], size) for i in range(0, len(paths), chunk)]
    out: list[np.ndarray | str] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for part in pool.map(_decode_chunk, jobs):
            out.extend(part)
    return out


def cache_key(paths: list[str], *, size: int | None, skip_unreadable: bool) -> str:
    """Hash of the source files (name, size, mtime) and the preprocessing."""
    h = hashlib.sha256(f"v{CACHE_VERSION}|size={size}|skip={skip_unreadable}".encode())
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"|{p}|{st.st_size}|{st.st_mtime_ns}".encode())
        except OSError:
            h.update(f"|{p}|missing".encode())
    return h.hexdigest()[:24]


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda fh: np.save(fh, array, allow_pickle=False))


def load_images(
    paths: list[str | Path],
    *,
    size: int | None,
    skip_unreadable: bool = False,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
) -> DecodedImages:
    """Decode ``paths`` (resized to ``size`` x ``size`` when given) into one uint8 tensor, using caches."""
    paths = [str(p) for p in paths]
    key = cache_key(paths, size=size, skip_unreadable=skip_unreadable)
    if key in _MEMORY:
        return _MEMORY[key]
    result = _read_disk_cache(cache_dir, key, paths)
    if result is None:
        result = _decode(paths, size=size, skip_unreadable=skip_unreadable, workers=workers or default_workers())
        if cache_dir is not None:
            _write_disk_cache(Path(cache_dir), key, result)
    _MEMORY[key] = result
    return result


def _write_disk_cache(d: Path, key: str, result: DecodedImages) -> None:
    """Store ``result`` in ``d``; a cache that cannot be written is a warning, not an error (the cache only saves
    decoding time, it never changes results), so the decoded images are used all the same."""
    try:
        _atomic_save_npy(d / f"images-{key}.kept.npy", result.kept.astype(np.int64))
        _atomic_save_npy(d / f"images-{key}.digests.npy", result.digests)
        _atomic_save_npy(d / f"images-{key}.npy", result.x.numpy())
    except OSError as exc:  # a file where the folder should be, no permission, a full disk
        log.warning("data.cache_dir = %s: cannot write the image cache (%s); continuing without it", d,
                    exc.strerror or exc)
        return
    log.info("wrote image cache %s", d / f"images-{key}.npy")


def _read_disk_cache(cache_dir, key: str, paths: list[str]) -> DecodedImages | None:
    n_requested = len(paths)
    if cache_dir is None:
        return None
    d = Path(cache_dir)
    xp, kp, dp = d / f"images-{key}.npy", d / f"images-{key}.kept.npy", d / f"images-{key}.digests.npy"
    if not (xp.is_file() and kp.is_file() and dp.is_file()):
        return None
    try:
        x = np.load(xp, allow_pickle=False)
        kept = np.load(kp, allow_pickle=False)
        digests = np.load(dp, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:  # EOFError: an empty file
        log.warning("ignoring unreadable image cache %s (%s); decoding again", xp, exc)
        return None
    if (x.dtype != np.uint8 or x.ndim != 4 or len(x) != len(kept) or len(digests) != len(kept)
            or (len(kept) and kept.max() >= n_requested)):
        log.warning("ignoring inconsistent image cache %s; decoding again", xp)
        return None
    missing = sorted(set(range(n_requested)) - set(kept.tolist()))
    log.info("read image cache %s", xp)
    if missing:  # said on every run, as when they were decoded
        log.warning("skipped %d unreadable image(s), first: %s", len(missing), paths[missing[0]])
    return DecodedImages(torch.from_numpy(x), kept, digests, [paths[i] for i in missing])


def _decode(paths: list[str], *, size: int | None, skip_unreadable: bool, workers: int) -> DecodedImages:
    decoded = _decode_all(paths, size, workers)
    arrays, kept, digests, bad = [], [], [], []
    for i, (p, item) in enumerate(zip(paths, decoded)):
        if isinstance(item, str):
            if not skip_unreadable:
                raise ImageReadError(f"{p}: cannot decode image ({item}); set data.skip_unreadable = true "
                                     "to skip unreadable files")
            bad.append(p)
            continue
        item, digest = item
        if arrays and item.shape != arrays[0].shape:
            raise ImageReadError(f"{p}: image is {item.shape[1]}x{item.shape[0]}, others are "
                                 f"{arrays[0].shape[1]}x{arrays[0].shape[0]}; set data.image_size to resize all")
        arrays.append(item)
        kept.append(i)
        digests.append(digest)
    if bad:
        log.warning("skipped %d unreadable image(s), first: %s", len(bad), bad[0])
    if arrays:
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    else:
        x = torch.zeros((0, 3, size or 1, size or 1), dtype=torch.uint8)
    return DecodedImages(x, np.asarray(kept, dtype=np.int64), np.asarray(digests, dtype="S16"), bad)


def clear_memory_cache() -> None:
    _MEMORY.clear()
