"""The [mitigate] options' types, defaults and ranges, stated once. ``config.MitigateConfig`` (the study file) takes its
fields from ``MitigateFields``, and ``MitigateOptions`` (options given from Python) is checked against it, so the two
cannot drift; docs/mitigation.md describes each option."""

from __future__ import annotations

from typing import Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


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


_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def _rule(key: str) -> str:
    """What MitigateFields allows for ``key``, read from its field: 'a finite number >= 0', 'an integer >= 1',
    'a finite number in [0, 1]', 'epoch or batch'."""
    field = MitigateFields.model_fields[key]
    if get_origin(field.annotation) is Literal:
        choices = [str(c) for c in get_args(field.annotation)]
        return f"{', '.join(choices[:-1])} or {choices[-1]}"
    bounds = {name: getattr(m, name) for m in field.metadata for name in _BOUNDS if hasattr(m, name)}
    kind = "an integer" if field.annotation is int else "a finite number"
    low, high = [k for k in bounds if k[0] == "g"], [k for k in bounds if k[0] == "l"]
    if low and high:
        lo, hi = low[0], high[0]
        return f"{kind} in {'[' if lo == 'ge' else '('}{bounds[lo]:g}, {bounds[hi]:g}{']' if hi == 'le' else ')'}"
    return " ".join([kind] + [f"{_BOUNDS[k]} {v:g}" for k, v in bounds.items()])


def checked_options(values: dict) -> MitigateFields:
    """``values`` (some or all [mitigate] keys) held to the study file's rules; a ValueError naming the first bad
    key, its value and its rule ("mitigate option vkd_alpha = 2.0: must be a finite number in [0, 1]")."""
    try:
        return MitigateFields(**values)
    except ValidationError as err:
        key = str(err.errors()[0]["loc"][0])  # checked field by field: the first bad key
        raise ValueError(f"mitigate option {key} = {values.get(key)!r}: must be {_rule(key)}") from None
