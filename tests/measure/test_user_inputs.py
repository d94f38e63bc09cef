"""The measure API as a notebook user calls it: bad inputs are clear errors, NaN is never counted or left out
silently, and lists work where arrays do."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from prunefair.data import GroupedData, load_dataset
from prunefair.measure import (
    GroupStats, accuracy_drop, accuracy_gap, evaluate_groups, excess_accuracy_gap, excess_loss,
    excess_loss_disparity, normalized_accuracy, pairwise_excess_accuracy_gap, pruning_impact,
)

NAMES = ("a", "b", "c")


def _data(x=None):
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(30) % 3
    x = torch.randn(30, 4, generator=gen) if x is None else x
    return GroupedData(x, y, y.clone(), NAMES, NAMES)


def _model():
    torch.manual_seed(0)
    return nn.Linear(4, 3)


def test_a_sample_with_nan_logits_counts_as_wrong_not_as_class_0():
    """torch's argmax ranks NaN highest: a NaN input of class 0 once counted as a correct prediction."""
    data = _data()
    x = data.x.clone()
    x[0] = math.nan  # sample 0: class 0, group 'a'
    stats = evaluate_groups(_model(), _data(x))
    clean = evaluate_groups(_model(), data.subset(range(1, 30)))
    assert stats.count[0] == 10 and stats.correct[0] == clean.correct[0]  # the NaN sample is wrong
    assert math.isnan(stats.loss[0]) and np.isfinite(stats.loss[1:]).all()
    overflow = _model()
    with torch.no_grad():
        overflow.weight.fill_(1e38)
        overflow.bias.fill_(0.0)
    x = torch.ones(30, 4) * torch.where(torch.arange(30) % 2 == 0, 10.0, -10.0)[:, None]
    stats = evaluate_groups(overflow, _data(x))  # logits all +inf or all -inf: NaN losses; argmax's tie is class 0
    assert stats.correct.tolist() == [0, 0, 0] and np.isnan(stats.loss).all()  # was [10, 0, 0]: all of 'a' right


def test_a_nan_loss_makes_xi_nan_with_a_warning_instead_of_leaving_the_group_out():
    """xi once ignored a group whose loss was NaN (np.nanmax), reporting the spread of the other groups."""
    dense = GroupStats(NAMES, np.array([10, 10, 10]), np.array([9, 8, 7]), np.array([1.0, 2.0, 3.0]))
    pruned = GroupStats(NAMES, np.array([10, 10, 10]), np.array([5, 8, 7]), np.array([math.nan, 3.0, 3.5]))
    with pytest.warns(RuntimeWarning, match=r"pruned model's mean loss is not finite on group\(s\) 'a'"):
        imp = pruning_impact(dense, pruned)
    assert math.isnan(imp.measures["xi"]) and math.isnan(imp.difference("excess_loss"))
    assert imp.measures["max_psi"] == pytest.approx(0.4 - 0.4 / 3)  # the accuracy measures stand
    assert imp.measures["accuracy_gap_pruned"] == pytest.approx(0.3)


def test_empty_groups_are_left_out_of_every_measure_and_of_difference():
    dense = GroupStats(NAMES, np.array([10, 0, 10]), np.array([9, 0, 7]), np.array([1.0, 0.0, 3.0]))
    pruned = GroupStats(NAMES, np.array([10, 0, 10]), np.array([5, 0, 7]), np.array([7.0, 0.0, 3.0]))
    imp = pruning_impact(dense, pruned)
    assert imp.measures["xi"] == pytest.approx(0.6) == imp.difference("excess_loss")  # R = 0.6, NaN, 0
    assert imp.measures["accuracy_gap_dense"] == pytest.approx(0.2) == imp.difference("acc_dense")
    assert imp.measures["psi_pw"] == pytest.approx(0.4) == imp.difference("psi")


def test_group_stats_take_lists_and_check_their_values():
    s = GroupStats(["a", "b"], [10, 10], [5, 6], [1.0, 2.0])  # lists: overall_accuracy once failed on list.sum
    assert s.overall_accuracy == pytest.approx(0.55) and s.group_names == ("a", "b")
    assert s.count.dtype == np.int64 and s.loss_sum.dtype == np.float64
    with pytest.raises(ValueError, match=r"count has shape \(2,\); one value per group is \(3,\)"):
        GroupStats(NAMES, [10, 10], [5, 6], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"group 'a' has 15 correct of 10 samples"):
        GroupStats(("a", "b"), [10, 10], [15, 6], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"count of group 'a' is -1; counts are whole numbers >= 0"):
        GroupStats(("a", "b"), [-1, 10], [0, 6], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"correct of group 'b' is 2.5"):
        GroupStats(("a", "b"), [10, 10], [0, 2.5], [1.0, 2.0])
    with pytest.raises(TypeError, match="group_names is a sequence of names"):
        GroupStats("ab", [10, 10], [5, 6], [1.0, 2.0])
    with pytest.raises(TypeError, match="GroupStats of evaluate_groups"):
        pruning_impact(s, [1, 2])


def test_evaluate_groups_refuses_bad_arguments_by_name():
    data, model = _data(), _model()
    for bad in (0, -1, 2.5, True):  # -1 once gave all-zero counts (no batch at all), silently
        with pytest.raises(ValueError, match=rf"batch_size = {bad!r}: a whole number >= 1"):
            evaluate_groups(model, data, batch_size=bad)
    assert evaluate_groups(model, data, batch_size=np.int64(7)).count.sum() == 30
    with pytest.raises(TypeError, match=r"data is a DatasetSplits; pass one split's GroupedData, e.g. splits.test"):
        evaluate_groups(model, load_dataset("digits"))
    with pytest.raises(TypeError, match="model is a torch nn.Module"):
        evaluate_groups(None, data)
    with pytest.raises(TypeError):
        evaluate_groups(model, data, 8)  # keyword-only, as documented
    with pytest.raises(ValueError, match=r"the model returned 2 logits per sample but the data has 3 classes "
                                         r"\(a, b, c\)"):
        evaluate_groups(nn.Linear(4, 2), data)
    with pytest.raises(ValueError, match=r"the model is on cpu but device = 'cuda'"):
        evaluate_groups(model, data, device="cuda")  # before any CUDA call: needs no GPU


def test_disparity_functions_refuse_mismatched_or_shapeless_input():
    with pytest.raises(ValueError, match=r"dense_acc has 2 group\(s\) but pruned_acc has 1"):
        accuracy_drop([0.9, 0.8], [0.5])  # once broadcast to [0.4, 0.3]
    with pytest.raises(ValueError, match=r"dense_loss has 2 group\(s\) but pruned_loss has 1"):
        excess_loss([0.9, 0.8], [0.5])
    with pytest.raises(ValueError, match=r"dense_acc has 2 group\(s\) but pruned_acc has 3"):
        normalized_accuracy([0.9, 0.8], [0.5, 0.4, 0.3])
    with pytest.raises(ValueError, match=r"acc: one number per group \(a 1-d sequence\), got shape \(2, 2\)"):
        accuracy_gap([[0.1, 0.2], [0.3, 0.9]])  # once the spread of all four numbers
    with pytest.raises(ValueError, match="r: no group given"):
        excess_loss_disparity([])
    with pytest.raises(TypeError, match="psi: one number per group"):
        pairwise_excess_accuracy_gap(["x", "y"])
    with pytest.raises(ValueError, match=r"delta: the overall accuracy drop, one number"):
        excess_accuracy_gap([0.1, 0.2], [0.1, 0.2])
    assert math.isnan(accuracy_gap([math.nan, math.nan]))
    np.testing.assert_allclose(excess_accuracy_gap([0.1, 0.3], 0.2), [-0.1, 0.1])


def test_bf16_and_fp16_models_are_measured_from_their_own_logits():
    data = _data()
    for dtype in (torch.bfloat16, torch.float16):
        model = _model().to(dtype)
        stats = evaluate_groups(model, data, batch_size=7)
        with torch.no_grad():
            logits = model(data.x.to(dtype)).float()
        loss = nn.functional.cross_entropy(logits, data.y, reduction="none").double()
        for a in range(3):
            sel = data.g == a
            assert stats.correct[a] == int((logits[sel].argmax(1) == data.y[sel]).sum()), dtype
            assert stats.loss_sum[a] == pytest.approx(float(loss[sel].sum()), rel=1e-6), dtype
