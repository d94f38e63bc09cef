"""The study file: TOML in, one validated StudyConfig out.

Every section forbids unknown keys; every error names the key, the value and what is allowed.
Overrides use dotted keys (``train.epochs=5``), with values parsed as TOML (strings may be bare).
"""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ConfigError(ValueError):
    """A study file or override is invalid; the message names the source, key and allowed values."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    dataset: str = "digits"
    root: str | None = None
    target: str = "class"
    group: str = "class"
    image_size: int | None = Field(default=None, gt=0)
    val_fraction: float = Field(default=0.1, ge=0.0, lt=0.5)
    test_fraction: float = Field(default=0.2, gt=0.0, lt=0.5)
    split_seed: int = 0

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        from prunefair.data import dataset_names

        if v not in dataset_names():
            raise ValueError(f"unknown dataset {v!r}; allowed: {', '.join(dataset_names())}")
        return v


class ModelConfig(_Section):
    name: str = "mlp"
    width: float = Field(default=1.0, gt=0.0)
    batch_norm: bool | None = None
    channels_last: bool = False

    @field_validator("name")
    @classmethod
    def _known_model(cls, v: str) -> str:
        from prunefair.models import model_names

        if v not in model_names():
            raise ValueError(f"unknown model {v!r}; allowed: {', '.join(model_names())}")
        return v


class TrainConfig(_Section):
    epochs: int = Field(default=30, ge=1)
    batch_size: int = Field(default=64, ge=1)
    lr: float = Field(default=0.05, gt=0.0)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(default=1e-4, ge=0.0)
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    crop_padding: int = Field(default=0, ge=0)
    flip: bool = False


class PruneConfig(_Section):
    rates: list[float] = Field(default_factory=lambda: [0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99], min_length=1)
    scope: Literal["global", "layer"] = "global"
    method: Literal["magnitude"] = "magnitude"

    @field_validator("rates")
    @classmethod
    def _rates_in_range(cls, v: list[float]) -> list[float]:
        for i, r in enumerate(v):
            if not 0.0 <= r < 1.0:
                raise ValueError(f"rates[{i}] = {r}: a pruning rate (sparsity) must be in [0, 1)")
        if len(set(v)) != len(v):
            raise ValueError(f"rates contain duplicates: {v}")
        return sorted(v)


class FinetuneConfig(_Section):
    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=64, ge=1)
    lr: float = Field(default=0.01, gt=0.0)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(default=1e-4, ge=0.0)
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    crop_padding: int = Field(default=0, ge=0)
    flip: bool = False
    methods: list[Literal["nft"]] = Field(default_factory=lambda: ["nft"], min_length=1)


class EvalConfig(_Section):
    splits: list[Literal["train", "val", "test"]] = Field(default_factory=lambda: ["train", "val", "test"], min_length=1)
    batch_size: int = Field(default=512, ge=1)


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

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds contain duplicates: {v}")
        return v

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(_drop_none(self.to_dict()))


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


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid study configuration"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            section = _section_for(e["loc"][:-1])
            allowed = ", ".join(section.model_fields) if section else "?"
            lines.append(f"  unknown key '{loc}'; allowed keys here: {allowed}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"  {loc} = {e.get('input')!r}: {msg}")
    return "\n".join(lines)


def _section_for(loc: tuple) -> type[BaseModel] | None:
    cls: type[BaseModel] = StudyConfig
    for part in loc:
        field = cls.model_fields.get(str(part))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return None
        cls = field.annotation
    return cls


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.epochs=5' -> (['train', 'epochs'], 5); values are TOML, bare words are strings."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (for example train.epochs=5)")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def apply_overrides(raw: dict, overrides: list[str] | None) -> dict:
    out = copy.deepcopy(raw)
    for text in overrides or []:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: '{part}' is not a section")
        node[path[-1]] = value
    return out


def validate_config(raw: dict, *, source: str = "config") -> StudyConfig:
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def load_config(
    path: str | Path | None = None, *, overrides: list[str] | None = None, preset: str | None = None
) -> StudyConfig:
    """Read a study file (or a shipped preset), apply dotted overrides, validate."""
    raw: dict = {}
    source = "defaults"
    if preset is not None:
        raw, source = read_preset(preset), f"preset {preset!r}"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: study file not found")
        try:
            raw = _deep_merge(raw, tomllib.loads(p.read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
        source = str(p)
    if overrides:
        source += " + overrides " + " ".join(overrides)
    return validate_config(apply_overrides(raw, overrides), source=source)


def preset_names() -> list[str]:
    from importlib import resources

    return sorted(p.name[:-5] for p in resources.files("prunefair.presets").iterdir() if p.name.endswith(".toml"))


def read_preset(name: str) -> dict:
    from importlib import resources

    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r}; allowed: {', '.join(preset_names())}")
    return tomllib.loads(resources.files("prunefair.presets").joinpath(f"{name}.toml").read_text())


def _deep_merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
