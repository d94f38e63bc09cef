"""A float64 model is evaluated, diagnosed and trained in float64: inputs follow the model's dtype, and per-group
losses keep float64 logits' precision."""

import math

import pytest
import torch
from torch import nn

from prunefair.data import GroupedData
from prunefair.diagnostics import group_gradient_norms
from prunefair.measure import evaluate_groups
from prunefair.measure.group_stats import batch_group_sums
from prunefair.train import TrainSettings, fit


def test_float64_logits_keep_their_precision():
    logits = torch.tensor([[20.0, 0.0], [18.0, 0.0]], dtype=torch.float64)
    sums = batch_group_sums(logits, torch.tensor([0, 0]), torch.tensor([0, 0]), 1)
    want = math.log1p(math.exp(-20.0)) + math.log1p(math.exp(-18.0))  # 1.73e-8; float32 logits gave 0.0
    assert sums[2, 0].item() == pytest.approx(want, rel=1e-12)


def test_a_float64_model_runs_on_uint8_and_float_inputs():
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (30,), generator=gen)
    stored = {"float": torch.randn(30, 4, generator=gen),
              "uint8": torch.randint(0, 256, (30, 1, 2, 2), generator=gen, dtype=torch.uint8)}
    for kind, x in stored.items():
        data = GroupedData(x, y, y.clone(), ("a", "b", "c"), ("a", "b", "c"))
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).double()
        fit(model, data, TrainSettings(epochs=1, batch_size=8, lr=0.1), seed=0)
        assert model[1].weight.dtype == torch.float64
        stats = evaluate_groups(model, data, batch_size=7)
        xs = data.to_float(x, torch.float64)
        assert xs.dtype == torch.float64
        loss = nn.functional.cross_entropy(model(xs), y, reduction="none")
        for a in range(3):
            assert stats.loss_sum[a] == pytest.approx(float(loss[y == a].sum().detach()), rel=1e-12), kind
        norms = group_gradient_norms(model, data, batch_size=7)
        for a in range(3):
            model.zero_grad()
            nn.functional.cross_entropy(model(xs[y == a]), y[y == a]).backward()
            want = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters()))
            assert norms.norms[a] == pytest.approx(want, rel=1e-10), kind


def test_a_float64_model_takes_float64_training_steps():
    """One SGD step of fit equals a hand-written float64 step (the loss was once computed in float32: 9.5e-9 off,
    and a confident sample's gradient was exactly 0)."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 4, generator=gen, dtype=torch.float64) * 10, torch.randint(0, 3, (8,), generator=gen)
    data = GroupedData(x, y, torch.zeros(8), ("a", "b", "c"), ("all",))
    torch.manual_seed(0)
    model = nn.Linear(4, 3).double()
    hand = nn.Linear(4, 3).double()
    hand.load_state_dict(model.state_dict())
    fit(model, data, TrainSettings(epochs=1, batch_size=8, lr=0.1, momentum=0.0, weight_decay=0.0,
                                   schedule="constant"), seed=0)
    loss = nn.functional.cross_entropy(hand(x), y)
    grads = torch.autograd.grad(loss, list(hand.parameters()))
    for p, q, gq in zip(model.parameters(), hand.parameters(), grads):
        torch.testing.assert_close(p, q - 0.1 * gq, rtol=0, atol=1e-14)


def test_weights_that_the_last_step_makes_non_finite_are_an_error():
    from prunefair.train import NonFiniteLossError

    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0)) * 1e3
    data = GroupedData(x, torch.tensor([0, 1, 0, 1]), torch.zeros(4), ("a", "b"), ("all",))
    torch.manual_seed(0)
    with pytest.raises(NonFiniteLossError, match="not finite after the last step"):
        fit(nn.Linear(3, 2), data, TrainSettings(epochs=1, batch_size=4, lr=1e37, schedule="constant"), seed=0)
