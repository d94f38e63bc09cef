"""Architectures, one per file, each naming its paper; build them by name through the registry."""

from prunefair.models.registry import (
    ModelInfo, build_model, count_parameters, input_dtype, model_names, register_model,
)

__all__ = ["ModelInfo", "build_model", "count_parameters", "input_dtype", "model_names", "register_model"]
