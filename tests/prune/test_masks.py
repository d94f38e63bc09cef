import pytest
import torch
from torch import nn

from prunefair.data import GroupedData
from prunefair.prune import MaskSet, global_magnitude_masks, layerwise_magnitude_masks, make_masks, prunable_parameters
from prunefair.train import TrainSettings, fit


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9, 0.99, 0.999])
def test_global_sparsity_within_one_weight(rate):
    model = _model()
    masks = global_magnitude_masks(model, rate)
    total = sum(p.numel() for p in prunable_parameters(model).values())
    assert abs(masks.pruned - rate * total) <= 1
    assert masks.total == total


def test_global_magnitude_removes_the_smallest_weights():
    model = _model()
    masks = global_magnitude_masks(model, 0.7)
    allw = torch.cat([p.detach().abs().flatten() for p in prunable_parameters(model).values()])
    keep = torch.cat([m.flatten() for m in masks.masks.values()])
    # brute force: every kept weight is at least as large as every pruned one
    assert allw[keep].min() >= allw[~keep].max()


def test_layerwise_prunes_each_layer_at_the_rate():
    model = _model()
    masks = layerwise_magnitude_masks(model, 0.5)
    for name, s in masks.layer_sparsity().items():
        n = masks.masks[name].numel()
        assert abs(s * n - 0.5 * n) <= 1


def test_rate_zero_is_dense_and_bad_rates_are_refused():
    model = _model()
    assert make_masks(model, 0.0).pruned == 0
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="rate"):
            make_masks(model, bad)
    with pytest.raises(ValueError, match="scope"):
        make_masks(model, 0.5, scope="nope")


def test_mask_stays_zero_through_finetuning_with_momentum_and_weight_decay():
    model = _model()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(96, 1, 8, 8, generator=gen)
    y = torch.randint(0, 10, (96,), generator=gen)
    data = GroupedData(x, y, y.clone(), tuple("0123456789"), tuple("0123456789"))
    # first give the weights momentum: a few dense steps
    fit(model, data, TrainSettings(epochs=1, batch_size=16, lr=0.1), seed=0)
    masks = global_magnitude_masks(model, 0.8)
    fit(model, data, TrainSettings(epochs=3, batch_size=16, lr=0.1, weight_decay=1e-2), seed=0, masks=masks)
    for name, p in prunable_parameters(model).items():
        pruned = ~masks.masks[name]
        assert torch.count_nonzero(p.detach()[pruned]) == 0, name
        assert torch.count_nonzero(p.detach()[~pruned]) > 0


def test_mask_state_dict_round_trip_and_from_zeros():
    model = _model()
    masks = global_magnitude_masks(model, 0.6)
    again = MaskSet.from_state_dict(masks.state_dict())
    for k in masks.masks:
        assert torch.equal(again.masks[k], masks.masks[k])
    masks.bind(model).apply()
    from_zeros = MaskSet.from_zeros(model)
    assert from_zeros.pruned == masks.pruned


def test_bound_masks_share_the_parameters_layout_so_foreach_fuses():
    """channels_last weights get channels_last mask copies: torch._foreach_mul_ fuses only matching strides."""
    import torch

    from prunefair.models import build_model
    from prunefair.prune import make_masks

    model = build_model("cnn", num_classes=3, input_shape=(3, 8, 8), width=0.25).to(memory_format=torch.channels_last)
    masks = make_masks(model, 0.5).bind(model)
    params, floats = masks._bound(None)
    assert any(p.dim() == 4 for p in params)
    for p, f in zip(params, floats):
        assert f.stride() == p.stride() and f.dtype == p.dtype
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    masks.apply()
    for name, m in masks.masks.items():
        p = dict(model.named_parameters())[name]
        torch.testing.assert_close(p.detach(), before[name] * m)
