"""The whole study file: its sections, the checks across them, and the stable hash that keys the store."""

from __future__ import annotations

import hashlib
import json
import warnings
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from prunefair.config.sections import (
    DataConfig, DiagnosticsConfig, EvalConfig, FinetuneConfig, MitigateConfig, ModelConfig, PruneConfig, RunConfig,
    TrainConfig, _Section, stored,
)


class StudyConfig(_Section):
    name: str = "study"
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    output_dir: str = "runs/study"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    prune: PruneConfig = Field(default_factory=PruneConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    diagnostics: DiagnosticsConfig = Field(default_factory=DiagnosticsConfig)
    mitigate: MitigateConfig = Field(default_factory=MitigateConfig)
    run: RunConfig = Field(default_factory=RunConfig)

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds contain duplicates: {v}")
        bad = [s for s in v if not 0 <= s < 2**32]
        if bad:  # torch and numpy generators take 0 .. 2**32 - 1 portably
            raise ValueError(f"seed {bad[0]} is outside 0 .. 4294967295 (2**32 - 1)")
        return v

    @field_validator("output_dir")
    @classmethod
    def _a_folder(cls, v: str, info: ValidationInfo) -> str:
        """An empty path (``--out "$DIR"`` with DIR unset) would write the study's files into the current folder."""
        if not v.strip() and not stored(info):
            raise ValueError("an empty path; give the study folder, e.g. runs/my_study (\".\" for the current "
                             "folder)")
        return v

    @model_validator(mode="after")
    def _gradual_within_finetuning(self) -> "StudyConfig":
        p, epochs = self.prune, self.finetune.epochs
        if p.schedule == "gradual":
            end = p.gradual_end_epoch if p.gradual_end_epoch is not None else epochs - 1
            if end >= epochs or p.gradual_start_epoch >= end:
                raise ValueError(
                    f"prune.gradual_start_epoch ({p.gradual_start_epoch}) < prune.gradual_end_epoch ({end}) < "
                    f"finetune.epochs ({epochs}) must hold: the gradual schedule runs during fine-tuning and "
                    "reaches the final rate at gradual_end_epoch (default: the last fine-tuning epoch)")
        return self

    @model_validator(mode="after")
    def _recalibration_batches(self) -> "StudyConfig":
        """Batch-norm recalibration runs in batches of eval.batch_size; batch norm cannot normalise one sample."""
        if (self.prune.bn_recalibrate or self.prune.bn_recalibrate_finetuned) and self.eval.batch_size < 2:
            raise ValueError(f"prune.bn_recalibrate runs in batches of eval.batch_size = {self.eval.batch_size}; "
                             "batch norm needs at least 2 samples a batch: set eval.batch_size >= 2")
        return self

    @model_validator(mode="after")
    def _validation_split_where_needed(self, info: ValidationInfo) -> "StudyConfig":
        """Selection on the validation split and VKD (whose dual step reads it) need one: refused up front, not
        after the dense models have trained. Measuring or diagnosing only the empty split is refused for a new run,
        not in a stored study (run before the refusal: its other results are read as they are)."""
        new_run = not stored(info)
        if self.data.val_fraction == 0:
            needs = ([f"mitigate.selection = {self.mitigate.selection!r}"] if self.mitigate.selection != "last"
                     else []) + (["finetune.methods includes 'vkd'"] if "vkd" in self.finetune.methods else []) + \
                (["eval.splits = ['val'] (no other split to measure)"] if new_run and self.eval.splits == ["val"]
                 else []) + (["diagnostics.split = 'val' (every diagnostic would be NaN)"] if new_run and
                             self.diagnostics.enabled and self.diagnostics.split == "val" else [])
            if needs:
                raise ValueError(f"{' and '.join(needs)} need(s) a validation split, but data.val_fraction = 0; "
                                 "set data.val_fraction > 0 (e.g. 0.1)")
        return self

    @model_validator(mode="after")
    def _diagnostics_split_evaluated(self, info: ValidationInfo) -> "StudyConfig":
        """Warn when the diagnostics' split is not evaluated: the diagnostics themselves read the data split and are
        complete (the group-size experiment evaluates only test), but the Theorem 1 check compares them with each
        group's loss on that split, so it is left out of the study's report."""
        split, splits = self.diagnostics.split, self.eval.splits
        if self.diagnostics.enabled and split not in splits and not stored(info):  # said when the study ran
            warnings.warn(
                f"diagnostics.split = {split!r} is not among eval.splits {splits}: the Theorem 1 check needs every "
                f"group's loss on that split and is left out of the report; add {split!r} to eval.splits, set "
                f"diagnostics.split to one of {', '.join(splits)}, or set diagnostics.enabled = false",
                UserWarning, stacklevel=2)
        return self

    @model_validator(mode="after")
    def _mitigate_settings_read(self, info: ValidationInfo) -> "StudyConfig":
        """Warn about a [mitigate] key set away from its default that no method of the study reads."""
        if not stored(info):  # said when the study ran
            for message in self.mitigate.ineffective(self.finetune.methods):
                warnings.warn(message, UserWarning, stacklevel=2)
        return self

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def to_toml(self) -> str:
        import tomli_w

        d = _drop_none(self.to_dict())
        for section in ("train", "finetune"):  # an option added later, at its default: left out, so that the file
            if d[section].get("crop_fill") == "mean":  # reads as before (resume notes, earlier versions)
                d[section].pop("crop_fill")
        if d["diagnostics"].get("criterion") == "eigenvalue":
            d["diagnostics"].pop("criterion")
        return tomli_w.dumps(d)


def config_hash(obj: Any) -> str:
    """Stable short hash of a JSON-able object (the key of a cell in the store)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _drop_none(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _drop_none(v) for k, v in d.items() if v is not None}
    if isinstance(d, list):
        return [_drop_none(v) for v in d]
    return d
