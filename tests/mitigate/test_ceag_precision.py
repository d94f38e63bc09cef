"""CEAG's surrogate keeps the precision of the logits: the dense model's per-group losses are not rounded to float32."""

import numpy as np
import pytest
import torch

from prunefair.measure import GroupStats
from prunefair.mitigate import CEAG


def test_ceag_loss_in_float64_matches_a_float64_hand_computation():
    # dense per-group losses 1/3 and 2/7 nats: float32 rounds them by about 1e-8
    dense = GroupStats(("a", "b"), np.array([3, 7]), np.array([2, 5]), np.array([1.0, 2.0]))
    ceag = CEAG(num_groups=2, dense_train=dense, eps=0.0, dual_lr=1.0, buffer_size=1)
    ceag.duals.multipliers = torch.tensor([0.7, 1.3], dtype=torch.float64)
    z = torch.tensor([[0.3, -0.2], [1.1, 0.4], [-0.5, 0.9]], dtype=torch.float64)
    y, g = torch.tensor([0, 1, 1]), torch.tensor([0, 1, 1])
    ceag.duals.lr = 0.0  # keep the multipliers set above: only the surrogate is checked here
    loss = ceag.batch_loss(z, y, g)
    ce = torch.logsumexp(z, 1) - z.gather(1, y[:, None])[:, 0]
    j, j_dense = ce.mean(), 3.0 / 10
    expected = j + 0.7 * ((ce[0] - 1 / 3) - (j - j_dense)) + 1.3 * ((ce[1:].mean() - 2 / 7) - (j - j_dense))
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(expected.item(), rel=0, abs=1e-14)
