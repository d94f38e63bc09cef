"""Data-parallel training and evaluation across processes (torchrun / DDP) with exact per-group metrics.

- ``shard_indices``: rank r of W takes samples r, r + W, r + 2W, ...: every sample exactly once, no padding.
  (torch's DistributedSampler pads the last shard with duplicates, which would count some samples twice.)
- ``ExactDistributedSampler``: the same split as a torch Sampler (optionally shuffled per epoch), for DataLoaders.
- ``evaluate_groups_distributed``: each rank sums (count, correct, loss) per group over its shard; the (3, G)
  sums are all-reduced, so the metrics equal the single-process ones (counts exactly, loss sums to rounding).
- ``fit_ddp``: the training loop of ``prunefair.train.fit`` under DistributedDataParallel: the same global batches
  in the same order, each rank taking its share of a batch and weighting its loss so that the averaged gradient
  is the gradient of the global batch mean; masks held as in ``fit``.

Call these after ``torch.distributed.init_process_group`` (gloo on CPU, nccl on GPUs).
"""

from __future__ import annotations

import math
import warnings
from typing import Iterator

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from prunefair.data import GroupedData
from prunefair.measure.group_stats import GroupStats, batch_group_sums
from prunefair.models import check_logits, eval_mode, input_dtype, model_device
from prunefair.train import TrainSettings
from prunefair.train.loop import (
    NonFiniteLossError, TrainHistory, check_finite_weights, divergence_advice, loss_precision, lr_factor, masked_step,
    seeded_global_rng,
)


def _rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None or world_size is None:
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1
    return rank, world_size


def shard_indices(n: int, *, rank: int | None = None, world_size: int | None = None) -> torch.Tensor:
    """The indices of ``range(n)`` that ``rank`` of ``world_size`` owns: disjoint, covering, unpadded."""
    rank, world_size = _rank_world(rank, world_size)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} out of range for world_size {world_size}")
    return torch.arange(rank, max(n, rank), world_size)  # empty when n <= rank


class ExactDistributedSampler(torch.utils.data.Sampler[int]):
    """Like DistributedSampler, but shards may differ in length by one instead of being padded."""

    def __init__(self, n: int, *, rank: int | None = None, world_size: int | None = None, shuffle: bool = False,
                 seed: int = 0):
        self.n, self.shuffle, self.seed, self.epoch = n, shuffle, seed, 0
        self.rank, self.world_size = _rank_world(rank, world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        order = torch.arange(self.n)
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        return iter(order[shard_indices(self.n, rank=self.rank, world_size=self.world_size)].tolist())

    def __len__(self) -> int:
        return len(shard_indices(self.n, rank=self.rank, world_size=self.world_size))


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


@torch.no_grad()
def evaluate_groups_distributed(model: nn.Module, data: GroupedData, *, batch_size: int = 512,
                                device: torch.device | str | None = None) -> GroupStats:
    """Per-group accuracy and loss over all of ``data``, each rank evaluating its shard; same on every rank.
    ``device``: by default the model's."""
    from prunefair.data import iterate_batches

    device = model_device(model, device, who="evaluate_groups_distributed")
    local = data.subset(shard_indices(len(data)))
    sums = torch.zeros(3, data.num_groups, dtype=torch.float64, device=device)
    with eval_mode(model):
        for x, y, g in iterate_batches(local, batch_size=batch_size, device=device, dtype=input_dtype(model)):
            sums += batch_group_sums(model(x), y, g, data.num_groups)
    return GroupStats.from_sums(all_reduce_sum(sums), data.group_names)


def fit_ddp(model: nn.Module, data: GroupedData, settings: TrainSettings, *, seed: int,
            device: torch.device | str | None = None, masks=None) -> TrainHistory:
    """Train ``model`` in place with DistributedDataParallel; the same updates as ``fit`` up to rounding.

    Every rank draws the same permutation per epoch (same seed); a global batch of ``settings.batch_size``
    is split across ranks without padding; each rank's summed loss is scaled by world_size / global batch
    so that DDP's gradient average is the gradient of the global batch mean. No augmentation.

    Batch norm: each rank normalises by the statistics of its own share of a batch (DDP's behaviour), so a model
    with batch norm gets different updates from ``fit`` (a digits MLP, 2 ranks, 2 epochs: parameters 1.2e-2 apart,
    against 1.5e-8 without batch norm). ``nn.SyncBatchNorm.convert_sync_batchnorm(model)`` before the call shares
    the statistics across ranks, on CUDA only (torch's SyncBatchNorm does not run on the CPU); a warning says so.
    """
    device = model_device(model, device, who="fit_ddp")  # None: the model's (a CUDA model under nccl)
    if settings.crop_padding or settings.flip:
        raise ValueError("fit_ddp does not augment (crop_padding and flip must be off)")
    rank, world = _rank_world(None, None)
    if world > 1 and any(type(m) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d) for m in model.modules()):
        warnings.warn("fit_ddp: batch norm normalises each rank's share of a batch, so the updates differ from "
                      "fit's; on CUDA, nn.SyncBatchNorm.convert_sync_batchnorm(model) shares the statistics",
                      stacklevel=2)
    ddp = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                          weight_decay=settings.weight_decay, nesterov=settings.nesterov)
    n, bs = len(data), settings.batch_size
    total = settings.epochs * math.ceil(n / bs)
    if masks is not None:
        masks.bind(model)
        masks.apply()
    history, step = TrainHistory(), 0
    model.train()
    # dropout draws from the global RNG: seeded per rank for the run, the caller's state restored after it
    with seeded_global_rng(seed + rank, device):
        for epoch in range(settings.epochs):
            order = torch.randperm(n, generator=generator)
            # on the device: NCCL all-reduces CUDA tensors only (a CPU one fails), and no host sync per step
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            for start in range(0, n, bs):
                batch = order[start:start + bs]
                idx = batch[shard_indices(len(batch), rank=rank, world_size=world)]
                x = data.to_float(data.x[idx], input_dtype(model)).to(device)
                y = data.y[idx].to(device)
                for group in opt.param_groups:
                    group["lr"] = settings.lr * lr_factor(settings.schedule, step, total)
                summed = F.cross_entropy(loss_precision(check_logits(ddp(x), len(idx))), y, reduction="sum")
                loss = summed * (world / len(batch))
                masked_step(opt, loss, masks)
                loss_sum += summed.detach().double()
                step += 1
            mean_loss = float(all_reduce_sum(loss_sum)) / max(n, 1)
            if not math.isfinite(mean_loss):
                raise NonFiniteLossError(f"rank {rank}: non-finite training loss ({mean_loss}) in epoch {epoch + 1}; "
                                         f"{divergence_advice(settings.lr, settings.weight_decay)}")
            history.epochs.append({"epoch": epoch + 1, "loss": mean_loss, "lr": opt.param_groups[0]["lr"]})
    check_finite_weights(model, f"rank {rank}", settings.lr, settings.weight_decay)
    model.eval()
    return history
