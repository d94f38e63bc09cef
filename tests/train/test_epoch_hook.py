"""fit(on_epoch_start=...): called at every epoch start; returning None changes nothing; a mask is held."""

import torch
from torch import nn

from prunefair.data import GroupedData
from prunefair.prune import make_masks
from prunefair.train import TrainSettings, fit


def _setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(24, 5, generator=gen)
    y = torch.randint(0, 3, (24,), generator=gen)
    return model, GroupedData(x, y, y.clone(), ("a", "b", "c"), ("a", "b", "c"))


def test_a_hook_returning_none_leaves_training_bit_identical():
    a, data = _setup()
    b, _ = _setup()
    calls = []
    settings = TrainSettings(epochs=3, batch_size=8, lr=0.1)
    fit(a, data, settings, seed=0)
    hist = fit(b, data, settings, seed=0, on_epoch_start=lambda e, m: calls.append(e))
    assert calls == [0, 1, 2]
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert [r["sparsity"] for r in hist.epochs] == [0.0, 0.0, 0.0]


def test_a_mask_handed_over_mid_training_is_held_to_the_end():
    model, data = _setup()
    masks = {}

    def hook(epoch, m):
        if epoch == 1:
            masks["m"] = make_masks(m, 0.7)
            return masks["m"]
        return None

    hist = fit(model, data, TrainSettings(epochs=3, batch_size=8, lr=0.1, weight_decay=1e-2), seed=0,
               on_epoch_start=hook)
    assert [r["sparsity"] for r in hist.epochs] == [0.0, masks["m"].sparsity, masks["m"].sparsity]
    for name, keep in masks["m"].masks.items():
        assert torch.count_nonzero(model.state_dict()[name][~keep]) == 0
