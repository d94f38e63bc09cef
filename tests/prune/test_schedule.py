"""Gradual (cubic) and iterative schedules: the sparsity at every epoch or round, nested masks."""

import functools

import pytest
import torch
from torch import nn

from prunefair.data import GroupedData
from prunefair.prune import GradualPruner, cubic_sparsity, iterative_rates, make_masks, prunable_parameters
from prunefair.train import TrainSettings, finetune_pruned, fit


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


def _data():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(32, 1, 8, 8, generator=gen)
    y = torch.randint(0, 10, (32,), generator=gen)
    return GroupedData(x, y, y.clone(), tuple("0123456789"), tuple("0123456789"))


def test_cubic_schedule_closed_form():
    sf, si, t0, t1 = 0.9, 0.1, 2, 7
    for t in range(12):
        if t < t0:
            ref = 0.0
        elif t >= t1:
            ref = sf
        else:
            ref = sf + (si - sf) * (1 - (t - t0) / (t1 - t0)) ** 3
        assert cubic_sparsity(t, final=sf, initial=si, start_epoch=t0, end_epoch=t1) == pytest.approx(ref, abs=1e-15)
    assert cubic_sparsity(t0, final=sf, initial=si, start_epoch=t0, end_epoch=t1) == pytest.approx(si)
    with pytest.raises(ValueError, match="start_epoch"):
        cubic_sparsity(0, final=0.5, start_epoch=3, end_epoch=3)
    with pytest.raises(ValueError, match="initial"):
        cubic_sparsity(0, final=0.5, initial=0.6, end_epoch=3)


@pytest.mark.parametrize("criterion,scope", [("magnitude", "global"), ("magnitude", "layer"), ("random", "global"),
                                             ("structured", "layer")])
def test_gradual_pruning_follows_the_schedule_each_epoch(criterion, scope):
    model, data, final, epochs = _model(), _data(), 0.8, 6
    prune = functools.partial(_prune, scope=scope, criterion=criterion)
    pruner = GradualPruner(prune, final, end_epoch=4, initial=0.0, start_epoch=0)
    seen = []

    def hook(epoch, m):
        masks = pruner(epoch, m)
        seen.append((epoch, masks))
        return masks

    history = fit(model, data, TrainSettings(epochs=epochs, batch_size=16, lr=0.05), seed=0, on_epoch_start=hook)
    total = sum(p.numel() for p in prunable_parameters(model).values())
    prev = None
    for (epoch, masks), rec in zip(seen, history.epochs):
        target = cubic_sparsity(epoch, final=final, end_epoch=4)
        if masks is not None:
            if criterion == "structured":  # whole channels of the conv (the classifier stays dense)
                assert masks.layer_sparsity()["0.weight"] == round(target * 4) / 4
            else:
                assert masks.pruned == round(target * total), epoch
            if prev is not None:
                for k in prev.masks:
                    assert not bool((masks.masks[k] & ~prev.masks[k]).any()), f"epoch {epoch}: weight revived"
            prev = masks
        assert rec["sparsity"] == (prev.sparsity if prev is not None else 0.0)
    assert [e for e, m in seen if m is not None] == [1, 2, 3, 4]  # epoch 0 is dense (s_0 = s_i = 0), 5 keeps
    if criterion != "structured":
        assert pruner.masks.pruned == round(final * total)
    for name, p in prunable_parameters(model).items():
        assert torch.count_nonzero(p.detach()[~pruner.masks.masks[name]]) == 0


def _prune(model, rate, previous, *, scope, criterion):
    return make_masks(model, rate, scope=scope, criterion=criterion, previous=previous,
                      generator=torch.Generator().manual_seed(0))


def test_iterative_rates_remove_a_constant_fraction_of_what_is_left():
    rates = iterative_rates(0.9, 3)
    assert rates[-1] == 0.9
    kept = [1.0] + [1 - r for r in rates]
    ratios = [kept[i + 1] / kept[i] for i in range(3)]
    assert ratios == pytest.approx([0.1 ** (1 / 3)] * 3)
    assert iterative_rates(0.0, 2) == [0.0, 0.0]
    with pytest.raises(ValueError, match="rounds"):
        iterative_rates(0.5, 0)


def test_finetune_pruned_iterative_and_gradual_reach_the_target():
    settings = TrainSettings(epochs=2, batch_size=16, lr=0.05)
    prune = functools.partial(_prune, scope="global", criterion="magnitude")
    model = _model()
    total = sum(p.numel() for p in prunable_parameters(model).values())
    run = finetune_pruned(model, _data(), settings, rate=0.75, prune=prune, schedule="iterative", rounds=3, seed=0)
    assert [s["sparsity"] for s in run.steps] == [round(r * total) / total for r in iterative_rates(0.75, 3)]
    assert len(run.history.epochs) == 6 and run.history.epochs[-1]["round"] == 3
    assert run.masks.pruned == round(0.75 * total)
    model = _model()
    run = finetune_pruned(model, _data(), TrainSettings(epochs=3, batch_size=16, lr=0.05), rate=0.75, prune=prune,
                          schedule="gradual", seed=0)
    assert run.masks.pruned == round(0.75 * total)
    assert [s["epoch"] for s in run.steps] == [1, 2]
    with pytest.raises(ValueError, match="gradual_end_epoch"):
        finetune_pruned(_model(), _data(), settings, rate=0.5, prune=prune, schedule="gradual",
                        gradual_end_epoch=2, seed=0)
    with pytest.raises(ValueError, match="schedule"):
        finetune_pruned(_model(), _data(), settings, rate=0.5, prune=prune, schedule="nope", seed=0)
