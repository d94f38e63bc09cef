import numpy as np
import pytest
import torch
from torch import nn

from prunefair.diagnostics import full_gradient, group_batches, group_gradient_norms
from tests.diagnostics.helpers import tiny_data, tiny_model, trained


def _brute_force(model, data):
    """One sample at a time: g_a = mean of per-sample gradients over group a (eval mode)."""
    model.eval()
    params = list(model.parameters())
    sums = {}
    for i in range(len(data)):
        loss = nn.functional.cross_entropy(model(data.x[i : i + 1]), data.y[i : i + 1])
        g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, params)]).double()
        a = int(data.g[i])
        sums[a] = sums.get(a, 0) + g
    counts = data.group_counts()
    return {a: s / counts[a] for a, s in sums.items()}


def test_group_batches_never_mix_groups_and_cover_every_sample():
    data = tiny_data(n=101, groups=4)
    batches = group_batches(data, batch_size=7)
    seen = torch.cat([idx for _, idx in batches])
    assert sorted(seen.tolist()) == list(range(101))
    for a, idx in batches:
        assert (data.g[idx] == a).all() and 0 < len(idx) <= 7
    # no more batches than a plain pass plus one per group
    assert len(batches) <= -(-101 // 7) + 4


@pytest.mark.parametrize("batch_size", [1, 8, 1000])
def test_group_gradient_norms_equal_a_brute_force_loop(batch_size):
    data = tiny_data()
    model = trained(tiny_model(batch_norm=True), data, steps=20)
    model.train()  # the function must switch to eval mode itself and restore the mode
    res = group_gradient_norms(model, data, batch_size=batch_size, keep_vectors=True, check_full=True)
    assert model.training
    brute = _brute_force(model, data)
    for a in range(data.num_groups):
        assert res.norms[a] == pytest.approx(float(brute[a].norm()), rel=1e-5)
        torch.testing.assert_close(res.vectors[a].double(), brute[a], rtol=1e-4, atol=1e-6)
    assert res.prop1_error < 1e-5


def test_proposition_1_sum_of_group_gradients_is_the_full_gradient():
    data = tiny_data(n=120, groups=4)
    model = trained(tiny_model(batch_norm=False), data, steps=300)
    res = group_gradient_norms(model, data, batch_size=16, keep_vectors=True)
    counts = torch.as_tensor(data.group_counts(), dtype=torch.float64)
    weighted = (counts.view(-1, 1) * res.vectors.double()).sum(0)
    plain = full_gradient(model.eval(), data, batch_size=33)
    torch.testing.assert_close(weighted, plain, rtol=1e-4, atol=1e-5)
    assert res.full_norm == pytest.approx(float(plain.norm()) / len(data), rel=1e-4)
    # near a minimum the weighted group gradients cancel: the sum is much smaller than its terms
    assert res.cancellation < 0.5


def test_empty_group_is_nan_not_an_error():
    data = tiny_data(n=30, groups=3)
    data = data.subset(torch.nonzero(data.g != 1).flatten())
    res = group_gradient_norms(tiny_model(batch_norm=False), data, batch_size=8)
    assert np.isnan(res.norms[1]) and np.isfinite(res.norms[[0, 2]]).all()


def _three_class_data(n=48):
    from prunefair.data import GroupedData

    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(0))
    return GroupedData(x, torch.arange(n) % 3, torch.zeros(n, dtype=torch.long), ("a", "b", "c"), ("all",))


def test_the_gradient_passes_name_a_model_with_fewer_logits_than_classes():
    """The diagnostics' gradient passes (the first thing diagnose and audit compute) gave torch's IndexError."""
    from prunefair.diagnostics.gradients import full_gradient, group_gradient_norms

    model = torch.nn.Linear(4, 2)
    for fn in (group_gradient_norms, full_gradient):
        with pytest.raises(ValueError, match=r"returned 2 logits per sample but the data has 3 classes"):
            fn(model, _three_class_data())
