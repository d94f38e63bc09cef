"""fit with dropout: the numbers depend on the seed alone, not on what drew from the global RNG before (a dense model
trained or loaded, other cells), so a resumed study recomputes a cell exactly; batch-norm recalibration too."""

import json
import shutil

import pytest
import torch
from torch import nn

from prunefair import run_study
from prunefair.data import GroupedData
from prunefair.models import ModelInfo, register_model
from prunefair.prune import make_masks, recalibrate_batch_norm
from prunefair.train import TrainSettings, fit
from tests.conftest import tiny_study


def _data(n=48):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 6, generator=gen)
    y = torch.randint(0, 3, (n,), generator=gen)
    return GroupedData(x, y, y.clone(), ("a", "b", "c"), ("a", "b", "c"))


def _model(batch_norm=False):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 16),
                         *([nn.BatchNorm1d(16)] if batch_norm else []), nn.ReLU(), nn.Linear(16, 3))


def _trained(outer_seed, seed=0):
    model = _model()
    masks = make_masks(model, 0.5)
    torch.manual_seed(outer_seed)  # whatever ran before in the process
    fit(model, _data(), TrainSettings(epochs=2, batch_size=8, lr=0.1), seed=seed, masks=masks)
    return model.state_dict()


def test_dropout_training_depends_on_the_seed_alone():
    a, b = _trained(1), _trained(2)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    other = _trained(1, seed=1)  # another seed: other data order and other dropout draws
    assert not torch.equal(a["0.weight"], other["0.weight"])


def test_fit_leaves_the_callers_global_rng_as_it_was():
    model = _model()
    torch.manual_seed(5)
    state = torch.get_rng_state()
    fit(model, _data(), TrainSettings(epochs=1, batch_size=8, lr=0.1), seed=0)
    assert torch.equal(torch.get_rng_state(), state)


def test_batch_norm_recalibration_sees_the_activations_of_evaluation_and_is_seeded():
    model = _model(batch_norm=True)
    data = _data()
    results = []
    for outer in (1, 2):
        torch.manual_seed(outer)
        recalibrate_batch_norm(model, data, batch_size=8, max_batches=None, seed=0)
        results.append((model[4].running_mean.clone(), model[4].running_var.clone()))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    recalibrate_batch_norm(model, data, batch_size=len(data), max_batches=None, seed=0)  # one batch: all the data
    with torch.no_grad():  # the eval-mode activations (dropout off) reaching the batch norm, all at once
        h = model[3](model[2](model[1](model[0](data.x))))
    assert torch.allclose(model[4].running_mean, h.mean(0), atol=1e-6)
    assert torch.allclose(model[4].running_var, h.var(0), rtol=1e-4, atol=1e-6)
    assert not model.training and not model[2].training


def _dropout_mlp(*, num_classes, input_shape, width, batch_norm):
    h = max(1, round(32 * width))
    return nn.Sequential(nn.Flatten(), nn.Linear(64, h), nn.ReLU(), nn.Dropout(0.3), nn.Linear(h, num_classes))


@pytest.mark.slow
def test_a_resumed_study_recomputes_a_cell_of_a_dropout_model_exactly(tmp_path):
    register_model(ModelInfo("test_dropout_mlp", _dropout_mlp, "MLP with dropout (test)", False))
    cfg = tiny_study(tmp_path, model={"name": "test_dropout_mlp", "width": 1.0}, diagnostics={"enabled": False},
                     eval={"splits": ["test"]})
    run_study(cfg)
    cell = tmp_path / "study" / "cells" / "s0_p0.9_nft"
    first = json.loads((cell / "result.json").read_text())
    shutil.rmtree(cell)  # lost in a crash: the rerun loads the dense model instead of training it, then recomputes
    run_study(cfg)
    again = json.loads((cell / "result.json").read_text())
    assert again["history"] == first["history"]
    assert again["metrics"] == first["metrics"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_dropout_training_on_cuda_depends_on_the_seed_alone_and_leaves_the_cuda_rng_as_it_was():
    results = []
    for outer in (1, 2):
        model = _model().cuda()
        torch.cuda.manual_seed(outer)
        state = torch.cuda.get_rng_state()
        fit(model, _data(), TrainSettings(epochs=2, batch_size=8, lr=0.1), seed=0, device="cuda")
        assert torch.equal(torch.cuda.get_rng_state(), state)
        results.append({k: v.cpu() for k, v in model.state_dict().items()})
    for k in results[0]:
        assert torch.equal(results[0][k], results[1][k]), k
