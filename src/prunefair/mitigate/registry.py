"""``objective_for(method, ...)``: the fine-tuning objective of a method, built from the study's data,
the dense model and the [mitigate] options."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from prunefair.data import DatasetSplits
from prunefair.mitigate.base import MitigationObjective, dense_group_stats
from prunefair.mitigate.ceag import CEAG
from prunefair.mitigate.equal_loss import EqualLoss, EqualLossReplay
from prunefair.mitigate.settings import checked_options
from prunefair.mitigate.vkd import ValidationDistillation

METHODS = ("nft", "el", "el_rb", "ceag", "vkd")
@dataclass(frozen=True)
class MitigateOptions:
    """Defaults of the [mitigate] section (settings.MitigateFields holds the same, a test checks they agree)."""

    el_dual_lr: float = 1e-3
    dual_update: str = "epoch"
    buffer_size: int = 40
    eps: float = 0.01
    ceag_dual_lr: float = 0.01
    el_tolerance: float = 0.05
    vkd_alpha: float = 0.5
    vkd_temperature: float = 2.0
    vkd_dual_lr: float = 2.0
    vkd_val_every: int = 0
    selection: str = "last"
    selection_tolerance: float = 0.01

    def __post_init__(self) -> None:
        """Checked by mitigate.settings.MitigateFields, the fields of config.MitigateConfig too (strict types, finite
        numbers, the ranges of docs/mitigation.md): options given as a dict from Python are held to the study file's
        rules and cannot drift from them; numpy scalars are kept as plain Python numbers."""
        checked = checked_options(asdict(self))
        for f in fields(self):
            object.__setattr__(self, f.name, getattr(checked, f.name))


def _options(options) -> MitigateOptions:
    if options is None:
        return MitigateOptions()
    if isinstance(options, MitigateOptions):
        return options
    if isinstance(options, dict):
        d = options
    elif callable(getattr(options, "model_dump", None)):  # the study file's MitigateConfig
        d = options.model_dump()
    else:
        raise TypeError(f"options: a dict of [mitigate] keys (e.g. {{'eps': 0.02}}), a MitigateOptions or the study's "
                        f"MitigateConfig, got a {type(options).__name__} ({options!r:.60})")
    names = {f.name for f in fields(MitigateOptions)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown mitigate option(s) {sorted(unknown)}; allowed: {', '.join(sorted(names))}")
    return MitigateOptions(**d)


def objective_for(method: str, *, dense_model, data: DatasetSplits, options=None, device="cpu",
                  eval_batch_size: int = 512, channels_last: bool = False) -> MitigationObjective:
    """The objective that fine-tunes a pruned copy of ``dense_model`` with ``method``."""
    if method not in METHODS:
        raise ValueError(f"unknown mitigation method {method!r}; allowed: {', '.join(METHODS)}")
    if not hasattr(data, "train") or not hasattr(data, "val"):
        raise TypeError(f"data: a DatasetSplits (train, val and test splits; fine-tuning reads train, selection and "
                        f"VKD read val), got a {type(data).__name__}")
    o = _options(options)
    ev = dict(batch_size=eval_batch_size, device=device, channels_last=channels_last)
    has_val = data.val is not None and len(data.val) > 0
    dense_val = dense_group_stats(dense_model, data.val, **ev) if has_val else None
    common = dict(num_groups=data.train.num_groups, val=data.val if has_val else None, dense_val=dense_val,
                  selection=o.selection, tolerance=o.selection_tolerance, eval_batch_size=eval_batch_size,
                  channels_last=channels_last)
    if method == "nft":
        return MitigationObjective(**common)
    if method == "el":
        return EqualLoss(dual_lr=o.el_dual_lr, dual_update=o.dual_update, **common)
    if method == "el_rb":
        counts = np.asarray(data.train.group_counts(), float)
        return EqualLossReplay(group_shares=counts / counts.sum(), buffer_size=o.buffer_size,
                               dual_lr=o.el_dual_lr, **common)
    if method == "ceag":
        dense_train = dense_group_stats(dense_model, data.train, **ev)
        return CEAG(dense_train=dense_train, eps=o.eps, dual_lr=o.ceag_dual_lr, buffer_size=o.buffer_size,
                    **common)
    return ValidationDistillation(dense_model=dense_model, alpha=o.vkd_alpha, temperature=o.vkd_temperature,
                                  eps=o.eps, dual_lr=o.vkd_dual_lr, val_every=o.vkd_val_every,
                                  **common)


def method_options(method: str, options=None) -> dict | None:
    """The options that change a method's result (hashed into its cell key); None for plain NFT."""
    o = _options(options)
    sel = _selection_spec(o)
    per = {
        "nft": {},
        "el": {"el_dual_lr": o.el_dual_lr, "dual_update": o.dual_update},
        "el_rb": {"el_dual_lr": o.el_dual_lr, "buffer_size": o.buffer_size},
        "ceag": {"eps": o.eps, "ceag_dual_lr": o.ceag_dual_lr, "buffer_size": o.buffer_size},
        "vkd": {"eps": o.eps, "vkd_alpha": o.vkd_alpha, "vkd_temperature": o.vkd_temperature,
                "vkd_dual_lr": o.vkd_dual_lr, **({"vkd_val_every": o.vkd_val_every} if o.vkd_val_every else {})},
    }[method]
    spec = {**per, **sel}
    return spec or None


def _selection_spec(o: MitigateOptions) -> dict:
    """The selection options in a cell key: none under 'last' (keys of old studies hold). Only 'val_max_psi' reads
    the tolerance; under 'val_accuracy' it is hashed at its default whatever its value, so changing it reruns nothing
    (stored cells hashed with the default keep their keys; those hashed with another tolerance rerun once)."""
    if o.selection == "last":
        return {}
    tolerance = o.selection_tolerance if o.selection == "val_max_psi" else MitigateOptions.selection_tolerance
    return {"selection": o.selection, "selection_tolerance": tolerance}
