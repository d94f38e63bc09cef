"""pruning_impact on the embedded digits, a trained and pruned MLP, against METHOD.md's formulas written out as
loops over raw predictions (no prunefair code in the reference)."""

import copy

import numpy as np
import pytest
import torch

from prunefair.data import load_dataset
from prunefair.measure import evaluate_groups, pruning_impact
from prunefair.models import build_model
from prunefair.prune import make_masks
from prunefair.train import TrainSettings, fit


def _by_hand(model, data):
    """Per group: n, correct, mean cross-entropy, from the logits of the whole split (float64 log-softmax)."""
    with torch.no_grad():
        z = model.eval()(data.x).double().numpy()
    y, g = data.y.numpy(), data.g.numpy()
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    out = []
    for a in range(data.num_groups):
        rows = [i for i in range(len(y)) if g[i] == a]
        out.append((len(rows), sum(int(z[i].argmax() == y[i]) for i in rows), -sum(logp[i, y[i]] for i in rows)
                    / len(rows)))
    return out


@pytest.fixture(scope="module")
def pair():
    test = load_dataset("digits").test
    torch.manual_seed(0)
    dense = build_model("mlp", num_classes=10, input_shape=test.input_shape)
    fit(dense, load_dataset("digits").train, TrainSettings(epochs=3, batch_size=64, lr=0.05), seed=0)
    pruned = copy.deepcopy(dense)
    make_masks(pruned, 0.97).bind(pruned).apply()
    return test, dense, pruned


def test_every_measure_matches_the_formulas_on_real_data(pair):
    test, dense, pruned = pair
    imp = pruning_impact(evaluate_groups(dense, test, batch_size=37), evaluate_groups(pruned, test, batch_size=50))
    d, p = _by_hand(dense, test), _by_hand(pruned, test)
    G, N = len(d), sum(n for n, _, _ in d)
    delta = (sum(c for _, c, _ in d) - sum(c for _, c, _ in p)) / N
    delta_a = [(d[a][1] - p[a][1]) / d[a][0] for a in range(G)]
    psi = [delta_a[a] - delta for a in range(G)]
    r = [p[a][2] - d[a][2] for a in range(G)]
    acc_d, acc_p = [c / n for n, c, _ in d], [c / n for n, c, _ in p]
    want = {"accuracy_drop": delta, "max_psi": max(psi), "psi_pw": max(psi) - min(psi),
            "xi": max(abs(r[a] - r[b]) for a in range(G) for b in range(G)),
            "accuracy_gap_dense": max(acc_d) - min(acc_d), "accuracy_gap_pruned": max(acc_p) - min(acc_p),
            "acc_dense": sum(c for _, c, _ in d) / N, "acc_pruned": sum(c for _, c, _ in p) / N,
            "loss_dense": sum(n * l for n, _, l in d) / N, "loss_pruned": sum(n * l for n, _, l in p) / N}
    assert set(want) == set(imp.measures)
    for k, v in want.items():
        assert imp.measures[k] == pytest.approx(v, rel=1e-5, abs=1e-9), k
    assert imp.measures["psi_pw"] > 0.05  # a rate where the groups differ, so the check means something
    bg = imp.by_group
    np.testing.assert_allclose(bg.accuracy_drop, delta_a, atol=1e-12)
    np.testing.assert_allclose(bg.psi, psi, atol=1e-12)
    np.testing.assert_allclose(bg.excess_loss, r, rtol=1e-5)
    np.testing.assert_allclose(bg.normalized_accuracy, [acc_p[a] / acc_d[a] for a in range(G)], rtol=1e-12)
    assert imp.difference("excess_loss") == pytest.approx(imp.measures["xi"])
    assert imp.difference("acc_pruned") == pytest.approx(imp.measures["accuracy_gap_pruned"])


def test_same_seed_same_numbers(pair):
    test, dense, _ = pair
    torch.manual_seed(0)
    again = build_model("mlp", num_classes=10, input_shape=test.input_shape)
    fit(again, load_dataset("digits").train, TrainSettings(epochs=3, batch_size=64, lr=0.05), seed=0)
    a, b = evaluate_groups(dense, test), evaluate_groups(again, test)
    assert a.correct.tolist() == b.correct.tolist() and a.loss_sum.tolist() == b.loss_sum.tolist()
