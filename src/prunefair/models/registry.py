"""Model registry: name -> builder(num_classes=, input_shape=, width=, batch_norm=)."""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn


@dataclass(frozen=True)
class ModelInfo:
    name: str
    builder: Callable[..., nn.Module]
    description: str
    default_batch_norm: bool = True


_REGISTRY: dict[str, ModelInfo] = {}


BUILDER_KEYWORDS = ("num_classes", "input_shape", "width", "batch_norm")  # what build_model passes, by keyword


def register_model(info: ModelInfo) -> None:
    """Make ``info.builder`` a model a study can name (``[model] name = info.name``); a name registered before is
    replaced. The builder is checked here: it must accept the four keywords ``build_model`` passes (a builder that
    did not once failed in every cell, after the data had loaded, with only Python's TypeError)."""
    if not isinstance(info, ModelInfo):
        raise TypeError(f"register_model takes a ModelInfo(name, builder, description), got {type(info).__name__}")
    if not isinstance(info.name, str) or not info.name:
        raise ValueError(f"register_model: the name {info.name!r} must be a non-empty string")
    if not callable(info.builder):
        raise TypeError(f"register_model({info.name!r}): the builder {info.builder!r} is not callable")
    try:
        signature = inspect.signature(info.builder)
    except (TypeError, ValueError):  # a callable without a signature Python can read: its first call will tell
        signature = None
    if signature is not None:
        try:
            signature.bind(**dict.fromkeys(BUILDER_KEYWORDS))
        except TypeError as exc:
            raise TypeError(f"register_model({info.name!r}): the builder{signature} cannot be called as builder("
                            f"{', '.join(k + '=...' for k in BUILDER_KEYWORDS)}) ({exc}); prunefair calls it with "
                            "exactly these four keywords (accept the ones you do not use as well)") from None
    _REGISTRY[info.name] = info


def model_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def build_model(
    name: str, *, num_classes: int, input_shape: tuple[int, ...], width: float = 1.0, batch_norm: bool | None = None
) -> nn.Module:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(model_names())}")
    if not (isinstance(width, (int, float)) and math.isfinite(width) and width > 0):
        raise ValueError(f"model width {width!r}: must be a finite number > 0")
    info = _REGISTRY[name]
    bn = info.default_batch_norm if batch_norm is None else batch_norm
    return info.builder(num_classes=num_classes, input_shape=tuple(input_shape), width=width, batch_norm=bn)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def input_dtype(model: nn.Module) -> torch.dtype:
    """The dtype a model's float inputs should have: that of its first floating-point parameter (float32 if none).
    (Token ids are data, not a model property: ``GroupedData(..., token_ids=True)`` keeps them integers.)"""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def _register_builtin() -> None:
    from prunefair.models.cnn import small_cnn
    from prunefair.models.mlp import mlp

    register_model(ModelInfo("mlp", mlp, "2-hidden-layer MLP (128, 64) for tabular or tiny images", False))
    register_model(ModelInfo("cnn", small_cnn, "compact 6-conv CNN, ~0.29M parameters on 3-channel input", True))
    from prunefair.models.resnet import resnet18, resnet20, resnet50
    from prunefair.models.vgg import vgg19

    register_model(ModelInfo("resnet18", resnet18, "CIFAR-style ResNet18 (He et al. 2016), ~11.2M parameters", True))
    register_model(ModelInfo("resnet50", resnet50, "CIFAR-style ResNet50 (He et al. 2016), ~23.5M parameters", True))
    register_model(ModelInfo("resnet20", resnet20, "narrow CIFAR ResNet-20 (He et al. 2016), ~0.27M parameters", True))
    register_model(ModelInfo("vgg19", vgg19, "CIFAR-style VGG19 with batch norm (Simonyan & Zisserman 2015), ~20.0M",
                             True))
    # the configurations Tran et al.'s appendix B.2 describes: VGG-19 with 3 fully connected layers (~143M) and
    # ResNet50 with its max-pool stem (48 convolutions, 1 max-pool, 1 average pool, ~25M)
    register_model(ModelInfo("vgg19_imagenet", functools.partial(vgg19, head="imagenet"),
                             "VGG19 with its 3 fully connected layers, as in the paper's appendix (~140M at 48x48)",
                             True))
    register_model(ModelInfo("resnet50_imagenet", functools.partial(resnet50, stem="imagenet"),
                             "ResNet50 with its 7x7 stem and max-pool, as in the paper's appendix (~23.5M)", True))


_register_builtin()
