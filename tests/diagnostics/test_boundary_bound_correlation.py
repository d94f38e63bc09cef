import json
import math

import numpy as np
import pytest
import torch

from prunefair.data import GroupedData
from prunefair.diagnostics import (
    boundary_terms, group_boundary_distance, spearman_across_groups, theorem1_check, theorem1_terms,
)


def test_boundary_terms_match_hand_computations():
    # binary: logits (0, 0) -> f = 0.5, f(1-f) = 1/4 (on the boundary); (0, ln 3) -> f = 3/4, f(1-f) = 3/16
    t = boundary_terms(torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]]), torch.tensor([1, 0]))
    assert t["f_one_minus_f"].tolist() == pytest.approx([0.25, 3 / 16])
    assert t["gini"].tolist() == pytest.approx([0.5, 2 * 3 / 16])  # 1 - sum p^2 = 2 f (1 - f)
    assert t["margin"].tolist() == pytest.approx([0.0, -math.log(3.0)])
    # three classes: p = (1/2, 1/4, 1/4) from logits (ln 2, 0, 0): 1 - sum p^2 = 1 - 6/16
    t = boundary_terms(torch.tensor([[math.log(2.0), 0.0, 0.0], [1.0, 3.0, -2.0]]), torch.tensor([0, 2]))
    assert t["gini"][0].item() == pytest.approx(10 / 16)
    assert math.isnan(t["f_one_minus_f"][0].item())
    assert t["margin"].tolist() == pytest.approx([math.log(2.0), -5.0])


def test_group_boundary_distance_averages_per_group():
    class Fixed(torch.nn.Module):  # logits are the inputs themselves
        def forward(self, x):
            return x

    x = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)], [2.0, 0.0]])
    data = GroupedData(x, torch.tensor([1, 1, 0]), torch.tensor([0, 0, 1]), ("a", "b"), ("g0", "g1"))
    s = group_boundary_distance(Fixed(), data, batch_size=2)
    assert s.count.tolist() == [2, 1]
    assert s.f_one_minus_f[0] == pytest.approx((0.25 + 3 / 16) / 2)
    assert s.margin[0] == pytest.approx(math.log(3.0) / 2) and s.margin[1] == pytest.approx(2.0)


def test_theorem1_terms_and_failures_are_listed():
    first, second, bound = theorem1_terms([0.1, 0.2], [2.0, 4.0], 0.5)
    assert first.tolist() == pytest.approx([0.05, 0.1]) and second.tolist() == pytest.approx([0.25, 0.5])
    check = theorem1_check(group_names=["a", "b"], grad_norm=[0.1, 0.2], hessian_top=[2.0, 4.0],
                           distances={0.5: 0.5, 0.9: 2.0},
                           excess_loss={0.5: np.array([0.2, 0.7]), 0.9: np.array([1.0, 3.0])})
    assert len(check.table) == 4 and not check.holds
    f = check.failures
    assert list(zip(f.rate, f.group)) == [(0.5, "b")]
    assert f.violation.iloc[0] == pytest.approx(0.7 - 0.6)
    assert "0.5" in check.summary() and "by 0.1" in check.summary()
    json.dumps(check.to_dict())
    # a group without samples (R(a) NaN) is not checked: neither a pass nor a failure, here or in the report
    empty = theorem1_check(group_names=["a", "b"], grad_norm=[0.1, 0.2], hessian_top=[2.0, 4.0],
                           distances={0.5: 0.5}, excess_loss={0.5: np.array([0.2, np.nan])})
    assert list(empty.table.group) == ["a"] and empty.unchecked == 1 and empty.holds
    assert "1 pair(s) without data not checked" in empty.summary()


def test_spearman_over_seeds_and_one_seed():
    x = np.array([[1, 2, 3, 4, 5.0], [1, 2, 3, 5, 4.0], [2, 1, 3, 4, 5.0]])
    y = np.array([[10, 20, 30, 40, 50.0]] * 3)
    r = spearman_across_groups(x, y)
    assert r.interval == "seeds-t" and r.n_seeds == 3 and r.n_groups == 5
    assert r.per_seed == pytest.approx((1.0, 0.9, 0.9))
    assert r.rho == pytest.approx(np.mean([1.0, 0.9, 0.9]))
    assert r.low < r.rho < r.high <= 1.0
    # one seed: no interval (a bootstrap over 8 groups gave [-1, -1]); the exact permutation p of a perfect
    # ranking of 8 groups is 2 / 8! (both perfect orders), of 3 groups 2 / 3! = 1/3
    one = spearman_across_groups(np.arange(8.0), -np.arange(8.0) ** 2)
    assert one.rho == pytest.approx(-1.0) and one.interval == "none"
    assert np.isnan(one.low) and np.isnan(one.high)
    assert one.p_value == pytest.approx(2 / math.factorial(8))
    assert spearman_across_groups([1.0, 2, 3], [0.1, 0.2, 0.3]).p_value == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="same shape"):
        spearman_across_groups(np.arange(3.0), np.arange(4.0))


def test_spearman_permutation_p_equals_brute_force_enumeration():
    import itertools

    from scipy import stats as sps

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=6), rng.normal(size=6)
    y[2] = y[4]  # a tie
    obs = sps.spearmanr(x, y).statistic
    null = [sps.spearmanr(x, y[list(o)]).statistic for o in itertools.permutations(range(6))]
    want = np.mean(np.abs(null) >= abs(obs) - 1e-12)
    assert spearman_across_groups(x, y).p_value == pytest.approx(want)
    # two seeds: Monte Carlo over shuffles within each seed against the full enumeration of 4! x 4! orders
    xs, ys = rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    ys[:, 0] += 3 * xs[:, 0]
    got = spearman_across_groups(xs, ys, n_perm=20000, seed=1)
    orders = list(itertools.permutations(range(4)))
    means = [np.mean([sps.spearmanr(xs[0], ys[0][list(a)]).statistic, sps.spearmanr(xs[1], ys[1][list(b)]).statistic])
             for a in orders for b in orders]
    exact = np.mean(np.abs(means) >= abs(got.rho) - 1e-12)
    assert got.p_value == pytest.approx(exact, abs=0.01)


def test_spearman_one_seed_test_keeps_its_level_under_no_association():
    rng = np.random.default_rng(0)
    ps = np.array([spearman_across_groups(rng.normal(size=5), rng.normal(size=5)).p_value for _ in range(300)])
    assert np.mean(ps < 0.05) <= 0.05  # an exact test: at most its level (the bootstrap interval: 11% here)


def test_vectorised_spearman_rows_equal_scipy_one_by_one():
    import numpy as np
    from scipy import stats as sps

    from prunefair.diagnostics.correlation import _spearman_rows

    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, (200, 7)).astype(float)  # many ties
    y = rng.normal(size=(200, 7))
    x[0] = 1.0  # a constant row: no correlation defined
    got = _spearman_rows(x, y)
    assert np.isnan(got[0])
    want = np.array([sps.spearmanr(x[i], y[i]).statistic for i in range(1, 200)])
    np.testing.assert_allclose(got[1:], want, atol=1e-12)


def test_spearman_treats_values_equal_up_to_rounding_as_ties():
    drop = np.array([0.3, 0.29999999999999993, 0.30000000000000004, 0.3, 0.30000000000000004])
    grad = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    r = spearman_across_groups(grad, drop)
    assert math.isnan(r.rho) and math.isnan(r.p_value)
    # partial ties: 0.3 (twice, once off by an ulp), 0.1, 0.5 -> average ranks 2.5, 2.5, 1, 4
    part = spearman_across_groups(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.3, 0.29999999999999993, 0.1, 0.5]))
    exact = float(np.corrcoef([1, 2, 3, 4], [2.5, 2.5, 1, 4])[0, 1])
    assert part.rho == pytest.approx(exact, abs=1e-12) and exact == pytest.approx(0.3162, abs=1e-4)


def test_theorem1_check_with_nothing_checked_does_not_claim_to_hold():
    b = theorem1_check(group_names=["a"], grad_norm=[1.0], hessian_top=[2.0], distances={0.5: 0.1},
                       excess_loss={0.5: np.array([np.nan])})
    assert not b.holds and b.unchecked == 1
    assert "not checked" in b.summary() and "holds" not in b.summary()
