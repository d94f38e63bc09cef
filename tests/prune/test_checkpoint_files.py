"""Checkpoint files: safetensors and torch.save state dicts, told apart by content; no arbitrary unpickling."""

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from prunefair.prune import load_checkpoint, load_pruned


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def _same(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_torch_save_state_dicts_load_whatever_their_extension(tmp_path):
    sd = _model().state_dict()
    for name in ("m.pt", "m.pth", "m.bin", "m.safetensors"):  # the content decides, not the name
        torch.save(sd, tmp_path / name)
        assert _same(load_checkpoint(tmp_path / name), sd), name
    save_file(sd, tmp_path / "st.pt")  # a safetensors file named .pt
    assert _same(load_checkpoint(tmp_path / "st.pt"), sd)
    torch.save(sd, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)  # the pre-1.6 pickle format
    assert _same(load_checkpoint(tmp_path / "legacy.pt"), sd)


@pytest.mark.parametrize("key", ["state_dict", "model_state_dict", "model"])
def test_common_wrappers_are_unwrapped(tmp_path, key):
    sd = _model().state_dict()
    torch.save({key: sd, "epoch": 5, "optimizer": {"lr": 0.1}}, tmp_path / "ck.pt")
    assert _same(load_checkpoint(tmp_path / "ck.pt"), sd)


def test_a_whole_pickled_module_is_refused_with_the_advice(tmp_path):
    torch.save(_model(), tmp_path / "whole.pt")
    with pytest.raises(ValueError, match=r"whole\.pt: holds a torch\.nn\.modules.*model\.state_dict\(\)"):
        load_checkpoint(tmp_path / "whole.pt")


class _Trap:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):  # unpickling this would create a file: code run by loading
        return (open, (str(self.path), "w"))


def test_loading_never_runs_pickled_code(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"w": torch.zeros(2), "trap": _Trap(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match=r"evil\.pt: holds"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


def test_other_contents_are_clear_errors(tmp_path):
    torch.save({"w": torch.zeros(2), "epoch": 3}, tmp_path / "mixed.pt")
    with pytest.raises(ValueError, match=r"mixed\.pt: a dict of tensors mixed with other entries \(epoch\)"):
        load_checkpoint(tmp_path / "mixed.pt")
    torch.save({"epoch": 3, "weights": {"a": 1}}, tmp_path / "nodict.pt")
    with pytest.raises(ValueError, match=r"nodict\.pt: a dict with keys epoch, weights but no state dict"):
        load_checkpoint(tmp_path / "nodict.pt")
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match=r"list\.pt: holds a list, not a state dict"):
        load_checkpoint(tmp_path / "list.pt")
    torch.save(_model().state_dict(), tmp_path / "cut.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "cut.pt").read_bytes()[:200])
    with pytest.raises(ValueError, match=r"cut\.pt: unreadable torch\.save checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")
    (tmp_path / "text.pt").write_text("hello, I am not a checkpoint")
    with pytest.raises(ValueError, match=r"text\.pt: unreadable checkpoint: neither safetensors nor a torch\.save"):
        load_checkpoint(tmp_path / "text.pt")


def test_pruned_models_saved_with_torch_save_are_audited_like_safetensors(tmp_path):
    from torch.nn.utils import prune as tprune

    pruned = _model()
    tprune.l1_unstructured(pruned[0], "weight", amount=0.5)
    torch.save({"model_state_dict": pruned.state_dict()}, tmp_path / "p.pth")
    other = _model(seed=3)
    masks = load_pruned(tmp_path / "p.pth", other)
    assert torch.equal(masks.masks["0.weight"], pruned[0].weight_mask.bool())
    assert torch.equal(other[0].weight, pruned[0].weight)


def test_a_folder_or_an_empty_dict_is_named_for_what_it_is(tmp_path):
    (tmp_path / "ck").mkdir()
    with pytest.raises(FileNotFoundError, match=r"ck: is a folder, not a checkpoint file"):
        load_checkpoint(tmp_path / "ck")
    with pytest.raises(FileNotFoundError, match=r"missing\.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({}, tmp_path / "emptydict.pt")
    with pytest.raises(ValueError, match=r"emptydict\.pt: an empty dict, no tensors; save the weights"):
        load_checkpoint(tmp_path / "emptydict.pt")
