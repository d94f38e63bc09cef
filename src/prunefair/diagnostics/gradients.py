"""Per-group gradient norms ||g_a|| = ||grad_theta J(theta*; D_a)|| in one pass over the data.

The data are sorted by group and cut into batches that never mix groups, so each sample's gradient is
computed exactly once and every group's summed gradient is accumulated batch by batch: one pass in all,
not one pass per group as a masked-loss loop needs. The model is put in eval mode (batch norm uses its
running statistics), which makes the result exact and independent of how the data are batched.

Proposition 1 of the paper: sum_a |D_a| g_a = |D| g, where g is the full-data gradient; at a minimum
g = 0, so the group terms cancel and larger groups get smaller ||g_a||.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prunefair.data import GroupedData
from prunefair.diagnostics.eigen import NotFiniteError
from prunefair.models import check_logits, eval_mode, input_dtype, model_device


def _params(model: nn.Module) -> list[nn.Parameter]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(NO_TRAINABLE)
    return params


# the diagnostics differentiate with respect to the parameters that require grad; a model frozen for inference has none
NO_TRAINABLE = ("no parameter of the model requires grad (frozen with model.requires_grad_(False)?): the gradient "
                "norms and Hessians are taken with respect to the trainable parameters; call "
                "model.requires_grad_(True) first")


def group_batches(data: GroupedData, *, batch_size: int) -> list[tuple[int, torch.Tensor]]:
    """(group, index) batches over ``data``: sorted by group, never mixing groups, sizes near batch_size.

    A group of n samples is cut into ceil(n / batch_size) nearly equal batches.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = torch.argsort(data.g, stable=True)
    counts = np.bincount(data.g.cpu().numpy(), minlength=data.num_groups)
    out, start = [], 0
    for a, n in enumerate(counts):
        idx = order[start : start + n]
        start += n
        if n == 0:
            continue
        for chunk in torch.tensor_split(idx, -(-int(n) // batch_size)):
            out.append((a, chunk))
    return out


@dataclass(frozen=True)
class GroupGradients:
    """||g_a|| per group at theta*, the full-data gradient norm and the Proposition 1 check."""

    group_names: tuple[str, ...]
    count: np.ndarray
    norms: np.ndarray  # ||g_a||, NaN for an empty group
    full_norm: float  # ||g|| with |D| g = sum_a |D_a| g_a
    cancellation: float  # ||sum_a |D_a| g_a|| / sum_a |D_a| ||g_a||  (0 at an exact minimum)
    prop1_error: float | None  # ||sum_a |D_a| g_a - |D| g_plain|| / sum_a |D_a| ||g_a||, g_plain from a plain pass
    vectors: torch.Tensor | None = None  # (G, P) g_a as flat vectors, if asked

    def to_dict(self) -> dict:
        return {
            "group_names": list(self.group_names), "count": self.count.tolist(),
            "norms": [None if np.isnan(v) else float(v) for v in self.norms],
            "full_norm": self.full_norm, "cancellation": self.cancellation, "prop1_error": self.prop1_error,
        }


def _flat(grads, params) -> torch.Tensor:
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])


def _grad(loss: torch.Tensor, params: list[nn.Parameter]) -> tuple[torch.Tensor, ...]:
    """d loss / d params; a parameter the forward pass does not use (an auxiliary head) gets a zero gradient."""
    return torch.autograd.grad(loss, params, allow_unused=True, materialize_grads=True)


def _check_finite(data: GroupedData, a: int, loss: float, grad_norm: float) -> None:
    for what, v in (("mean loss", loss), ("gradient norm", grad_norm)):
        if not math.isfinite(v):
            raise NotFiniteError(f"group {data.group_names[a]!r}: the {what} of the model is not finite ({v}): NaN "
                                 "inputs, or weights so large that the logits or the gradient overflow", index=a)


def full_gradient(model: nn.Module, data: GroupedData, *, batch_size: int = 512,
                  device: torch.device | str | None = None, channels_last: bool = False) -> torch.Tensor:
    """|D| g: the summed gradient over every sample, from plain mixed batches (an independent computation); the
    data on the model's device by default, gradients on also under ``torch.no_grad()``/``torch.inference_mode()``."""
    from prunefair.data import iterate_batches

    params = _params(model)
    with torch.inference_mode(False), torch.enable_grad():
        acc = [torch.zeros_like(p) for p in params]
        for x, y, _ in iterate_batches(data, batch_size=batch_size, device=model_device(model, device),
                                       channels_last=channels_last, dtype=input_dtype(model)):
            loss = F.cross_entropy(check_logits(model(x), len(y), data.num_classes), y, reduction="sum")
            torch._foreach_add_(acc, _grad(loss, params))
    flat = _flat(acc, params).double()
    if not math.isfinite(float(flat.norm())):
        raise NotFiniteError("the full-data gradient is not finite (NaN or inf): NaN inputs, or weights so large that "
                             "the logits or the gradient overflow")
    return flat


def group_gradient_norms(
    model: nn.Module,
    data: GroupedData,
    *,
    batch_size: int = 512,
    device: torch.device | str | None = None,
    channels_last: bool = False,
    keep_vectors: bool = False,
    check_full: bool = False,
) -> GroupGradients:
    """||grad J(theta*; D_a)|| for every group a, exact, in one pass (model in eval mode).

    ``check_full`` runs one more, plain pass over mixed batches and reports how far
    sum_a |D_a| g_a is from |D| g (Proposition 1, to float tolerance). ``p.grad`` is left untouched. ``device``: the
    model's by default. Runs with
    gradients on also when called under ``torch.no_grad()`` or ``torch.inference_mode()``.
    """
    device = model_device(model, device)
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        params = _params(model)
        G = data.num_groups
        counts = data.group_counts()
        norms = np.full(G, np.nan)
        total = None
        vectors = [None] * G if keep_vectors else None
        acc: list[torch.Tensor] | None = None
        loss_sum: torch.Tensor | None = None
        current = -1
        batches = group_batches(data, batch_size=batch_size)
        for i, (a, idx) in enumerate(batches):
            if a != current:
                acc = [torch.zeros_like(p) for p in params]
                loss_sum = None
                current = a
            x = data.to_float(data.x[idx].to(device), input_dtype(model))
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            y = data.y[idx].to(device)
            loss = F.cross_entropy(check_logits(model(x), len(y), data.num_classes), y, reduction="sum")
            torch._foreach_add_(acc, _grad(loss, params))
            summed = loss.detach().double()  # in float64 as evaluate_groups: a float32 sum of finite losses overflows
            loss_sum = summed if loss_sum is None else loss_sum + summed
            if i + 1 == len(batches) or batches[i + 1][0] != a:  # group a is complete
                flat = _flat(acc, params).double()
                # one read of two numbers per group (the norm is read anyway): a non-finite loss or gradient ends
                # here with the group named, not as NaN eigenvalues or a LinAlgError further on
                norm, summed = torch.stack([flat.norm(), loss_sum.double()]).tolist()
                _check_finite(data, a, summed / counts[a], norm / counts[a])
                norms[a] = norm / counts[a]
                total = flat.clone() if total is None else total.add_(flat)
                if keep_vectors:
                    vectors[a] = (flat / counts[a]).float()
        n = int(counts.sum())
        scale = float(np.nansum(counts * norms))
        full_norm = float(total.norm()) / n if total is not None else float("nan")
        cancellation = float(total.norm()) / scale if scale > 0 else float("nan")
        prop1 = None
        if check_full and total is not None:
            plain = full_gradient(model, data, batch_size=batch_size, device=device, channels_last=channels_last)
            prop1 = float((total - plain).norm()) / scale if scale > 0 else 0.0
    vec = None
    if keep_vectors:
        P = sum(p.numel() for p in params)
        vec = torch.stack([v if v is not None else torch.full((P,), float("nan"), device=device) for v in vectors])
    return GroupGradients(tuple(data.group_names), counts.astype(np.int64), norms, full_norm, cancellation, prop1, vec)
