"""Running a user's model in eval mode without changing it: each module's own mode comes back afterwards.

``model.train(was_training)`` would set one mode on every submodule, switching a frozen batch norm back to
training or Monte Carlo dropout off; ``eval_mode`` records and restores each module's flag, also when the block
raises.
"""

from __future__ import annotations

import contextlib
import warnings
import weakref

from torch import nn

_WARNED: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()


def _warn_batch_statistics(model: nn.Module) -> None:
    """Once per model: batch norms without running statistics normalise by each batch's own in eval mode."""
    if model in _WARNED:
        return
    names = [n or "(the model)" for n, m in model.named_modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is None]
    if names:
        _WARNED.add(model)
        warnings.warn(f"batch norm without running statistics ({', '.join(names[:3])}"
                      f"{', ...' if len(names) > 3 else ''}): in eval mode it normalises each batch by its own "
                      "statistics, so per-group numbers depend on batch_size and on which samples share a batch",
                      stacklevel=3)


def module_modes(model: nn.Module) -> list[tuple[nn.Module, bool]]:
    """Each module's training flag (the model's first), for ``restore_modes``."""
    return [(m, m.training) for m in model.modules()]


def restore_modes(modes: list[tuple[nn.Module, bool]]) -> None:
    """The flags ``module_modes`` recorded. The model's own ``train()`` runs first, so a module that overrides it
    (state beyond the flag) is given its mode back too; an override that refuses (an inference-only model) does
    not stop the flags from coming back."""
    try:
        modes[0][0].train(modes[0][1])
    except Exception:  # an error of the caller's block, if any, is the one that propagates
        pass
    for m, training in modes:
        m.training = training


@contextlib.contextmanager
def kept_modes(model: nn.Module):
    """Every module's training flag as it was on entry, restored on exit (also after an error)."""
    modes = module_modes(model)
    try:
        yield model
    finally:
        restore_modes(modes)


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """The model in eval mode within the block; each module's own mode restored on exit."""
    with kept_modes(model):
        _warn_batch_statistics(model)
        model.eval()
        yield model
