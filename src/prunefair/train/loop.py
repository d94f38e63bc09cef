"""The training and fine-tuning loop: SGD with momentum, a learning-rate schedule, masks held.

The paper's settings are the defaults: SGD, momentum 0.9, weight decay 1e-4. When masks are given,
gradients of pruned weights are zeroed before each step and the weights re-zeroed after it, so momentum
and weight decay can never revive a pruned weight. The loss comes from an Objective (plain ERM unless a
mitigation method plugs in its own).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from prunefair.data import Augment, GroupedData, iterate_batches
from prunefair.models import check_logits, input_dtype, model_device
from prunefair.progress import NULL_PROGRESS, Progress
from prunefair.prune import MaskSet
from prunefair.train.objective import ERM, Objective


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


def loss_precision(logits: torch.Tensor) -> torch.Tensor:
    """Logits as the loss takes them: bf16/fp16 (autocast) up to float32; float32 and float64 as they are."""
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def divergence_advice(lr: float, weight_decay: float | None, *, dual_step: str | None = None) -> str:
    """The usual causes of a diverged run, with the values in use; ``dual_step`` names a mitigation method's dual step
    setting and its value (``mitigate.ceag_dual_lr=1000000.0``), a cause as likely as the learning rate."""
    causes = [f"the dual step size ({dual_step})"] if dual_step else []
    causes.append(f"the learning rate (lr={lr})")
    if weight_decay is not None:
        causes.append(f"the weight decay (weight_decay={weight_decay})")
    if len(causes) == 1:
        return f"lower {causes[0]} or check the data"
    return f"lower {', '.join(causes[:-1])} or {causes[-1]}, or check the data"


def dual_step_setting(objective: Objective) -> str | None:
    """The objective's dual step setting and value for ``divergence_advice`` (mitigation methods); None without one."""
    setting = getattr(objective, "dual_step_setting", None)
    return setting() if callable(setting) else None


def check_finite_weights(model: nn.Module, who: str, lr: float, weight_decay: float | None = None, *,
                         dual_step: str | None = None) -> None:
    """After the last step, whose result no later loss would show: non-finite weights are an error."""
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise NonFiniteLossError(f"{who}: the weights are not finite after the last step; "
                                 f"{divergence_advice(lr, weight_decay, dual_step=dual_step)}")


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # cosine | step | constant
    nesterov: bool = False
    crop_padding: int = 0
    flip: bool = False
    crop_fill: str = "mean"  # the padded border: "mean" (0 after normalisation) or "black" (torchvision's)
    precision: str = "fp32"  # fp32 | bf16 (autocast; CUDA or CPU)
    compile: bool = False  # torch.compile the forward pass (helps on GPU, not on CPU)

    def __post_init__(self) -> None:
        if self.schedule not in ("cosine", "step", "constant"):
            raise ValueError(f"unknown schedule {self.schedule!r}; allowed: cosine, step, constant")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"unknown precision {self.precision!r}; allowed: fp32, bf16")


@dataclass
class TrainHistory:
    epochs: list[dict] = field(default_factory=list)

    @property
    def final_loss(self) -> float:
        return self.epochs[-1]["loss"] if self.epochs else float("nan")


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """Multiplier of the base learning rate at ``step`` of ``total_steps``."""
    t = step / max(total_steps, 1)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "step":
        return 0.1 ** (int(t >= 0.5) + int(t >= 0.75))
    return 1.0


def global_rng_seed(seed: int) -> int:
    """The seed of the global RNG stream (dropout) during ``fit(seed=seed)``: ``seed`` mixed with a constant, so that it
    is not the stream of the data order (also seeded by ``seed``)."""
    return (int(seed) ^ 0x9E3779B97F4A7C15) & 0xFFFF_FFFF_FFFF_FFFF


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: torch.device | str = "cpu"):
    """Within the block, the global RNG (that of ``nn.Dropout`` and of any module drawing from it: CPU, and the CUDA
    device in use) starts from ``global_rng_seed(seed)``; after it, the caller's state comes back. So training
    depends on its seed alone, not on whatever drew from the global RNG before it in the process (a dense model
    trained or loaded from its checkpoint, other cells, a resumed study), and draws nothing from the caller's."""
    dev = torch.device(device)
    cuda = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(global_rng_seed(seed))
        for index in cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(global_rng_seed(seed))
        yield


def _forward(forward: Callable, x: torch.Tensor, batch_size: int, description: str) -> torch.Tensor:
    """``forward(x)``; batch norm's refusal of a batch of one sample becomes an error naming the batch size."""
    try:
        return forward(x)
    except ValueError as e:
        if len(x) == 1 and "Expected more than 1 value per channel" in str(e):
            raise ValueError(f"{description}: batch_size = {batch_size} gives batches of one sample, which batch norm "
                             "in train mode cannot normalise; use a batch size of at least 2") from e
        raise


def masked_step(opt: torch.optim.Optimizer, loss: torch.Tensor, masks: MaskSet | None) -> None:
    """One optimiser step that cannot revive a pruned weight: grads masked before, weights re-zeroed after."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if masks is not None:
        masks.mask_grads()
    opt.step()
    if masks is not None:
        masks.apply()


def fit(
    model: nn.Module,
    data: GroupedData,
    settings: TrainSettings,
    *,
    seed: int,
    device: torch.device | str | None = None,
    masks: MaskSet | None = None,
    objective: Objective | None = None,
    channels_last: bool = False,
    progress: Progress = NULL_PROGRESS,
    description: str = "train",
    on_epoch_start: Callable[[int, nn.Module], MaskSet | None] | None = None,
) -> TrainHistory:
    """Train ``model`` in place on ``data``; deterministic for a seed on CPU. The whole model is in train mode
    for the epochs (``model.train()``, as a plain PyTorch loop) and is left in eval mode. The data order draws
    from a generator seeded by ``seed``, dropout from the global RNG seeded from ``seed`` for the call
    (``seeded_global_rng``): the caller's global RNG is left as it was.

    ``on_epoch_start(epoch, model)`` (0-based epoch) may return a new MaskSet, held from then on (the
    gradual pruning schedule, prune.GradualPruner); None keeps the current masks. ``device``: where the batches go, by
    default the model's (a model elsewhere than a given ``device`` is a ValueError).
    """
    device = model_device(model, device, who=description)
    objective = objective or ERM()
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                          weight_decay=settings.weight_decay, nesterov=settings.nesterov)
    augment = Augment(settings.crop_padding, settings.flip, settings.crop_fill)
    # batch norm in train mode cannot normalise one sample: a last batch of one (a different sample each epoch,
    # as batches are shuffled) is skipped, as torch's drop_last would
    drop_last = len(data) % settings.batch_size == 1 and any(isinstance(m, _BatchNorm) for m in model.modules())
    if drop_last and len(data) == 1:
        raise ValueError(f"{description}: cannot train a model with batch norm on a single sample")
    steps_per_epoch = len(data) // settings.batch_size if drop_last else math.ceil(len(data) / settings.batch_size)
    total = settings.epochs * steps_per_epoch
    history = TrainHistory()
    if masks is not None:
        masks.bind(model)
        masks.apply()
    objective.start(model=model, data=data, device=device)
    forward = torch.compile(model) if settings.compile else model
    autocast = torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16,
                              enabled=settings.precision == "bf16")
    step = 0
    model.train()
    with seeded_global_rng(seed, device), progress.task(description, total) as bar:
        for epoch in range(settings.epochs):
            if on_epoch_start is not None:  # a pruning schedule may hand over a new (larger) mask
                new_masks = on_epoch_start(epoch, model)
                if new_masks is not None:
                    masks = new_masks.bind(model)
                    masks.apply()
                model.train()
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            n_seen = 0
            for x, y, g in iterate_batches(data, batch_size=settings.batch_size, shuffle=True, generator=generator,
                                           device=device, augment=augment, channels_last=channels_last,
                                           drop_last=drop_last, dtype=input_dtype(model)):
                for group in opt.param_groups:
                    group["lr"] = settings.lr * lr_factor(settings.schedule, step, total)
                with autocast:
                    logits = check_logits(_forward(forward, x, settings.batch_size, description), len(x),
                                          data.num_classes)
                loss = objective.batch_loss(loss_precision(logits), y, g)
                masked_step(opt, loss, masks)
                loss_sum.add_(loss.detach(), alpha=len(y))  # one kernel (promoted to float64)
                n_seen += len(y)
                step += 1
                bar.advance()
            mean_loss = float(loss_sum) / max(n_seen, 1)
            if not math.isfinite(mean_loss):
                raise NonFiniteLossError(
                    f"{description}: non-finite training loss ({mean_loss}) in epoch {epoch + 1}; "
                    f"{divergence_advice(settings.lr, settings.weight_decay, dual_step=dual_step_setting(objective))}")
            record = {"epoch": epoch + 1, "loss": mean_loss, "lr": opt.param_groups[0]["lr"]}
            if on_epoch_start is not None:
                record["sparsity"] = masks.sparsity if masks is not None else 0.0
            record.update(objective.end_epoch(epoch))
            history.epochs.append(record)
    check_finite_weights(model, description, settings.lr, settings.weight_decay,
                         dual_step=dual_step_setting(objective))
    model.eval()
    return history
