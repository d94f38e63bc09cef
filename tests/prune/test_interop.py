"""Interoperability with torch.nn.utils.prune, plain zeroed state dicts, and our pruned checkpoints."""

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as tprune

from prunefair.prune import (
    MaskSet, load_pruned, load_pruned_state_dict, make_masks, masks_from_state_dict, prunable_parameters,
    save_pruned, to_torch_prune,
)
from prunefair.study.store import load_model_state


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


def test_torch_l1_unstructured_round_trips():
    pruned = _model()
    tprune.l1_unstructured(pruned[0], "weight", amount=0.5)
    tprune.l1_unstructured(pruned[4], "weight", amount=0.7)
    state = pruned.state_dict()
    assert "0.weight_orig" in state and "4.weight_mask" in state
    plain = _model(seed=9)  # other weights: everything must come from the state dict
    masks = load_pruned_state_dict(plain, state)
    for mod, name in ((pruned[0], "0.weight"), (pruned[4], "4.weight")):
        assert torch.equal(masks.masks[name], mod.weight_mask.bool())
        assert torch.equal(plain.state_dict()[name], mod.weight)  # orig * mask
    # torch's own removal of the reparametrisation gives the same tensors
    tprune.remove(pruned[0], "weight")
    tprune.remove(pruned[4], "weight")
    for k, v in pruned.state_dict().items():
        assert torch.equal(plain.state_dict()[k], v), k
    assert masks.pruned == 18 + round(0.7 * 1440)


def test_torch_global_unstructured_and_back_through_to_torch_prune():
    model = _model()
    tprune.global_unstructured([(model[0], "weight"), (model[4], "weight")], pruning_method=tprune.L1Unstructured,
                               amount=0.6)
    plain = _model(seed=3)
    masks = load_pruned_state_dict(plain, model.state_dict())
    ours = make_masks(_model(), 0.6)  # global magnitude over the same two weights: the same set of weights
    assert masks.pruned == ours.pruned
    for k in masks.masks:  # no ties among random weights: the very same weights
        assert torch.equal(masks.masks[k], ours.masks[k]), k
    # ours -> torch's form -> ours again
    again_model = to_torch_prune(plain, masks)
    assert hasattr(again_model[0], "weight_orig")
    back = _model(seed=4)
    back_masks = load_pruned_state_dict(back, again_model.state_dict())
    for k in masks.masks:
        assert torch.equal(back_masks.masks[k], masks.masks[k])
        assert torch.equal(back.state_dict()[k], model.state_dict()[k.replace("weight", "weight_orig")]
                           * model.state_dict()[k.replace("weight", "weight_mask")])


def test_plain_state_dict_zeros_are_the_mask():
    model = _model()
    masks = make_masks(model, 0.8)
    masks.bind(model).apply()
    plain, found = masks_from_state_dict(model.state_dict())
    assert set(found.masks) == {"0.weight", "4.weight"}  # not batch-norm weights, not biases
    for k in masks.masks:
        assert torch.equal(found.masks[k], masks.masks[k])
    other = _model(seed=2)
    loaded = load_pruned_state_dict(other, model.state_dict())
    assert loaded.pruned == masks.pruned


def test_masks_survive_save_and_load(tmp_path):
    model = _model()
    masks = make_masks(model, 0.7)
    masks.bind(model).apply()
    with torch.no_grad():  # a kept weight that happens to be exactly zero: only the saved mask knows it is kept
        kept = masks.masks["4.weight"].nonzero()[0]
        model[4].weight[tuple(kept)] = 0.0
    path = tmp_path / "pruned.safetensors"
    save_pruned(path, model, masks, metadata={"rate": "0.7"})
    other = _model(seed=5)
    loaded = load_pruned(path, other)
    for k in masks.masks:
        assert torch.equal(loaded.masks[k], masks.masks[k])
    for k, v in model.state_dict().items():
        assert torch.equal(other.state_dict()[k], v), k
    assert MaskSet.from_zeros(other).pruned == masks.pruned + 1  # zeros alone would be wrong here
    dense_loader = _model(seed=6)
    load_model_state(dense_loader, path)  # the study's loader reads the same file (it skips mask:: keys)
    assert torch.equal(dense_loader[4].weight, model[4].weight)


def test_a_torch_pruned_model_saves_as_plain_weights_plus_masks(tmp_path):
    model = _model()
    tprune.random_unstructured(model[4], "weight", amount=0.5)
    _, masks = masks_from_state_dict(model.state_dict(), prunable=set(prunable_parameters(_model())))
    save_pruned(tmp_path / "m.safetensors", model, masks)
    other = _model(seed=1)
    loaded = load_pruned(tmp_path / "m.safetensors", other)
    assert torch.equal(loaded.masks["4.weight"], model[4].weight_mask.bool())
    assert torch.equal(other[4].weight, model[4].weight)


def test_bad_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_pruned(tmp_path / "missing.safetensors", _model())
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="unreadable"):
        load_pruned(tmp_path / "junk.safetensors", _model())
    model = _model()
    save_pruned(tmp_path / "m.safetensors", model, make_masks(model, 0.5))
    wrong = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, 10))
    with pytest.raises(ValueError, match=r"m\.safetensors.*does not fit"):
        load_pruned(tmp_path / "m.safetensors", wrong)
