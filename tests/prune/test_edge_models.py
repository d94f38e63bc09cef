"""Models at the edges of what pruning expects: a classifier tied to an earlier layer, no conv/linear layer at all, an
empty layer, a previous mask of another model, a model still in torch.nn.utils.prune form."""

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as tprune

from prunefair.data import GroupedData
from prunefair.prune import last_linear, make_masks, prunable_parameters
from prunefair.train import TrainSettings, fit


class _TiedHead(nn.Module):
    """The classifier (the last nn.Linear) shares its weight with an earlier square layer."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(4, 6)
        self.a = nn.Linear(6, 6)
        self.mid = nn.Linear(6, 6)
        self.head = nn.Linear(6, 6)
        self.head.weight = self.a.weight

    def forward(self, x):
        return self.head(torch.relu(self.mid(torch.relu(self.a(torch.relu(self.first(x)))))))


def test_a_classifier_tied_to_an_earlier_layer_is_named_once_and_kept_dense():
    torch.manual_seed(0)
    model = _TiedHead()
    assert last_linear(model) == "a.weight" and "a.weight" in prunable_parameters(model)
    masks = make_masks(model, 0.5, keep_first_last=True)
    assert masks.layer_sparsity() == {"first.weight": 0.0, "a.weight": 0.0, "mid.weight": 0.5}
    structured = make_masks(model, 0.5, criterion="structured", scope="layer")
    assert structured.layer_sparsity()["a.weight"] == 0.0  # the classifier is never pruned by channel


class _NoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 3))

    def forward(self, x):
        return x @ self.w


@pytest.mark.parametrize("criterion", ["magnitude", "random"])
@pytest.mark.parametrize("scope", ["global", "layer"])
def test_a_model_without_conv_or_linear_layers_is_refused_not_reported_dense(criterion, scope):
    with pytest.raises(ValueError, match="no conv or linear layer.*0.9"):
        make_masks(_NoLayers(), 0.9, criterion=criterion, scope=scope)
    assert make_masks(_NoLayers(), 0.0).total == 0  # rate 0 asks for nothing


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_an_empty_layer_has_sparsity_zero_not_a_division_error():
    model = nn.Sequential(nn.Linear(4, 0), nn.Linear(0, 3), nn.Linear(3, 3))
    for scope in ("global", "layer"):
        masks = make_masks(model, 0.5, scope=scope)
        layers = masks.layer_sparsity()
        assert layers["0.weight"] == 0.0 and layers["1.weight"] == 0.0
        assert masks.pruned == round(0.5 * 9) or scope == "layer"


def test_a_previous_mask_of_another_model_is_refused_naming_the_layer():
    previous = make_masks(nn.Linear(4, 4), 0.3)
    with pytest.raises(ValueError, match=r"previous mask of weight has shape \(4, 4\), the layer \(3, 3\)"):
        make_masks(nn.Linear(3, 3), 0.5, previous=previous)
    with pytest.raises(ValueError, match="previous mask names layers this model does not have.*'weight'"):
        make_masks(nn.Sequential(nn.Linear(3, 3)), 0.5, previous=make_masks(nn.Linear(3, 3), 0.3))
    def conv(channels):
        return nn.Sequential(nn.Conv2d(2, channels, 3), nn.Flatten(), nn.Linear(channels, 3))

    with pytest.raises(ValueError, match=r"previous mask of 0.weight has shape \(5, 2, 3, 3\), the layer \(4, 2, 3, 3\)"):
        make_masks(conv(4), 0.5, criterion="structured", previous=make_masks(conv(5), 0.3))


def test_binding_masks_to_a_model_in_torch_prune_form_says_how_to_load_it():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    tprune.l1_unstructured(model[0], "weight", amount=0.5)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 4, generator=gen), torch.randint(0, 3, (8,), generator=gen)
    data = GroupedData(x, y, y.clone(), ("a", "b", "c"), ("a", "b", "c"))
    with pytest.raises(KeyError, match="torch.nn.utils.prune form.*0.weight_orig.*load_pruned_state_dict"):
        fit(model, data, TrainSettings(epochs=1, batch_size=4), seed=0, masks=make_masks(model, 0.7))


@pytest.mark.parametrize("criterion", ["magnitude", "structured"])
def test_global_pruning_that_empties_a_layer_names_it_in_a_warning(caplog, criterion):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(100, 50), nn.ReLU(), nn.Linear(50, 20), nn.ReLU(), nn.Linear(20, 3))
    with torch.no_grad():
        model[2].weight.mul_(1e-3)  # the smallest weights, globally
    with caplog.at_level("WARNING", logger="prunefair.prune"):
        masks = make_masks(model, 0.5, criterion=criterion)
    assert masks.layer_sparsity()["2.weight"] == 1.0
    assert "removes every weight of 1 layer(s): 2.weight" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="prunefair.prune"):
        make_masks(model, 0.1, criterion=criterion)
    assert caplog.text == ""
