"""The group-size experiment (Tran et al., Sec. C.3, Figures 14-15; Proposition 1) as a plan of studies.

One study per upsampling factor of one group of the training split (``data.resample = {group, factor}``; factor 1
is the plain study), each in ``OUT/f<factor>``. With ``match_steps`` (default) the dense training of factor f runs
``round(E * N / N_f)`` epochs (at least 1), N and N_f the training-set sizes before and after upsampling, so every
factor trains for about the same number of SGD steps as the plain study's E epochs: without it a 20x factor would
also train ten times longer, and "train to convergence" would mean different things at different factors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prunefair.config import StudyConfig, validate_config
from prunefair.data.resample import upsampled_size


@dataclass(frozen=True)
class GroupSizeStudy:
    factor: float
    epochs: int
    train_size: int  # after upsampling
    config: StudyConfig


def plan_group_size(cfg: StudyConfig, *, group: str, factors: list[float], train_size: int, group_count: int,
                    out: str | Path | None = None, match_steps: bool = True) -> list[GroupSizeStudy]:
    """The study config of each factor (validated), given the training split's size and the group's count."""
    if not factors:
        raise ValueError("factors: give at least one upsampling factor, e.g. 1,5,10,20")
    if len(set(factors)) != len(factors):
        raise ValueError(f"factors contain duplicates: {factors}")
    bad = [f for f in factors if not f > 0]
    if bad:
        raise ValueError(f"factors must be > 0, got {bad}")
    if cfg.data.resample is not None:
        raise ValueError("data.resample is set in the base config; the group-size experiment sets it per factor")
    root = Path(out if out is not None else cfg.output_dir)
    plans = []
    for f in factors:
        size = train_size - group_count + upsampled_size(group_count, f)
        epochs = max(1, round(cfg.train.epochs * train_size / size)) if match_steps else cfg.train.epochs
        raw = cfg.to_dict()
        raw["output_dir"] = str(root / f"f{f:g}")
        raw["train"]["epochs"] = epochs
        if f != 1:
            raw["data"]["resample"] = {"group": group, "factor": f}
        plans.append(GroupSizeStudy(f, epochs, size, validate_config(raw, source=f"group-size factor {f:g}")))
    return plans
