"""The [mitigate] options' types, defaults and ranges, stated once. ``config.MitigateConfig`` (the study file) takes its
fields from ``MitigateFields``, and ``MitigateOptions`` (options given from Python) is checked against it, so the two
cannot drift; docs/mitigation.md describes each option."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class MitigateFields(BaseModel):
    # strict: buffer_size = true or eps = "0.1" are errors, not 1 or 0.1; allow_inf_nan=False: finite numbers only
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    el_dual_lr: float = Field(default=1e-3, ge=0.0)
    dual_update: Literal["epoch", "batch"] = "epoch"
    buffer_size: int = Field(default=40, ge=1)
    eps: float = Field(default=0.01, ge=0.0)
    ceag_dual_lr: float = Field(default=0.01, ge=0.0)
    el_tolerance: float = Field(default=0.05, ge=0.0)
    vkd_alpha: float = Field(default=0.5, ge=0.0, le=1.0)
    vkd_temperature: float = Field(default=2.0, gt=0.0)
    vkd_dual_lr: float = Field(default=2.0, ge=0.0)
    vkd_val_every: int = Field(default=0, ge=0)
    selection: Literal["last", "val_accuracy", "val_max_psi"] = "last"
    selection_tolerance: float = Field(default=0.01, ge=0.0)

    @field_validator("*", mode="before")
    @classmethod
    def _python_scalars(cls, v):
        """numpy (or torch) scalars as Python numbers; everything else as given (then checked strictly)."""
        if getattr(v, "shape", None) == () and callable(getattr(v, "item", None)):
            return v.item()
        return v
