"""Architectures, one per file, each naming its paper; build them by name through the registry."""

from prunefair.models.device import model_device
from prunefair.models.modes import eval_mode, kept_modes
from prunefair.models.outputs import check_logits
from prunefair.models.registry import (
    ModelInfo, build_model, count_parameters, input_dtype, model_names, register_model,
)

__all__ = ["ModelInfo", "build_model", "check_logits", "count_parameters", "eval_mode", "input_dtype", "kept_modes",
           "model_device", "model_names", "register_model"]
