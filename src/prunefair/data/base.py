"""GroupedData: the one in-memory form every dataset takes.

Images are kept as uint8 tensors (N, C, H, W) and turned into normalised floats batch by batch;
small tabular or already-float inputs are kept as float32. Each sample carries a label ``y`` and a
group id ``g`` (the protected attribute ``a`` of the paper).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch


@functools.lru_cache(maxsize=64)
def _normaliser(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device,
                dtype: torch.dtype = torch.float32):
    """1/(255 std) and mean/std on ``device``, made once: a fresh copy from host memory every batch would make
    the host wait for the GPU each step."""
    work = torch.promote_types(dtype, torch.float32)  # float32 as always; float64 for a float64 model
    m = torch.tensor(mean, dtype=work).view(1, -1, 1, 1)
    sd = torch.tensor(std, dtype=work).view(1, -1, 1, 1)
    return (1.0 / (255.0 * sd)).to(device, dtype), (m / sd).to(device, dtype)


@dataclass
class GroupedData:
    """Inputs, labels and group ids of one split, with the names needed to read results."""

    x: torch.Tensor
    y: torch.Tensor
    g: torch.Tensor
    class_names: tuple[str, ...]
    group_names: tuple[str, ...]
    mean: tuple[float, ...] | None = None  # per-channel, applied to uint8 images after /255
    std: tuple[float, ...] | None = None
    info: dict = field(default_factory=dict)
    token_ids: bool = False  # x holds integer token ids (for an nn.Embedding): passed to the model as they are

    def __post_init__(self) -> None:
        for what in ("x", "y", "g"):  # numpy arrays or lists (a researcher's own data) once ended in an AttributeError
            setattr(self, what, _as_tensor(getattr(self, what), what))
        for what in ("class_names", "group_names"):
            names = getattr(self, what)
            if isinstance(names, (str, bytes)) or not hasattr(names, "__iter__"):
                raise ValueError(f"GroupedData: {what} is a list with one name per id, got {names!r}")
            setattr(self, what, tuple(str(v) for v in names))
        n = len(self.y)
        if self.token_ids and self.x.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"token_ids=True needs int64 or int32 x (the token ids an nn.Embedding takes), got "
                             f"{self.x.dtype}")
        if len(self.x) != n or len(self.g) != n:
            raise ValueError(f"x, y and g must have the same length, got {len(self.x)}, {n}, {len(self.g)}")
        self.y = self.y.long()
        self.g = self.g.long()
        for what, ids, names in (("y", self.y, self.class_names), ("g", self.g, self.group_names)):
            if n and (int(ids.min()) < 0 or int(ids.max()) >= len(names)):
                bad = ids[(ids < 0) | (ids >= len(names))]
                raise ValueError(f"{what} holds id {int(bad[0])} ({len(bad)} sample(s) out of range): ids must be "
                                 f"0..{len(names) - 1}, one per name in {'class' if what == 'y' else 'group'}_names "
                                 f"({len(names)} given)")

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        # a summary, not the tensors: the dataclass's own repr printed every pixel (thousands of lines in a notebook)
        dtype = str(self.x.dtype).removeprefix("torch.")
        return (f"GroupedData({len(self)} samples, x {tuple(self.x.shape[1:])} {dtype} on {self.x.device}, "
                f"{self.num_classes} classes {_names(self.class_names)}, {self.num_groups} groups "
                f"{_names(self.group_names)})")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_groups(self) -> int:
        return len(self.group_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def to(self, device: torch.device | str) -> "GroupedData":
        """The same data held on ``device`` (keep image datasets on the GPU: uint8 is small)."""
        return GroupedData(self.x.to(device), self.y.to(device), self.g.to(device), self.class_names,
                           self.group_names, self.mean, self.std, dict(self.info), self.token_ids)

    def subset(self, index) -> "GroupedData":
        index = torch.as_tensor(index, dtype=torch.long, device=self.x.device)
        return GroupedData(
            self.x[index], self.y[index], self.g[index], self.class_names, self.group_names,
            self.mean, self.std, dict(self.info), self.token_ids,
        )

    def group_counts(self) -> np.ndarray:
        return np.bincount(self.g.cpu().numpy(), minlength=self.num_groups)

    def to_float(self, x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Turn a batch of stored inputs into the tensor the model sees (``dtype``: the model's float dtype). uint8
        inputs are images (scaled by 1/255, then normalised), other numbers are cast to ``dtype``; token ids
        (``token_ids=True``) go to the model as they are."""
        if self.token_ids:
            return x
        if x.dtype == torch.uint8:
            if self.mean is None:
                return x.to(dtype).div_(255.0)
            scale, shift = _normaliser(tuple(self.mean), tuple(self.std), x.device, dtype)
            x = x.to(dtype).mul_(scale).sub_(shift)  # (x/255 - mean)/std, in place
        elif x.dtype != dtype:
            x = x.to(dtype)
        return x


def _names(names, most: int = 6) -> str:
    shown = ", ".join(map(str, names[:most]))
    return f"[{shown}{f', ... ({len(names) - most} more)' if len(names) > most else ''}]"


def _as_tensor(value, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError, RuntimeError) as exc:
        hint = (" (ids 0..K-1 with a name each; labels or attributes of any kind: prunefair.data.grouped_from_arrays "
                "codes them)") if what != "x" else ""
        raise ValueError(f"GroupedData: {what} must be a tensor or a numeric array{hint}; got "
                         f"{type(value).__name__} ({exc})") from None


@dataclass
class DatasetSplits:
    """Train, validation and test splits of one dataset, sharing class and group names."""

    train: GroupedData
    val: GroupedData
    test: GroupedData
    name: str
    target: str
    group: str
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    def __repr__(self) -> str:
        return (f"DatasetSplits({self.name!r}, target {self.target!r}, group {self.group!r}: train {len(self.train)}, "
                f"val {len(self.val)}, test {len(self.test)} samples; {self.train.num_classes} classes "
                f"{_names(self.train.class_names)}, {self.train.num_groups} groups {_names(self.train.group_names)})")

    def to(self, device: torch.device | str) -> "DatasetSplits":
        """All splits held on ``device`` (data and augmentation then stay on the GPU)."""
        out = DatasetSplits(self.train.to(device), self.val.to(device), self.test.to(device), self.name,
                            self.target, self.group)
        out._fingerprint = self._fingerprint
        return out

    def fingerprint(self) -> str:
        """A hash of what a model sees of this data: every split's inputs, labels and group ids, the class and group
        names and the normalisation. A study's results record it, so that a rerun on changed data (an edited CSV,
        re-registered arrays, new files) recomputes them instead of reusing them. Computed once (about 0.3 s for
        160 MB of images)."""
        if self._fingerprint is None:
            h = hashlib.blake2b(digest_size=8)
            for s in ("train", "val", "test"):
                d = self.split(s)
                h.update(repr((s, tuple(d.x.shape), str(d.x.dtype), d.class_names, d.group_names, d.mean,
                               d.std) + (("token_ids",) if d.token_ids else ())).encode())
                for t in (d.x, d.y, d.g):
                    h.update(np.ascontiguousarray(t.detach().cpu().numpy()).reshape(-1).view(np.uint8))
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def split(self, name: str) -> GroupedData:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; allowed: train, val, test")
        return getattr(self, name)

    def describe(self) -> dict:
        return {
            "dataset": self.name,
            "target": self.target,
            "group": self.group,
            "class_names": list(self.train.class_names),
            "group_names": list(self.train.group_names),
            "fingerprint": self.fingerprint(),
            "sizes": {s: len(self.split(s)) for s in ("train", "val", "test")},
            "group_counts": {s: self.split(s).group_counts().tolist() for s in ("train", "val", "test")},
            **({"empty_groups": empty} if (empty := self.empty_groups()) else {}),
            **{k: v for k, v in self.train.info.items() if isinstance(v, (int, float, str, list, dict))},
        }

    def empty_groups(self) -> dict[str, list[str]]:
        """Per split (non-empty splits only), the groups with no sample there: too small to be split, or left
        out by data.limit. Their per-group numbers are missing in that split."""
        out = {}
        for s in ("train", "val", "test"):
            d = self.split(s)
            if len(d):
                counts = d.group_counts().tolist()
                names = [str(n) for n, c in zip(d.group_names, counts) if c == 0]
                if names:
                    out[s] = names
        return out


def stratified_split(
    strata: np.ndarray, *, fractions: tuple[float, ...], seed: int
) -> list[np.ndarray]:
    """Split indices into len(fractions) parts, each stratum divided in the given proportions.

    Deterministic for a seed. Within a stratum, counts are rounded so the parts sum to the stratum size.
    """
    if abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        idx = idx[rng.permutation(len(idx))]
        bounds = np.round(np.cumsum(fractions) * len(idx)).astype(int)
        start = 0
        for k, end in enumerate(bounds):
            parts[k].append(idx[start:end])
            start = end
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, dtype=np.int64) for p in parts]
