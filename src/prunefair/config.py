"""The study file: TOML in, one validated StudyConfig out.

Every section forbids unknown keys; every error names the key, the value and what is allowed.
Overrides use dotted keys (``train.epochs=5``), with values parsed as TOML (strings may be bare);
the bare word ``null`` unsets a key, so that its default applies.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import tomllib
import warnings
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import (
    AliasChoices, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator,
)


class ConfigError(ValueError):
    """A study file or override is invalid; the message names the source, key and allowed values."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ResampleConfig(_Section):
    """Up- or down-sample one group of the training split by ``factor`` (the group-size experiment)."""

    group: str
    factor: float = Field(gt=0.0)


class DataConfig(_Section):
    dataset: str = "digits"
    root: str | None = None
    target: str = "class"
    group: str = "class"
    image_size: int | None = Field(default=None, gt=0)
    val_fraction: float = Field(default=0.1, ge=0.0, lt=0.5)
    test_fraction: float = Field(default=0.2, gt=0.0, lt=0.5)
    split_seed: int = 0
    # file-based datasets (utkface, cifar10, svhn, folder); see docs/datasets.md
    age_bins: list[int] | None = None  # UTKFace age-bin lower edges; default 0,3,10,20,30,40,50,60,70
    drop_duplicates: bool = False  # byte-identical files: keep all on one side of the split, or keep one
    skip_unreadable: bool = False  # corrupt/missing image: error naming it, or skip and count
    limit: int | None = Field(default=None, gt=0)  # a deterministic stratified subset (per official split)
    csv: str | None = None  # folder dataset: the attribute CSV (relative to root); default attributes.csv
    svhn_extra: bool = False  # SVHN: add extra_32x32.mat to train
    resample: ResampleConfig | None = None  # up/down-sample one group of the train split
    cache_dir: str | None = None  # on-disk cache of decoded images (never changes results)
    workers: int | None = Field(default=None, ge=1)  # image-decoding processes (never changes results)

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        from prunefair.data import dataset_names

        if v not in dataset_names():
            raise ValueError(f"unknown dataset {v!r}; allowed: {', '.join(dataset_names())}")
        return v

    @field_validator("age_bins")
    @classmethod
    def _increasing_bins(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (len(v) < 2 or v[0] < 0 or any(b <= a for a, b in zip(v, v[1:]))):
            raise ValueError("need at least two strictly increasing lower edges >= 0, e.g. [0, 3, 10, 20]")
        return v

    @model_validator(mode="after")
    def _keys_fit_the_dataset(self) -> "DataConfig":
        """A loader key the dataset's loader does not read (each dataset declares its own) is refused."""
        from prunefair.data.registry import LOADER_KEYS, dataset_info, dataset_names

        info = dataset_info(self.dataset)
        for key in LOADER_KEYS:
            value = getattr(self, key)
            if value not in (None, False) and key not in info.options:
                users = ", ".join(n for n in dataset_names() if key in dataset_info(n).options)
                raise ValueError(f"data.{key} = {value!r} is ignored by dataset {self.dataset!r} (it applies to "
                                 f"{users}); remove it")
        return self

    @field_validator("target", "group")
    @classmethod
    def _known_attribute(cls, v: str, info: ValidationInfo) -> str:
        from prunefair.data import dataset_info, dataset_names
        from prunefair.data.attributes import split_spec

        dataset = info.data.get("dataset")
        allowed = dataset_info(dataset).targets if dataset in dataset_names() else ()
        parts = split_spec(v)
        bad = [p for p in parts if allowed and p not in allowed]
        if bad:
            raise ValueError(f"unknown attribute {bad[0]!r} for dataset {dataset!r}; allowed: {', '.join(allowed)} "
                             "(or an intersection such as 'a*b')")
        return v


class ModelConfig(_Section):
    name: str = "mlp"
    width: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)
    batch_norm: bool | None = None
    channels_last: bool = False
    precision: Literal["fp32", "bf16"] = "fp32"
    compile: bool = False

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
    criterion: Literal["magnitude", "random", "structured"] = Field(
        default="magnitude", validation_alias=AliasChoices("criterion", "method"))  # 'method': its former name
    schedule: Literal["oneshot", "gradual", "iterative"] = "oneshot"
    gradual_start_epoch: int = Field(default=0, ge=0)
    gradual_end_epoch: int | None = Field(default=None, ge=1)
    gradual_initial: float = Field(default=0.0, ge=0.0, lt=1.0)
    iterative_rounds: int = Field(default=3, ge=1)
    keep_first_last: bool = False
    allow_layer_removal: bool = False
    bn_recalibrate: bool = False
    bn_recalibrate_finetuned: bool = False
    bn_batches: int = Field(default=50, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _one_name_for_criterion(cls, data: Any) -> Any:
        if isinstance(data, dict) and "criterion" in data and "method" in data:
            raise ValueError(f"both prune.criterion ({data['criterion']!r}) and prune.method ({data['method']!r}, "
                             "the former name of criterion) are set; keep only criterion")
        return data

    @model_validator(mode="after")
    def _gradual_fits(self) -> "PruneConfig":
        if self.schedule == "gradual":
            if self.gradual_end_epoch is not None and self.gradual_end_epoch <= self.gradual_start_epoch:
                raise ValueError(f"gradual_end_epoch ({self.gradual_end_epoch}) must be greater than "
                                 f"gradual_start_epoch ({self.gradual_start_epoch})")
            if self.gradual_initial > min(self.rates):
                raise ValueError(f"gradual_initial ({self.gradual_initial}) must not exceed the smallest rate "
                                 f"({min(self.rates)})")
        return self

    def key_spec(self) -> dict:
        """What a pruning cell's key hashes: scope and criterion (under its former name 'method', so keys of
        existing studies hold), plus each other field that differs from its default and matters here."""
        spec: dict = {"scope": self.scope, "method": self.criterion}
        fields = ["schedule", "keep_first_last", "allow_layer_removal", "bn_recalibrate", "bn_recalibrate_finetuned"]
        if self.bn_recalibrate or self.bn_recalibrate_finetuned:
            fields.append("bn_batches")
        if self.schedule == "gradual":
            fields += ["gradual_start_epoch", "gradual_end_epoch", "gradual_initial"]
        if self.schedule == "iterative":
            fields.append("iterative_rounds")
        for k in fields:
            if getattr(self, k) != type(self).model_fields[k].default:
                spec[k] = getattr(self, k)
        return spec

    @field_validator("rates")
    @classmethod
    def _rates_in_range(cls, v: list[float]) -> list[float]:
        for i, r in enumerate(v):
            if not 0.0 <= r < 1.0:
                raise ValueError(f"rates[{i}] = {r}: a pruning rate (sparsity) must be in [0, 1)")
        if len(set(v)) != len(v):
            raise ValueError(f"rates contain duplicates: {v}")
        named: dict[str, float] = {}  # cells are named by the rate to 6 significant digits (s0_p0.9_nft)
        for r in v:
            other = named.setdefault(f"{r:g}", r)
            if other != r:
                raise ValueError(f"rates {other!r} and {r!r} agree to 6 significant digits, so their cells would "
                                 "share one name; keep one of them")
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
    methods: list[Literal["nft", "el", "el_rb", "ceag", "vkd"]] = Field(default_factory=lambda: ["nft"], min_length=1)


class MitigateConfig(_Section):
    """Options of the mitigation methods (see docs/mitigation.md); defaults mirror mitigate.MitigateOptions."""

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


class EvalConfig(_Section):
    splits: list[Literal["train", "val", "test"]] = Field(default_factory=lambda: ["train", "val", "test"], min_length=1)
    batch_size: int = Field(default=512, ge=1)


class RunConfig(_Section):
    """How cells are executed; never part of a cell's key (it does not change results)."""

    executor: Literal["local", "ray"] = "local"
    workers: int = Field(default=1, ge=1)
    address: str | None = None
    cpus_per_cell: float = Field(default=1.0, gt=0.0)
    gpus_per_cell: float = Field(default=0.0, ge=0.0)
    max_retries: int = Field(default=3, ge=0)
    save_pruned: bool = False  # also keep each fine-tuned pruned model (cells/<name>/model.safetensors)


class DiagnosticsConfig(_Section):
    """Per-group diagnostics of each dense model (Sections 4-5 of the paper); see docs/diagnostics.md."""

    enabled: bool = True
    split: Literal["train", "val", "test"] = "train"
    max_samples: int | None = Field(default=256, ge=1)  # per group, for the Hessian (gradients use every sample)
    eigen_method: Literal["lanczos", "power"] = "lanczos"
    hvp: Literal["auto", "double_backward", "forward_over_reverse"] = "auto"
    iterations: int = Field(default=50, ge=1)
    tol: float = Field(default=1e-3, gt=0.0)
    trace_samples: int = Field(default=10, ge=0)  # Hutchinson probes per group (0 = no trace; else >= 2)
    batch_size: int = Field(default=512, ge=1)
    seed: int = 0

    @field_validator("trace_samples")
    @classmethod
    def _trace_samples(cls, v: int) -> int:
        if v == 1:
            raise ValueError("trace_samples must be 0 (no trace) or at least 2 (for a standard error)")
        return v


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
    def _validation_split_where_needed(self) -> "StudyConfig":
        """Selection on the validation split and VKD (whose dual step reads it) need one: refused up front, not
        after the dense models have trained."""
        if self.data.val_fraction == 0:
            needs = ([f"mitigate.selection = {self.mitigate.selection!r}"] if self.mitigate.selection != "last"
                     else []) + (["finetune.methods includes 'vkd'"] if "vkd" in self.finetune.methods else [])
            if needs:
                raise ValueError(f"{' and '.join(needs)} need(s) a validation split, but data.val_fraction = 0; "
                                 "set data.val_fraction > 0 (e.g. 0.1)")
        return self

    @model_validator(mode="after")
    def _diagnostics_split_evaluated(self) -> "StudyConfig":
        """Warn when the diagnostics' split is not evaluated: the diagnostics themselves read the data split and are
        complete (the group-size experiment evaluates only test), but the Theorem 1 check compares them with each
        group's loss on that split, so it is left out of the study's report."""
        split, splits = self.diagnostics.split, self.eval.splits
        if self.diagnostics.enabled and split not in splits:
            warnings.warn(
                f"diagnostics.split = {split!r} is not among eval.splits {splits}: the Theorem 1 check needs every "
                f"group's loss on that split and is left out of the report; add {split!r} to eval.splits, set "
                f"diagnostics.split to one of {', '.join(splits)}, or set diagnostics.enabled = false",
                UserWarning, stacklevel=2)
        return self

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
            if isinstance(e.get("input"), dict):  # a check across the keys of a section: the message names them
                lines.append(f"  {loc or 'study'}: {msg}")
            else:
                lines.append(f"  {loc} = {e.get('input')!r}: {msg}")
    return "\n".join(lines)


def _section_for(loc: tuple) -> type[BaseModel] | None:
    cls: type[BaseModel] = StudyConfig
    for part in loc:
        field = cls.model_fields.get(str(part))
        ann = field.annotation if field is not None else None
        ann = next((a for a in get_args(ann) if a is not type(None)), ann)  # X | None -> X
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        cls = ann
    return cls


UNSET = object()
"""The value of a ``key=null`` override: remove the key, so that its default applies."""


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.epochs=5' -> (['train', 'epochs'], 5); values are TOML, bare words are strings, ``null`` is UNSET.

    A value that looks like TOML (it starts with a bracket, a brace or a quote) but does not parse is an error
    naming the override and the problem, never a string.
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (for example train.epochs=5)")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    if raw == "null":
        return key.split("."), UNSET
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError as exc:
        if raw[:1] not in ("[", "{", '"', "'"):
            return key.split("."), raw
        raise ConfigError(_bad_value_message(text, key, raw, exc)) from None
    return key.split("."), value


def _bad_value_message(text: str, key: str, raw: str, exc: tomllib.TOMLDecodeError) -> str:
    """Why a bracketed or quoted override value is not TOML: the parser's words, the bare items, the expected type."""
    at = len("v = ")  # parse_override parses 'v = <value>': columns count from there
    problem = re.sub(r"\(at line 1, column (\d+)\)", lambda m: f"(at character {int(m[1]) - at} of the value)",
                     str(exc))
    problem = problem.replace("(at end of document)", "(at the end of the value)")
    msg = f"override {text!r}: the value is not valid TOML: {problem}"
    if raw.startswith("[") and raw.endswith("]"):
        bare = [item for item in (i.strip() for i in raw[1:-1].split(",")) if item and not _is_toml_value(item)]
        if bare:
            what = "is not a number, true/false or a quoted string" if len(bare) == 1 else \
                "are not numbers, true/false or quoted strings"
            msg += f"; {', '.join(repr(b) for b in bare)} {what} (quote text in a list: [\"a\", \"b\"])"
    expected = _expected_type(key.split("."))
    return msg + (f"; {key} expects {expected}" if expected else "")


def _is_toml_value(item: str) -> bool:
    try:
        tomllib.loads(f"v = {item}")
    except tomllib.TOMLDecodeError:
        return False
    return True


def _expected_type(path: list[str]) -> str:
    """'a list of integers' for seeds, '' where the key is unknown."""
    section = _section_for(tuple(path[:-1]))
    field = section.model_fields.get(path[-1]) if section else None
    return _describe_type(field.annotation) if field is not None else ""


_TYPE_WORDS = {int: ("an integer", "integers"), float: ("a number", "numbers"), str: ("a string", "strings"),
               bool: ("true or false", "true/false values")}


def _describe_type(ann: Any, plural: bool = False) -> str:
    """Words for a field's type: list[int] -> 'a list of integers', Literal['a', 'b'] -> 'one of a, b'."""
    origin, args = get_origin(ann), [a for a in get_args(ann) if a is not type(None)]
    if origin is list and args:
        return "a list of " + _describe_type(args[0], plural=True)
    if origin is Literal:
        return ("values among " if plural else "one of ") + ", ".join(str(a) for a in get_args(ann))
    if args:  # X | None
        return _describe_type(args[0], plural)
    if ann in _TYPE_WORDS:
        return _TYPE_WORDS[ann][plural]
    return "a table" if isinstance(ann, type) and issubclass(ann, BaseModel) else ""


def apply_overrides(raw: dict, overrides: list[str] | None) -> dict:
    """A copy of ``raw`` with each dotted override set (or, for ``key=null``, removed); an override of a key also
    replaces the key's other name (prune.method, the former name of prune.criterion) where the file used it."""
    out = copy.deepcopy(raw)
    for text in overrides or []:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            if value is UNSET and part not in node:
                break  # nothing to unset
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: '{part}' is not a section")
        else:
            _drop_other_names(node, path[:-1], path[-1])
            if value is UNSET:
                node.pop(path[-1], None)
            else:
                node[path[-1]] = value
    return out


def _drop_other_names(node: dict, section: list[str] | tuple, key: str, keep: dict | None = None) -> None:
    """Remove from ``node`` (the dict of ``section``) the other accepted names of ``key``'s field, if it has any,
    except those also in ``keep`` (set by the same file, so both names reach validation, which refuses that)."""
    cls = _section_for(tuple(section))
    for field in (cls.model_fields.values() if cls else ()):
        names = getattr(field.validation_alias, "choices", None) or ()
        if key in names:
            for other in names:
                if other != key and other not in (keep or {}):
                    node.pop(other, None)


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
        try:
            raw = _deep_merge(raw, tomllib.loads(_read_study_file(p)))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
        source = str(p)
    if overrides:
        source += " + overrides " + " ".join(overrides)
    return validate_config(apply_overrides(raw, overrides), source=source)


def _read_study_file(p: Path) -> str:
    """The text of a study file; a missing, unreadable or non-UTF-8 file is a ConfigError naming it."""
    if not p.exists():
        raise ConfigError(f"{p}: study file not found")
    if p.is_dir():
        raise ConfigError(f"{p}: is a folder, not a study file (give the path of a .toml file)")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not valid UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                          "save the study file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the study file: {exc.strerror or exc}") from None


def preset_names() -> list[str]:
    from importlib import resources

    return sorted(p.name[:-5] for p in resources.files("prunefair.presets").iterdir() if p.name.endswith(".toml"))


def preset_description(name: str) -> str:
    """The first comment line of a preset file (what it reproduces), or ''."""
    from importlib import resources

    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r}; allowed: {', '.join(preset_names())}")
    for line in resources.files("prunefair.presets").joinpath(f"{name}.toml").read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def read_preset(name: str) -> dict:
    from importlib import resources

    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r}; allowed: {', '.join(preset_names())}")
    return tomllib.loads(resources.files("prunefair.presets").joinpath(f"{name}.toml").read_text())


def _deep_merge(base: dict, extra: dict, section: tuple = ()) -> dict:
    """``extra`` merged over ``base``; a key of ``extra`` also replaces its other name in ``base`` (see
    apply_overrides), so a file's prune.criterion wins over a preset's prune.method."""
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v, (*section, k))
        else:
            _drop_other_names(out, section, k, keep=extra)
            out[k] = v
    return out
