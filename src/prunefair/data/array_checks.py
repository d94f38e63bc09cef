"""Checks and coding of in-memory arrays (``register_arrays``): each refusal names the argument at fault.

Coding rule (labels and attributes alike): without ``names``, the distinct values, sorted (numbers by value),
become codes 0..K-1 and their string forms the names; integer values that already are exactly 0..K-1 thus keep
their codes. With ``names``, integer values are codes into ``names`` (-1 = unknown) and any other values are
coded in the order ``names`` lists them.
"""

from __future__ import annotations

import numpy as np
import torch

from prunefair.data.attributes import Attribute, categorical


# channel counts of images as files hold them: grey, grey + alpha, RGB, RGBA (an RGBA (N, H, W, 4) array was once
# taken for H channels of H x 4 images)
_IMAGE_CHANNELS = (1, 2, 3, 4)


def as_input_tensor(x, *, arg: str, token_ids: bool = False) -> torch.Tensor:
    """``x`` as a CPU tensor (uint8 images kept, everything else float32, uint8 (N, F) features included), checked:
    2-d or 4-d, samples, finite.
    ``token_ids=True``: (N, L) non-negative integer token ids, kept as int64."""
    try:
        t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    except TypeError as exc:
        raise ValueError(f"{arg}: not a numeric array or tensor ({exc})") from None
    t = t.detach().cpu()
    if token_ids:
        return _token_ids(t, arg)
    if t.dim() not in (2, 4):
        hint = " (one grey channel: add it with x[:, None])" if t.dim() == 3 else ""
        raise ValueError(f"{arg} has shape {tuple(t.shape)}: need 2-d (N, F) features or 4-d (N, C, H, W) "
                         f"images; {t.dim()}-d is not supported{hint}")
    if t.dim() == 4 and t.shape[-1] in _IMAGE_CHANNELS and t.shape[1] not in _IMAGE_CHANNELS:
        raise ValueError(f"{arg} has shape {tuple(t.shape)}: images must be channels-first (N, C, H, W); "
                         f"this looks channels-last (N, H, W, C): pass x.transpose(0, 3, 1, 2) "
                         f"(numpy) or x.permute(0, 3, 1, 2) (torch)")
    if len(t) == 0:
        raise ValueError(f"{arg} holds no samples")
    given = t
    if t.dtype == torch.uint8 and t.dim() == 2:  # features used as given (0/1 flags stay 0/1): uint8 means images
        t = t.float()
    if t.dtype not in (torch.uint8, torch.float32):
        if t.dtype == torch.bool or t.is_complex():
            raise ValueError(f"{arg}: dtype {t.dtype} is not supported; give uint8 images or float features")
        t = t.float()
    found = _non_finite_samples(t) if t.is_floating_point() else None  # one pass when all is well
    if found is None:
        return t
    if given is not t and given.is_floating_point():  # NaN/inf in the values given, or made by the cast?
        found_given = _non_finite_samples(given)
        if found_given is None:  # finite before the cast: values beyond float32's range (about 3.4e38)
            bad, first = found
            raise ValueError(f"{arg} ({str(given.dtype).removeprefix('torch.')}) has values that overflow float32 "
                             f"(|value| > {torch.finfo(torch.float32).max:.3g}) in {bad} sample(s) (the first: "
                             f"index {first}); prunefair computes in float32: rescale or standardise them before "
                             "registering")
        found = found_given
    bad, first = found
    raise ValueError(f"{arg} holds NaN or inf in {bad} sample(s) (the first: index {first}); "
                     "remove or impute them before registering")


def _non_finite_samples(t: torch.Tensor) -> tuple[int, int] | None:
    """(samples holding NaN or inf, the first of them), or None when every value is finite."""
    finite = torch.isfinite(t)
    if bool(finite.all()):
        return None
    rows = (~finite).flatten(1).any(1)
    return int(rows.sum()), int(rows.nonzero()[0])


def as_values(v, *, arg: str, n: int) -> np.ndarray:
    """One value per sample, as a 1-d numpy array of length ``n``."""
    arr = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
    if arr.ndim != 1:
        hint = "" if arr.ndim != 2 else f" (a column: pass {arg}.ravel())" if arr.shape[1] == 1 else \
            f" (class ids, not one-hot rows: pass {arg}.argmax(1))"
        raise ValueError(f"{arg} has shape {arr.shape}: need one value per sample (1-d){hint}")
    if len(arr) != n:
        raise ValueError(f"{arg} has {len(arr)} values for {n} samples")
    return arr


def check_names(arr: np.ndarray, names, *, arg: str) -> tuple[str, ...]:
    """``names`` checked against the values ``arr`` it must name (``arg`` names both in errors)."""
    if isinstance(names, (str, dict)) or not hasattr(names, "__len__"):
        raise ValueError(f"names[{arg!r}] = {names!r}: give a list with one name per code, in code order "
                         "(e.g. ['no', 'yes'] for codes 0 and 1), not a mapping")
    names = tuple(str(n) for n in names)
    if len(set(names)) != len(names):
        raise ValueError(f"names[{arg!r}] = {list(names)}: a name appears twice")
    if arr.dtype.kind in "iu":
        bad = arr[(arr < -1) | (arr >= len(names))]
        if len(bad):
            raise ValueError(f"names[{arg!r}] has {len(names)} names (codes 0..{len(names) - 1}, -1 = unknown) "
                             f"but the values include {int(bad[0])}; give one name per code")
        unused = [n for i, n in enumerate(names) if not (arr == i).any()]
    else:
        given = {"" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in arr.tolist()}
        missing = sorted(given - set(names) - {""})
        if missing:
            raise ValueError(f"names[{arg!r}] = {list(names)} does not list the value(s) {_few(missing)}")
        unused = [n for n in names if n not in given]
    if unused:
        raise ValueError(f"names[{arg!r}]: no sample has {_few(unused)}; an empty class or group would get an "
                         "output or a row with no data: name only the values that occur")
    return names


def _few(items: list, k: int = 5) -> str:
    return f"{items[:k]}{f' (+{len(items) - k} more)' if len(items) > k else ''}"


def code_values(arr: np.ndarray, names: tuple[str, ...] | None) -> Attribute:
    """Codes of ``arr`` (train and test together, so that both share one coding) by the rule above."""
    if names is not None:
        if arr.dtype.kind in "iu":
            return Attribute(np.where(arr < 0, -1, arr).astype(np.int64), names)
        return categorical(arr.tolist(), order=list(names))
    if arr.dtype.kind in "iu":
        distinct = np.unique(arr)
        return Attribute(np.searchsorted(distinct, arr).astype(np.int64), tuple(str(int(v)) for v in distinct))
    return categorical(arr.tolist())


_UNSIGNED_WIDE = tuple(getattr(torch, n) for n in ("uint16", "uint32", "uint64") if hasattr(torch, n))


def _token_ids(t: torch.Tensor, arg: str) -> torch.Tensor:
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise ValueError(f"{arg}: token_ids=True needs integer token ids, got dtype {t.dtype}")
    if t.dim() != 2:
        raise ValueError(f"{arg} has shape {tuple(t.shape)}: token ids are 2-d (N, sequence length)")
    if len(t) == 0:
        raise ValueError(f"{arg} holds no samples")
    if t.dtype in _UNSIGNED_WIDE:  # uint16/32/64 (token files are often uint16): torch has no min/compare for them
        a = t.numpy()
        if a.size and int(a.max()) > np.iinfo(np.int64).max:
            raise ValueError(f"{arg}: token id {int(a.max())} does not fit int64")
        return torch.from_numpy(a.astype(np.int64))
    if t.numel() and int(t.min()) < 0:
        first = int((t < 0).any(1).nonzero()[0])
        raise ValueError(f"{arg}: token ids must be >= 0 (an nn.Embedding's rows); sample {first} holds "
                         f"{int(t[first].min())}")
    return t.to(torch.int64)
