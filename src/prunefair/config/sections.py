"""The sections of a study file ([data], [model], [train], [prune], ...): one pydantic model each, unknown keys
refused, every range checked where the key is read."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any, Literal

from pydantic import (
    AliasChoices, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator,
)

from prunefair.diagnostics.diagnose import DEFAULT_MAX_SAMPLES, DEFAULT_TRACE_SAMPLES
from prunefair.mitigate.settings import MitigateFields


class ConfigError(ValueError):
    """A study file or override is invalid; the message names the source, key and allowed values."""


def plain(value):
    """The study-file types of values a Python caller may hand over: paths as strings, tuples, ranges and 1-d
    arrays as lists, numpy (or torch) scalars as Python numbers. Nothing else is converted: the sections validate
    strictly, so ``epochs = true``, ``seeds = ["1"]`` or ``flip = 1`` are errors naming the key, not 1, [1], True."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, range)):
        return [plain(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    shape = getattr(value, "shape", None)
    if shape is not None and callable(getattr(value, "tolist", None)):  # numpy / torch scalars and 1-d arrays
        return plain(value.tolist()) if len(shape) == 1 else value.item() if len(shape) == 0 else value
    return value


class _Section(BaseModel):
    # allow_inf_nan=False: every float key (lr, weight_decay, the dual learning rates, eps, tolerances, cpus/gpus per
    # cell, resample factors, rates, ...) takes finite numbers only; inf or nan is refused naming the key
    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _plain_types(cls, v):  # on construction, validation and assignment alike
        return plain(v)


def stored(info: ValidationInfo) -> bool:
    """Validating the config.toml of an existing study folder (``validate_config(..., stored=True)``): names of
    datasets and models registered from Python by the process that ran it (``register_arrays``,
    ``register_model``) are not checked against this process's registries, so its report and status still read."""
    return bool(info.context and info.context.get("stored"))


class ResampleConfig(_Section):
    """Up- or down-sample one group of the training split by ``factor`` (the group-size experiment)."""

    group: str
    factor: float = Field(gt=0.0, allow_inf_nan=False)  # a bound on the resampled size is checked on the data


class DataConfig(_Section):
    dataset: str = "digits"
    root: str | None = None
    target: str = "class"
    group: str = "class"
    image_size: int | None = Field(default=None, gt=0)
    val_fraction: float = Field(default=0.1, ge=0.0, lt=0.5)
    test_fraction: float = Field(default=0.2, gt=0.0, lt=0.5)
    split_seed: int = Field(default=0, ge=0, lt=2**32)  # numpy generators take 0 .. 2**32 - 1
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
    def _known_dataset(cls, v: str, info: ValidationInfo) -> str:
        from prunefair.data import dataset_names

        if v not in dataset_names() and not stored(info):
            raise ValueError(f"unknown dataset {v!r}; allowed: {', '.join(dataset_names())}")
        return v

    @field_validator("age_bins")
    @classmethod
    def _increasing_bins(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (len(v) < 2 or v[0] < 0 or any(b <= a for a, b in zip(v, v[1:]))):
            raise ValueError("need at least two strictly increasing lower edges >= 0, e.g. [0, 3, 10, 20]")
        return v

    @model_validator(mode="after")
    def _keys_fit_the_dataset(self, context: ValidationInfo) -> "DataConfig":
        """A loader key the dataset's loader does not read (each dataset declares its own) is refused."""
        from prunefair.data.registry import LOADER_KEYS, dataset_info, dataset_names

        if self.dataset not in dataset_names() or stored(context):  # a stored study is read as it was run (its
            return self  # dataset may be registered elsewhere; an ignored key there changed nothing)
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
    def _known_model(cls, v: str, info: ValidationInfo) -> str:
        from prunefair.models import model_names

        if v not in model_names() and not stored(info):
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
    crop_fill: Literal["mean", "black"] = "mean"  # the padded border; in cell keys only when not the default
    flip: bool = False

    def key_spec(self) -> dict:
        """The section as it enters cell keys: crop_fill only where it can change training, "black" with
        crop_padding > 0 (keys of older studies hold)."""
        d = self.model_dump(mode="json")
        if d["crop_fill"] == "mean" or not d["crop_padding"]:
            d.pop("crop_fill")
        return d


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


class FinetuneConfig(TrainConfig):
    """[train]'s keys with fine-tuning's defaults, and the methods to fine-tune with."""

    epochs: int = Field(default=10, ge=1)
    lr: float = Field(default=0.01, gt=0.0)
    methods: list[Literal["nft", "el", "el_rb", "ceag", "vkd"]] = Field(default_factory=lambda: ["nft"], min_length=1)

    @field_validator("methods")
    @classmethod
    def _unique_methods(cls, v: list[str], info: ValidationInfo) -> list[str]:
        if len(set(v)) == len(v):
            return v
        if stored(info):  # a folder run before repeats were refused: its cells are one per method, read them once
            return list(dict.fromkeys(v))
        raise ValueError(f"methods contain duplicates: {v}")  # each copy would be counted as if it were a seed


# the fine-tuning methods that read each [mitigate] key; "report": mitigation.csv, written when any method but nft runs
# (eps bounds psi_holds_share there, el_tolerance el_holds_share)
MITIGATE_READERS = {
    "el_dual_lr": ("el", "el_rb"), "dual_update": ("el",), "buffer_size": ("el_rb", "ceag"),
    "eps": ("ceag", "vkd", "report"), "ceag_dual_lr": ("ceag",), "el_tolerance": ("report",),
    "vkd_alpha": ("vkd",), "vkd_temperature": ("vkd",), "vkd_dual_lr": ("vkd",), "vkd_val_every": ("vkd",),
}


class MitigateConfig(_Section, MitigateFields):
    """Options of the mitigation methods (see docs/mitigation.md): the fields, defaults and ranges of
    mitigate.settings.MitigateFields, which MitigateOptions (from Python) is checked against too."""

    def ineffective(self, methods: list[str]) -> list[str]:
        """Why each key set away from its default changes nothing for ``methods`` (finetune.methods): no method among
        them reads it. For a warning, not an error: the same file may run other methods later. (A key at its default
        cannot be told from one left unset once the config is resolved: config.toml writes every default out.)"""
        out = []
        for key, readers in MITIGATE_READERS.items():
            value = getattr(self, key)
            if value != type(self).model_fields[key].default and not _reads(readers, methods):
                note = " (el_rb takes its dual step after every mini-batch)" if key == "dual_update" and \
                    "el_rb" in methods else ""
                out.append(f"mitigate.{key} = {value!r} has no effect: only {_readers_text(readers)} "
                           f"{'reads' if len(readers) == 1 else 'read'} it{note}, and finetune.methods = {methods}")
        tolerance = self.selection_tolerance
        if self.selection != "val_max_psi" and tolerance != type(self).model_fields["selection_tolerance"].default:
            out.append(f"mitigate.selection_tolerance = {tolerance!r} has no effect: only selection = 'val_max_psi' "
                       f"reads it, and mitigate.selection = {self.selection!r}")
        return out


def _reads(readers: tuple[str, ...], methods: list[str]) -> bool:
    """Whether a key read by ``readers`` is read in a study of ``methods``."""
    return any(r in methods for r in readers) or ("report" in readers and any(m != "nft" for m in methods))


def _readers_text(readers: tuple[str, ...]) -> str:
    names = [r if r != "report" else "mitigation.csv (written when a method other than nft runs)" for r in readers]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


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
    # per group, for the Hessian (gradients use every sample); "all" (or None from Python): every sample
    max_samples: int | str | None = DEFAULT_MAX_SAMPLES
    eigen_method: Literal["lanczos", "power"] = "lanczos"
    hvp: Literal["auto", "double_backward", "forward_over_reverse"] = "auto"
    iterations: int = Field(default=50, ge=1)
    tol: float = Field(default=1e-3, gt=0.0)
    # Lanczos's stop rule: "eigenvalue" (its error estimate min(r, r^2/gap), fast) or "residual" (r <= tol*lambda,
    # slower, and safer where the gradient start nearly misses the top eigenvector); in keys only when not the default
    criterion: Literal["eigenvalue", "residual"] = "eigenvalue"
    trace_samples: int = Field(default=DEFAULT_TRACE_SAMPLES, ge=0)  # Hutchinson probes per group (0 = no trace; else >= 2)
    batch_size: int = Field(default=512, ge=1)

    def key_spec(self) -> dict:
        """The section as it enters the diagnostics' key: ``criterion`` only when not its default (keys of older
        studies hold)."""
        d = self.model_dump(mode="json")
        if d["criterion"] == "eigenvalue":
            d.pop("criterion")
        return d

    @field_validator("max_samples")
    @classmethod
    def _samples(cls, v):
        if v is None or v == "all" or (type(v) is int and v >= 1):
            return v
        raise ValueError("an integer >= 1 or \"all\" (every sample of the group)")
    seed: int = 0

    @field_validator("seed")
    @classmethod
    def _seed_range(cls, v: int, info: ValidationInfo) -> int:
        """As the study's seeds: torch and numpy generators take 0 .. 2**32 - 1 portably (a larger one failed every
        dense model's diagnostics with torch's 'Overflow when unpacking long long'); a stored study reads as run."""
        if not 0 <= v < 2**32 and not stored(info):
            raise ValueError("a seed in 0 .. 4294967295 (2**32 - 1)")
        return v

    @field_validator("trace_samples")
    @classmethod
    def _trace_samples(cls, v: int) -> int:
        if v == 1:
            raise ValueError("trace_samples must be 0 (no trace) or at least 2 (for a standard error)")
        return v

