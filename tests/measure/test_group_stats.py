import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunefair.data import GroupedData
from prunefair.measure import (
    GroupStats, accuracy_gap, evaluate_groups, excess_loss, pairwise_excess_accuracy_gap, pruning_impact,
)


def _random_data(n=257, groups=5, classes=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen)
    y = torch.randint(0, classes, (n,), generator=gen)
    g = torch.randint(0, groups - 1, (n,), generator=gen)  # the last group is empty on purpose
    return GroupedData(x, y, g, tuple(map(str, range(classes))), tuple(f"g{i}" for i in range(groups)))


def test_evaluate_groups_matches_brute_force_loop():
    data = _random_data()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    stats = evaluate_groups(model, data, batch_size=50)  # batches that split groups unevenly
    for a in range(data.num_groups):
        count = correct = 0
        loss = 0.0
        for i in range(len(data)):  # one sample at a time
            if int(data.g[i]) != a:
                continue
            logits = model(data.x[i : i + 1])
            count += 1
            correct += int(logits.argmax(1).item() == int(data.y[i]))
            loss += F.cross_entropy(logits, data.y[i : i + 1]).item()
        assert stats.count[a] == count
        assert stats.correct[a] == correct
        if count:
            assert stats.accuracy[a] == pytest.approx(correct / count)
            assert stats.loss[a] == pytest.approx(loss / count, rel=1e-6)
        else:
            assert math.isnan(stats.accuracy[a]) and math.isnan(stats.loss[a])
    assert stats.count.sum() == len(data)


def test_stats_add_equals_whole():
    data = _random_data(n=300)
    model = nn.Linear(4, 3)
    whole = evaluate_groups(model, data)
    a = evaluate_groups(model, data.subset(range(0, 120)))
    b = evaluate_groups(model, data.subset(range(120, 300)))
    both = a + b
    np.testing.assert_array_equal(both.count, whole.count)
    np.testing.assert_array_equal(both.correct, whole.correct)
    np.testing.assert_allclose(both.loss_sum, whole.loss_sum, rtol=1e-12)
    assert GroupStats.from_dict(whole.to_dict()).correct.tolist() == whole.correct.tolist()


def test_disparity_measures_by_hand():
    names = ("a", "b", "c")
    dense = GroupStats(names, np.array([10, 20, 10]), np.array([9, 18, 5]), np.array([1.0, 4.0, 6.0]))
    pruned = GroupStats(names, np.array([10, 20, 10]), np.array([8, 18, 2]), np.array([2.0, 4.0, 12.0]))
    imp = pruning_impact(dense, pruned)
    # acc dense .9 .9 .5 (overall 32/40 = .8); pruned .8 .9 .2 (overall 28/40 = .7)
    np.testing.assert_allclose(imp.by_group.accuracy_drop, [0.1, 0.0, 0.3], atol=1e-12)
    np.testing.assert_allclose(imp.by_group.psi, [0.0, -0.1, 0.2], atol=1e-12)
    np.testing.assert_allclose(imp.by_group.excess_loss, [0.1, 0.0, 0.6], atol=1e-12)
    m = imp.measures
    assert m["accuracy_drop"] == pytest.approx(0.1)
    assert m["max_psi"] == pytest.approx(0.2)
    assert m["psi_pw"] == pytest.approx(0.3)
    assert m["xi"] == pytest.approx(0.6)
    assert m["accuracy_gap_dense"] == pytest.approx(0.4)
    assert m["accuracy_gap_pruned"] == pytest.approx(0.7)
    assert imp.difference("acc_pruned") == pytest.approx(0.7)
    np.testing.assert_allclose(imp.by_group.normalized_accuracy, [0.8 / 0.9, 1.0, 0.4])


def test_measures_ignore_empty_groups():
    assert accuracy_gap(np.array([0.5, np.nan, 0.9])) == pytest.approx(0.4)
    assert pairwise_excess_accuracy_gap(np.array([0.1, np.nan, -0.1])) == pytest.approx(0.2)
    np.testing.assert_allclose(excess_loss([1.0, 2.0], [1.5, 1.0]), [0.5, -1.0])


def test_equal_drops_are_equal_floats_and_an_empty_split_is_not_zero():
    # every group loses exactly 3 of 10: acc_dense - acc_pruned would give 0.3 +- 1 ulp (0.29999999999999993,
    # 0.30000000000000004), which ranks a constant series and makes Psi_PW 1e-16 instead of 0
    names = tuple("abcde")
    n = np.full(5, 10)
    dense = GroupStats(names, n, np.array([7, 9, 10, 5, 8]), np.ones(5))
    pruned = GroupStats(names, n, np.array([4, 6, 7, 2, 5]), np.ones(5))
    imp = pruning_impact(dense, pruned)
    assert len(set(imp.by_group.accuracy_drop)) == 1 and imp.by_group.accuracy_drop[0] == 0.3
    assert imp.measures["psi_pw"] == 0.0 and imp.measures["max_psi"] == 0.0
    assert imp.measures["accuracy_drop"] == 0.3
    empty = GroupStats(names, np.zeros(5, int), np.zeros(5, int), np.zeros(5))
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        none = pruning_impact(empty, empty)
    for key in ("acc_dense", "acc_pruned", "loss_dense", "loss_pruned", "accuracy_drop"):
        assert math.isnan(none.measures[key]), key
    assert empty.to_dict()["overall_accuracy"] is None
