"""``objective_for(method, ...)``: the fine-tuning objective of a method, built from the study's data,
the dense model and the [mitigate] options."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from prunefair.data import DatasetSplits
from prunefair.mitigate.base import SELECTIONS, MitigationObjective, dense_group_stats
from prunefair.mitigate.ceag import CEAG
from prunefair.mitigate.equal_loss import EqualLoss, EqualLossReplay
from prunefair.mitigate.vkd import ValidationDistillation

METHODS = ("nft", "el", "el_rb", "ceag", "vkd")


@dataclass(frozen=True)
class MitigateOptions:
    """Defaults of the [mitigate] section (config.MitigateConfig mirrors these)."""

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
        """The ranges of docs/mitigation.md (config.MitigateConfig checks the same for a study file), so options
        given as a dict from Python are held to them too."""
        bad = [(k, v, rule) for k, v, ok, rule in (
            ("el_dual_lr", self.el_dual_lr, self.el_dual_lr >= 0, ">= 0"),
            ("dual_update", self.dual_update, self.dual_update in ("epoch", "batch"), "epoch or batch"),
            ("buffer_size", self.buffer_size, self.buffer_size >= 1, ">= 1"),
            ("eps", self.eps, self.eps >= 0, ">= 0"),
            ("ceag_dual_lr", self.ceag_dual_lr, self.ceag_dual_lr >= 0, ">= 0"),
            ("el_tolerance", self.el_tolerance, self.el_tolerance >= 0, ">= 0"),
            ("vkd_alpha", self.vkd_alpha, 0 <= self.vkd_alpha <= 1, "in [0, 1]"),
            ("vkd_temperature", self.vkd_temperature, self.vkd_temperature > 0, "> 0"),
            ("vkd_dual_lr", self.vkd_dual_lr, self.vkd_dual_lr >= 0, ">= 0"),
            ("vkd_val_every", self.vkd_val_every, self.vkd_val_every >= 0, ">= 0"),
            ("selection", self.selection, self.selection in SELECTIONS, ", ".join(SELECTIONS)),
            ("selection_tolerance", self.selection_tolerance, self.selection_tolerance >= 0, ">= 0"),
        ) if not ok]
        if bad:
            k, v, rule = bad[0]
            raise ValueError(f"mitigate option {k} = {v!r}: must be {rule}")


def _options(options) -> MitigateOptions:
    if options is None:
        return MitigateOptions()
    if isinstance(options, MitigateOptions):
        return options
    d = options if isinstance(options, dict) else options.model_dump()
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
    sel = {} if o.selection == "last" else {"selection": o.selection, "selection_tolerance": o.selection_tolerance}
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
