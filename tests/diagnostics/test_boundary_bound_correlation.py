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


def test_spearman_over_seeds_and_bootstrap():
    x = np.array([[1, 2, 3, 4, 5.0], [1, 2, 3, 5, 4.0], [2, 1, 3, 4, 5.0]])
    y = np.array([[10, 20, 30, 40, 50.0]] * 3)
    r = spearman_across_groups(x, y)
    assert r.interval == "seeds-t" and r.n_seeds == 3 and r.n_groups == 5
    assert r.per_seed == pytest.approx((1.0, 0.9, 0.9))
    assert r.rho == pytest.approx(np.mean([1.0, 0.9, 0.9]))
    assert r.low < r.rho < r.high <= 1.0
    one = spearman_across_groups(np.arange(8.0), -np.arange(8.0) ** 2)
    assert one.rho == pytest.approx(-1.0) and one.interval == "bootstrap-groups"
    assert one.low == pytest.approx(-1.0) and one.high == pytest.approx(-1.0)
    noisy = spearman_across_groups(np.random.default_rng(0).normal(size=10), np.arange(10.0), seed=1)
    assert noisy.low < noisy.rho < noisy.high
    with pytest.raises(ValueError, match="same shape"):
        spearman_across_groups(np.arange(3.0), np.arange(4.0))


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
