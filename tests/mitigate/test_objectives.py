"""Each method's update rule on a tiny problem against a hand computation."""

import math

import numpy as np
import pytest
import torch

from prunefair.measure import GroupStats
from prunefair.mitigate import (
    CEAG, EqualLoss, EqualLossReplay, MitigationObjective, distillation_losses, select_epoch,
)

LOGITS = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, -1.0], [0.5, 0.0]])
Y = torch.tensor([0, 0, 1, 0, 1])
G = torch.tensor([0, 0, 1, 1, 0])  # group 2 is absent from the batch


def ce_by_hand(z, y):
    return [math.log(sum(math.exp(v) for v in row)) - row[t] for row, t in zip(z.tolist(), y.tolist())]


def test_el_batch_loss_and_epoch_dual_step_by_hand():
    ce = ce_by_hand(LOGITS, Y)
    j = sum(ce) / 5
    j0, j1 = (ce[0] + ce[1] + ce[4]) / 3, (ce[2] + ce[3]) / 2
    el = EqualLoss(num_groups=3, dual_lr=0.1, dual_update="epoch")
    el.duals.multipliers = torch.tensor([0.5, 2.0, 7.0], dtype=torch.float64)
    loss = el.batch_loss(LOGITS, Y, G)
    assert loss.item() == pytest.approx(j + 0.5 * abs(j0 - j) + 2.0 * abs(j1 - j), rel=1e-6)  # absent: nothing
    # second batch: only group 1 and 2
    z2, y2, g2 = torch.tensor([[0.0, 2.0], [1.0, 0.0]]), torch.tensor([1, 1]), torch.tensor([1, 2])
    ce2 = ce_by_hand(z2, y2)
    jb = sum(ce2) / 2
    el.batch_loss(z2, y2, g2)
    assert el.duals.tolist() == [0.5, 2.0, 7.0]  # epoch mode: no step inside the epoch
    log = el.end_epoch(0)
    v0 = abs(j0 - j)
    v1 = (abs(j1 - j) + abs(ce2[0] - jb)) / 2
    v2 = abs(ce2[1] - jb)
    assert log["violations"] == pytest.approx([v0, v1, v2], rel=1e-6)
    assert log["multipliers"] == pytest.approx([0.5 + 0.1 * v0, 2.0 + 0.1 * v1, 7.0 + 0.1 * v2], rel=1e-6)


def test_el_batch_mode_steps_present_groups_only():
    ce = ce_by_hand(LOGITS, Y)
    j = sum(ce) / 5
    el = EqualLoss(num_groups=3, dual_lr=0.01, dual_update="batch")
    el.batch_loss(LOGITS, Y, G)
    expected = [0.01 * abs((ce[0] + ce[1] + ce[4]) / 3 - j), 0.01 * abs((ce[2] + ce[3]) / 2 - j), 0.0]
    assert el.duals.tolist() == pytest.approx(expected, rel=1e-6)
    before = el.duals.tolist()
    el.end_epoch(0)
    assert el.duals.tolist() == before  # batch mode: no extra step at the end of the epoch


def test_el_rb_uses_full_buffers_only():
    el = EqualLossReplay(num_groups=3, group_shares=[0.5, 0.3, 0.2], buffer_size=2, dual_lr=1.0)
    ce = ce_by_hand(LOGITS, Y)
    el.batch_loss(LOGITS, Y, G)  # buffers: g0 holds ce[1], ce[4] (last 2 of 3); g1 holds ce[2], ce[3]; g2 empty
    m0, m1 = (ce[1] + ce[4]) / 2, (ce[2] + ce[3]) / 2
    jhat = (0.5 * m0 + 0.3 * m1) / 0.8
    assert el.duals.tolist() == pytest.approx([abs(m0 - jhat), abs(m1 - jhat), 0.0], rel=1e-6)


def test_ceag_dual_first_then_surrogate_by_hand():
    dense = GroupStats(("a", "b", "c"), np.array([10, 10, 10]), np.array([9, 8, 10]), np.array([1.0, 2.0, 3.0]))
    ceag = CEAG(num_groups=3, dense_train=dense, eps=0.01, dual_lr=0.5, buffer_size=2)
    correct = (LOGITS.argmax(1) == Y).double().tolist()  # [1, 0, 0, 1, 1]
    loss = ceag.batch_loss(LOGITS, Y, G)
    # buffers (k=2): group 0 keeps samples 1 and 4 -> acc 0.5; group 1 samples 2, 3 -> acc 0.5; group 2 empty
    acc0, acc1 = (correct[1] + correct[4]) / 2, (correct[2] + correct[3]) / 2
    w0, w1 = 1 / 2, 1 / 2  # equal train shares, renormalised over full buffers
    sparse, dense_all = w0 * acc0 + w1 * acc1, w0 * 0.9 + w1 * 0.8
    psi0 = (0.9 - acc0) - (dense_all - sparse)
    psi1 = (0.8 - acc1) - (dense_all - sparse)
    lam = [max(0.0, 0.5 * (psi0 - 0.01)), max(0.0, 0.5 * (psi1 - 0.01)), 0.0]
    assert ceag.duals.tolist() == pytest.approx(lam, abs=1e-12)
    ce = ce_by_hand(LOGITS, Y)
    j = sum(ce) / 5
    j0, j1 = (ce[0] + ce[1] + ce[4]) / 3, (ce[2] + ce[3]) / 2
    dense_j = 6.0 / 30
    expected = j + lam[0] * ((j0 - 0.1) - (j - dense_j)) + lam[1] * ((j1 - 0.2) - (j - dense_j))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert min(ceag.duals.tolist()) >= 0.0


def test_ceag_multipliers_never_negative():
    dense = GroupStats(("a", "b"), np.array([10, 10]), np.array([1, 1]), np.array([1.0, 1.0]))
    ceag = CEAG(num_groups=2, dense_train=dense, eps=0.5, dual_lr=10.0, buffer_size=3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):  # dense accuracy 0.1: psi is mostly negative, lambda is pushed below 0 and projected
        z = torch.randn(6, 2, generator=gen)
        ceag.batch_loss(z, torch.randint(0, 2, (6,), generator=gen), torch.randint(0, 2, (6,), generator=gen))
        assert (ceag.duals.multipliers >= 0).all()


def test_distillation_losses_by_hand():
    z, t, y = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]), torch.tensor([0])
    T, alpha = 2.0, 0.3
    p = [math.exp(0.5) / (math.exp(0.5) + 1), 1 / (math.exp(0.5) + 1)]
    q = [1 / (1 + math.exp(1.0)), math.exp(1.0) / (1 + math.exp(1.0))]
    kl = sum(qi * math.log(qi / pi) for qi, pi in zip(q, p))
    ce = math.log(math.exp(1) + 1) - 1
    got = distillation_losses(z, t, y, alpha=alpha, temperature=T).item()
    assert got == pytest.approx((1 - alpha) * ce + alpha * T * T * kl, rel=1e-6)


def test_select_epoch():
    recs = [{"val_accuracy": 0.80, "val_max_psi": 0.05}, {"val_accuracy": 0.90, "val_max_psi": 0.09},
            {"val_accuracy": 0.895, "val_max_psi": 0.04}, {"val_accuracy": 0.70, "val_max_psi": 0.0}]
    assert select_epoch(recs, "last", 0.01) == 3
    assert select_epoch(recs, "val_accuracy", 0.01) == 1
    assert select_epoch(recs, "val_max_psi", 0.01) == 2  # within 1 point of the best accuracy, lowest psi
    assert select_epoch(recs, "val_max_psi", 0.0) == 1
    assert select_epoch(recs, "val_accuracy", 0.01, first=2) == 2  # only the epochs at the final mask
    assert select_epoch(recs, "val_max_psi", 0.01, first=3) == 3
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        select_epoch(recs, "val_max_psi", -1.0)
    with pytest.raises(ValueError, match="allowed: last"):
        select_epoch(recs, "test_psi", 0.01)
    with pytest.raises(ValueError, match="validation split"):
        MitigationObjective(num_groups=2, selection="val_accuracy")
