"""The training loops, batch-norm recalibration and the boundary distances send the batches to the model's device by
default, as evaluate_groups and the diagnostics do: with the former default device="cpu", a CUDA model given no device
failed deep in its forward pass ("Expected all tensors to be on the same device"), and under DDP with nccl,
``fit_ddp(model, data, settings, seed=...)`` as docs/scaling.md writes it could not run at all. A model elsewhere than
a given device is a ValueError naming both ("meta" stands for an accelerator here: no GPU is needed)."""

import copy

import pytest
import torch
from torch import nn

from prunefair.data import load_dataset
from prunefair.diagnostics import group_boundary_distance
from prunefair.prune import make_masks, recalibrate_batch_norm
from prunefair.study.distributed import evaluate_groups_distributed, fit_ddp
from prunefair.train import TrainSettings, finetune_pruned, fit

SETTINGS = TrainSettings(epochs=1, batch_size=64, lr=0.05)
MISMATCH = r"the model is on cpu but device = 'meta': move the model \(model.to\('meta'\)\) or give device=None"


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits").train.subset(torch.arange(300))


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _finetune(model, data, **kw):
    return finetune_pruned(model, data, SETTINGS, rate=0.5, seed=0, prune=lambda m, rate, previous: make_masks(m, rate),
                           **kw)


def test_fit_fit_ddp_and_finetune_pruned_train_on_the_models_device_by_default_and_name_a_mismatch(data):
    for train in (lambda m, **kw: fit(m, data, SETTINGS, seed=0, **kw),
                  lambda m, **kw: fit_ddp(m, data, SETTINGS, seed=0, **kw),
                  lambda m, **kw: _finetune(m, data, **kw)):
        default, given = _model(), _model()
        train(default)
        train(given, device="cpu")
        _same(_state(default), _state(given))  # the same numbers as device="cpu"
        with pytest.raises(ValueError, match=MISMATCH):
            train(_model(), device="meta")


def test_recalibration_and_boundary_distances_run_on_the_models_device_by_default_and_name_a_mismatch(data):
    model = _model()
    fit(model, data, SETTINGS, seed=0)
    default, given = copy.deepcopy(model), copy.deepcopy(model)
    assert recalibrate_batch_norm(default, data, seed=1) == recalibrate_batch_norm(given, data, seed=1, device="cpu")
    _same(_state(default), _state(given))
    assert group_boundary_distance(model, data).to_dict() == group_boundary_distance(model, data,
                                                                                     device="cpu").to_dict()
    assert evaluate_groups_distributed(model, data).to_dict() == evaluate_groups_distributed(model, data,
                                                                                             device="cpu").to_dict()
    for call in (lambda: recalibrate_batch_norm(model, data, device="meta"),
                 lambda: group_boundary_distance(model, data, device="meta"),
                 lambda: evaluate_groups_distributed(model, data, device="meta")):
        with pytest.raises(ValueError, match=MISMATCH):
            call()
