"""Scopes and criteria against brute-force references on tiny models; edge rates; the protocol options."""

import math

import pytest
import torch
from torch import nn

from prunefair.models import build_model, model_names
from prunefair.prune import (
    LayerRemovalError, MaskSet, filter_norms, first_prunable, last_linear, make_masks, prunable_parameters,
)


def _tiny(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 3, 3), nn.ReLU(),
                         nn.Flatten(), nn.Linear(3 * 2 * 2, 6), nn.ReLU(), nn.Linear(6, 5))


def _brute_unstructured(model, rate, scope, dense=()):
    """Python loops: sort (|w|, position) ascending, remove the first round(rate * n)."""
    params = {k: p.detach().flatten().tolist() for k, p in prunable_parameters(model).items()}
    keep = {k: [True] * len(v) for k, v in params.items()}
    groups = [[k] for k in params if k not in dense] if scope == "layer" else [[k for k in params if k not in dense]]
    for names in groups:
        items = [(abs(w), pos, k, i) for pos, (k, i, w) in
                 enumerate((k, i, w) for k in names for i, w in enumerate(params[k]))]
        items.sort(key=lambda t: (t[0], t[1]))
        for _, _, k, i in items[: int(round(rate * len(items)))]:
            keep[k][i] = False
    return keep


def _flat(masks: MaskSet):
    return {k: m.flatten().tolist() for k, m in masks.masks.items()}


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("rate", [0.0, 0.3, 0.5, 0.8])
@pytest.mark.parametrize("keep_first_last", [False, True])
def test_magnitude_matches_brute_force(scope, rate, keep_first_last):
    model = _tiny()
    dense = {first_prunable(model), last_linear(model)} if keep_first_last else set()
    masks = make_masks(model, rate, scope=scope, keep_first_last=keep_first_last)
    assert _flat(masks) == _brute_unstructured(model, rate, scope, dense)
    for name in dense:
        assert bool(masks.masks[name].all())


def test_magnitude_ties_are_broken_by_position():
    model = nn.Sequential(nn.Linear(4, 4, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    masks = make_masks(model, 0.25)
    assert masks.masks["0.weight"].flatten().tolist() == [False] * 4 + [True] * 12


def _brute_channels(model, rate, scope, dense):
    """Python loops over filters: L2 norms, sorted by (norm, index); layer scope removes round(rate * C) per layer;
    global scope the prefix whose weight count is nearest the target."""
    params = {k: p.detach() for k, p in prunable_parameters(model).items()}
    keep = {k: [True] * p.shape[0] for k, p in params.items()}
    chans = []
    for k, p in params.items():
        if k in dense:
            continue
        for c in range(p.shape[0]):
            norm = math.sqrt(sum(float(w) ** 2 for w in p[c].flatten()))
            chans.append((norm, len(chans), k, c, p[c].numel()))
    if scope == "layer":
        for k in {t[2] for t in chans}:
            mine = sorted([t for t in chans if t[2] == k], key=lambda t: (t[0], t[1]))
            for t in mine[: int(round(rate * len(mine)))]:
                keep[k][t[3]] = False
    else:
        chans.sort(key=lambda t: (t[0], t[1]))
        target = int(round(rate * sum(t[4] for t in chans)))
        best, best_err, cum = 0, abs(target), 0
        for i, t in enumerate(chans):
            cum += t[4]
            if abs(cum - target) < best_err:
                best, best_err = i + 1, abs(cum - target)
        for t in chans[:best]:
            keep[t[2]][t[3]] = False
    return keep


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 0.7])
def test_structured_matches_brute_force_and_zeroes_whole_channels(scope, rate):
    model = _tiny(1)
    masks = make_masks(model, rate, scope=scope, criterion="structured")
    ref = _brute_channels(model, rate, scope, {last_linear(model)})
    for k, m in masks.masks.items():
        rows = m.reshape(m.shape[0], -1)
        assert bool((rows.all(1) | (~rows).all(1)).all()), f"{k}: a channel is partly pruned"
        assert rows.all(1).tolist() == ref[k], k
    assert bool(masks.masks[last_linear(model)].all())  # the classifier keeps every class
    masks.bind(model).apply()
    out = model(torch.randn(3, 2, 6, 6))  # still runs, same shape
    assert out.shape == (3, 5)


def test_filter_norms_are_l2_of_each_output_channel():
    model = _tiny()
    w = model[0].weight.detach()
    ref = torch.tensor([math.sqrt(sum(float(v) ** 2 for v in w[c].flatten())) for c in range(w.shape[0])],
                       dtype=torch.float64)
    assert torch.allclose(filter_norms(model)["0.weight"], ref)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_random_prunes_exact_counts_independently_of_the_weights(scope):
    a, b = _tiny(0), _tiny(5)
    ma = make_masks(a, 0.6, scope=scope, criterion="random", generator=torch.Generator().manual_seed(3))
    mb = make_masks(b, 0.6, scope=scope, criterion="random", generator=torch.Generator().manual_seed(3))
    mc = make_masks(a, 0.6, scope=scope, criterion="random", generator=torch.Generator().manual_seed(4))
    assert _flat(ma) == _flat(mb)  # same seed, different weights: same mask
    assert _flat(ma) != _flat(mc)
    total = sum(m.numel() for m in ma.masks.values())
    assert ma.pruned == round(0.6 * total)
    if scope == "layer":
        for k, m in ma.masks.items():
            assert int((~m).sum()) == round(0.6 * m.numel()), k


def test_random_is_uniform_over_weights():
    """Each weight's pruning frequency over many seeds is close to the rate (binomial bound, 5 sigma)."""
    model = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 4))
    n, rate = 400, 0.3
    freq = torch.zeros(140)
    for s in range(n):
        m = make_masks(model, rate, criterion="random", generator=torch.Generator().manual_seed(s))
        freq += torch.cat([(~v).flatten().float() for v in m.masks.values()])
    freq /= n
    assert float((freq - rate).abs().max()) < 5 * math.sqrt(rate * (1 - rate) / n)
    # and the magnitude criterion would not be: pruning here does not follow |w|
    assert float(freq[:100].mean() - freq[100:].mean()) == pytest.approx(0.0, abs=0.05)


@pytest.mark.parametrize("criterion", ["magnitude", "random", "structured"])
@pytest.mark.parametrize("scope", ["global", "layer"])
def test_rate_zero_gives_the_dense_model_bit_exactly(criterion, scope):
    model = _tiny()
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] = -0.0
        model[0].weight[0, 0, 0, 1] = 1e-38
    before = {k: v.clone() for k, v in model.state_dict().items()}
    masks = make_masks(model, 0.0, scope=scope, criterion=criterion)
    assert masks.pruned == 0
    masks.bind(model).apply()
    for k, v in model.state_dict().items():  # bit patterns, so -0.0 and denormals count too
        bits = (lambda t: t.view(torch.int32)) if v.dtype == torch.float32 else (lambda t: t)
        assert torch.equal(bits(v), bits(before[k])), k


SHAPES = {"mlp": (1, 8, 8), "cnn": (3, 16, 16)}


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("rate", [0.99, 0.999])
@pytest.mark.parametrize("criterion", ["magnitude", "random", "structured"])
def test_extreme_rates_work_on_mlp_and_cnn(name, rate, criterion):
    _check_extreme_rate(name, SHAPES[name], rate, criterion, width=1.0)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in model_names() if n not in SHAPES])
def test_extreme_rates_work_on_the_other_registered_models(name):
    """Every other registered model (resnets, vgg, ...) at width 0.25 to stay quick; the counting is width-free."""
    for rate in (0.99, 0.999):
        for criterion in ("magnitude", "structured"):
            _check_extreme_rate(name, (3, 32, 32), rate, criterion, width=0.25)


def _check_extreme_rate(name, shape, rate, criterion, width):
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, input_shape=shape, width=width)
    masks = make_masks(model, rate, criterion=criterion)
    masks.bind(model).apply()
    total = masks.total
    if criterion == "structured":  # within one channel of the target over the pruned layers
        assert masks.sparsity > rate - 0.05
    else:
        assert abs(masks.pruned - round(rate * total)) == 0
    with torch.no_grad():
        model.eval()
        out = model(torch.randn(2, *shape))
    assert out.shape == (2, 10) and bool(torch.isfinite(out).all())
    # layer-wise: either works or refuses with an error naming the layer; allowed, it always works
    try:
        lm = make_masks(model, rate, scope="layer", criterion=criterion)
        assert all(s < 1.0 for s in lm.layer_sparsity().values())
    except LayerRemovalError as exc:
        assert "layer" in str(exc) and "allow_layer_removal" in str(exc)
        lm = make_masks(model, rate, scope="layer", criterion=criterion, allow_layer_removal=True)
        assert any(s == 1.0 for s in lm.layer_sparsity().values())


def test_layerwise_refuses_to_remove_a_whole_layer_naming_it():
    model = nn.Sequential(nn.Linear(100, 20), nn.ReLU(), nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 1))
    with pytest.raises(LayerRemovalError, match=r"all 20 weights of layer '4\.weight'"):
        make_masks(model, 0.98, scope="layer")  # round(0.98 * 20) = 20
    masks = make_masks(model, 0.98, scope="layer", allow_layer_removal=True)
    assert masks.layer_sparsity()["4.weight"] == 1.0
    assert make_masks(model, 0.98, scope="layer", keep_first_last=True).layer_sparsity()["4.weight"] == 0.0
    make_masks(model, 0.98, scope="global")  # global scope never refuses


def test_bad_arguments_are_refused_by_name():
    model = _tiny()
    with pytest.raises(ValueError, match="criterion"):
        make_masks(model, 0.5, criterion="nope")
    with pytest.raises(ValueError, match="scope"):
        make_masks(model, 0.5, scope="nope", criterion="structured")
    with pytest.raises(ValueError, match="no layer to prune"):
        make_masks(nn.Sequential(nn.Linear(3, 2)), 0.5, keep_first_last=True)
    assert make_masks(model, 0.5, method="magnitude").pruned > 0  # the former keyword still works


def test_previous_mask_is_kept_and_cannot_shrink():
    model = _tiny()
    first = make_masks(model, 0.3, criterion="random", generator=torch.Generator().manual_seed(1))
    second = make_masks(model, 0.6, criterion="random", generator=torch.Generator().manual_seed(2), previous=first)
    for k in first.masks:
        assert not bool((second.masks[k] & ~first.masks[k]).any()), "a pruned weight came back"
    assert second.pruned == round(0.6 * second.total)
    with pytest.raises(ValueError, match="must not decrease"):
        make_masks(model, 0.1, previous=first)


def test_structured_pruning_of_a_model_with_only_a_classifier_is_refused():
    with pytest.raises(ValueError, match="no other conv/linear layer to prune"):
        make_masks(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), 0.9, criterion="structured")
    assert make_masks(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), 0.0, criterion="structured").sparsity == 0.0
