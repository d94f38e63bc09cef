"""The dual-ascent module on problems with known optima, and the replay buffer against hand computations."""

import pytest
import torch

from prunefair.mitigate import DualAscent, GroupReplayBuffer


def gda(f, constraints, x0, *, lr, dual_lr, nonnegative, steps):
    """Gradient descent on x, ascent on lambda (one step each per iteration) for f + sum lambda_i h_i."""
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    duals = DualAscent(len(constraints), dual_lr, nonnegative=nonnegative)
    for _ in range(steps):
        h = torch.stack([c(x) for c in constraints])
        lag = f(x) + (duals.weights(dtype=torch.float64) * h).sum()
        (grad,) = torch.autograd.grad(lag, x)
        with torch.no_grad():
            x -= lr * grad
        duals.step(torch.stack([c(x) for c in constraints]).detach())
    return x.detach(), duals.multipliers


def test_equality_constraint_known_optimum():
    # min x^2 + y^2 s.t. x + y - 1 = 0  ->  x = y = 1/2, lambda = -1 (free multiplier)
    x, lam = gda(lambda v: (v ** 2).sum(), [lambda v: v.sum() - 1], [0.0, 0.0], lr=0.1, dual_lr=0.1,
                 nonnegative=False, steps=3000)
    assert x.tolist() == pytest.approx([0.5, 0.5], abs=1e-6)
    assert lam.item() == pytest.approx(-1.0, abs=1e-6)


def test_inequality_constraint_known_optimum_and_nonnegative():
    # min (x - 2)^2 s.t. x - 1 <= 0  ->  x = 1, lambda = 2 (KKT: 2(x - 2) + lambda = 0)
    x, lam = gda(lambda v: ((v - 2) ** 2).sum(), [lambda v: v[0] - 1], [0.0], lr=0.05, dual_lr=0.5,
                 nonnegative=True, steps=4000)
    assert x.item() == pytest.approx(1.0, abs=1e-5)
    assert lam.item() == pytest.approx(2.0, abs=1e-5)
    # an inactive constraint keeps lambda at exactly 0: min (x + 1)^2 s.t. x <= 1
    x, lam = gda(lambda v: ((v + 1) ** 2).sum(), [lambda v: v[0] - 1], [0.0], lr=0.05, dual_lr=0.5,
                 nonnegative=True, steps=500)
    assert x.item() == pytest.approx(-1.0, abs=1e-6) and lam.item() == 0.0


def test_step_by_hand_and_projection_and_absent():
    d = DualAscent(3, 0.5, nonnegative=True)
    d.step(torch.tensor([0.2, -0.4, 1.0]), present=torch.tensor([True, True, False]))
    assert d.tolist() == pytest.approx([0.1, 0.0, 0.0])  # -0.2 projected to 0; absent group unchanged
    d.step(torch.tensor([-0.1, 0.6, float("nan")]))
    assert d.tolist() == pytest.approx([0.05, 0.3, 0.0])  # NaN counts as absent
    with pytest.raises(ValueError, match="expected 3"):
        d.step(torch.zeros(2))


def test_replay_buffer_keeps_last_k_and_counts_full_only():
    b = GroupReplayBuffer(3, 4)
    b.push(torch.tensor([1.0, 0.0, 1.0, 5.0]), torch.tensor([0, 0, 0, 2]))
    assert b.full.tolist() == [False, False, False]
    assert torch.isnan(b.means()).all()
    b.push(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0, 0, 0]))  # group 0 saw 1,0,1,1,0,0: keeps 1,1,0,0
    assert b.full.tolist() == [True, False, False]
    assert b.means()[0].item() == pytest.approx((1 + 1 + 0 + 0) / 4)
    b.push(torch.arange(10.0), torch.zeros(10, dtype=torch.long))  # more than k at once: last 4 kept
    assert b.means()[0].item() == pytest.approx((6 + 7 + 8 + 9) / 4)
