"""Interoperability with torch.nn.utils.prune, plain zeroed state dicts, and our pruned checkpoints."""

from collections import OrderedDict

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


def test_a_mismatch_lists_the_shapes_of_both_sides(tmp_path):
    from prunefair.prune import ArchitectureMismatch

    wide = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    narrow = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))
    with pytest.raises(ArchitectureMismatch) as err:
        load_pruned_state_dict(narrow, wide.state_dict(), source="w.pt")
    msg = str(err.value)
    assert msg.startswith("w.pt: does not fit this architecture")
    assert "5 shape(s) differ: 0.weight: checkpoint (64, 32), model (32, 32); 0.bias: checkpoint (64,), model (32,)" \
        in msg and "(+2 more)" in msg
    assert err.value.shapes["4.weight"] == ((10, 64), (10, 32)) and not err.value.missing
    extra = {**_model().state_dict(), **{f"extra.{i}": torch.zeros(1) for i in range(6)}}
    with pytest.raises(ArchitectureMismatch, match=r"6 tensor\(s\) of the checkpoint not in the model: extra\.0, "
                                                   r"extra\.1, extra\.2, extra\.3 \(\+2 more\)"):
        load_pruned_state_dict(_model(), extra)


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module.model."])
def test_a_prefix_shared_by_every_key_is_stripped_with_a_warning(tmp_path, caplog, prefix):
    pruned = _model()
    tprune.l1_unstructured(pruned[4], "weight", amount=0.5)  # torch form: weight_orig / weight_mask keys
    state = {prefix + k: v for k, v in pruned.state_dict().items()}
    other = _model(seed=2)
    with caplog.at_level("WARNING", logger="prunefair.prune"):
        masks = load_pruned_state_dict(other, state, source="dp.pt")
    assert f"dp.pt: every key starts with {prefix!r}" in caplog.text
    assert torch.equal(masks.masks["4.weight"], pruned[4].weight_mask.bool())
    assert torch.equal(other[4].weight, pruned[4].weight)
    ours = _model()
    m = make_masks(ours, 0.5)
    save_pruned(tmp_path / "ours.safetensors", ours, m)
    from safetensors.torch import load_file, save_file

    save_file({(f"mask::{prefix}{k[6:]}" if k.startswith("mask::") else prefix + k): v
               for k, v in load_file(tmp_path / "ours.safetensors").items()}, tmp_path / "dp.safetensors")
    again = load_pruned(tmp_path / "dp.safetensors", _model(seed=4))
    assert all(torch.equal(again.masks[k], m.masks[k]) for k in m.masks)
    plain = _model(seed=5)
    load_model_state(plain, tmp_path / "dp.safetensors")  # the study's dense loader strips it too
    assert torch.equal(plain[0].weight, ours[0].weight)


def test_a_prefix_is_kept_when_stripping_does_not_make_it_fit():
    state = {"module." + k: v for k, v in _model().state_dict().items()}
    wrong = nn.Sequential(OrderedDict(fc=nn.Linear(3, 3)))
    with pytest.raises(ValueError, match=r"not in the model: module\.0\.bias"):
        load_pruned_state_dict(wrong, state)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_weights_are_refused_naming_the_file_and_the_tensor(tmp_path, bad):
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in _model().state_dict().items()}
    state["4.weight"][3, 7] = bad
    save_file(state, tmp_path / "nan.safetensors")
    msg = r"nan\.safetensors: tensor 4\.weight holds 1 NaN/inf value\(s\); the checkpoint is damaged or the model " \
          r"diverged"
    with pytest.raises(ValueError, match=msg):  # audit and diagnose
        load_pruned(tmp_path / "nan.safetensors", _model())
    with pytest.raises(ValueError, match=r"nan\.safetensors: checkpoint tensor 4\.weight holds 1 NaN/inf"):
        load_model_state(_model(), tmp_path / "nan.safetensors")  # study resumes
    state = _model().state_dict()
    state["1.running_var"] = torch.full((4,), float("nan"))  # a buffer the model builds finite
    with pytest.raises(ValueError, match=r"bn\.pt: tensor 1\.running_var holds 4 NaN/inf"):
        load_pruned_state_dict(_model(), state, source="bn.pt")


def test_integer_tensors_for_float_parameters_are_refused_but_masks_and_int_buffers_load(tmp_path):
    from safetensors.torch import save_file

    model = _model()
    state = {k: (v.to(torch.int64) if k == "0.weight" else v) for k, v in model.state_dict().items()}
    save_file(state, tmp_path / "int.safetensors")
    with pytest.raises(ValueError, match=r"int\.safetensors: tensor 0\.weight is int64, the model's parameter is "
                                         r"float32"):
        load_pruned(tmp_path / "int.safetensors", _model())
    with pytest.raises(ValueError, match=r"int\.safetensors: checkpoint tensor 0\.weight is int64"):
        load_model_state(_model(), tmp_path / "int.safetensors")
    state = model.state_dict()
    state["1.running_mean"] = torch.zeros(4, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"tensor 1\.running_mean is bool, the model's buffer is float32"):
        load_pruned_state_dict(_model(), state, source="b.pt")
    # what must still load: our uint8 masks, torch's float masks, BatchNorm's int64 num_batches_tracked, a
    # float64 checkpoint (cast to the model's float32), and a buffer the model itself builds with -inf
    masks = make_masks(model, 0.5)
    masks.bind(model).apply()
    model[1].num_batches_tracked.fill_(7)
    save_pruned(tmp_path / "ok.safetensors", model, masks)
    other = _model(seed=3)
    got = load_pruned(tmp_path / "ok.safetensors", other)
    assert int(other[1].num_batches_tracked) == 7 and got.sparsity == pytest.approx(masks.sparsity)
    load_model_state(_model(seed=4), tmp_path / "ok.safetensors")
    tprune.l1_unstructured(model[4], "weight", amount=0.3)
    load_pruned_state_dict(_model(seed=5), model.state_dict(), source="torch.pt")
    wide = _model(seed=6)
    load_pruned_state_dict(wide, {k: v.double() if v.is_floating_point() else v
                                  for k, v in _model().state_dict().items()}, source="f64.pt")
    assert wide[0].weight.dtype == torch.float32

    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.register_buffer("causal", torch.full((3, 3), float("-inf")).triu(1))

    load_pruned_state_dict(Masked(), Masked().state_dict(), source="masked.pt")


def test_float8_weights_load_and_are_checked_in_one_pass(tmp_path):
    """float8_e4m3fn has no isfinite kernel on the CPU: the check casts 1-byte floats (the load failed with torch's
    '"isfinite" not implemented for Float8_e4m3fn')."""
    model = _model()
    state = {k: (v.to(torch.float8_e4m3fn) if k == "0.weight" else v) for k, v in model.state_dict().items()}
    other = _model(seed=3)
    load_pruned_state_dict(other, state, source="f8.pt")
    torch.testing.assert_close(other[0].weight, state["0.weight"].float())
    state["0.weight"] = state["0.weight"].float()
    state["0.weight"].view(-1)[0] = float("nan")
    with pytest.raises(ValueError, match=r"tensor 0\.weight holds 1 NaN/inf value"):
        load_pruned_state_dict(_model(), state, source="nan.pt")
