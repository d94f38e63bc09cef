"""The study file: TOML in, one validated StudyConfig out.

Every section forbids unknown keys; every error names the key, the value and what is allowed.
Overrides use dotted keys (``train.epochs=5``), with values parsed as TOML (strings may be bare);
the bare word ``null`` unsets a key, so that its default applies.

The package: ``sections`` (one model per section), ``study`` (StudyConfig, the checks across sections,
``config_hash``), ``overrides`` (dotted ``key=value``), ``load`` (files, presets, validation).
"""

from prunefair.config.load import (
    load_config, preset_description, preset_names, read_preset, resolve_config, validate_config,
)
from prunefair.config.overrides import UNSET, apply_overrides, parse_override
from prunefair.config.sections import (
    ConfigError, DataConfig, DiagnosticsConfig, EvalConfig, FinetuneConfig, MitigateConfig, ModelConfig, PruneConfig,
    ResampleConfig, RunConfig, TrainConfig,
)
from prunefair.config.study import StudyConfig, config_hash

__all__ = ["UNSET", "ConfigError", "DataConfig", "DiagnosticsConfig", "EvalConfig", "FinetuneConfig", "MitigateConfig",
           "ModelConfig", "PruneConfig", "ResampleConfig", "RunConfig", "StudyConfig", "TrainConfig", "apply_overrides",
           "config_hash", "load_config", "parse_override", "preset_description", "preset_names", "read_preset",
           "resolve_config", "validate_config"]
