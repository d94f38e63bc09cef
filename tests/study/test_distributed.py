"""Data-parallel evaluation and training on 2 CPU processes (gloo): exact per-group metrics, no sample twice."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from prunefair.data import load_dataset
from prunefair.measure import evaluate_groups
from prunefair.models import build_model
from prunefair.study.distributed import (
    ExactDistributedSampler, evaluate_groups_distributed, fit_ddp, shard_indices,
)
from prunefair.train import TrainSettings, fit

SETTINGS = TrainSettings(epochs=2, batch_size=32, lr=0.05, momentum=0.9, weight_decay=1e-4, schedule="cosine")
N_TRAIN, N_EVAL = 203, 157  # odd sizes, and 203 % 32 = 11: the last global batch splits 6 / 5


@pytest.mark.parametrize("n,world", [(0, 2), (1, 2), (7, 2), (157, 2), (10, 3), (11, 4), (5, 8)])
def test_shards_cover_every_index_once_without_padding(n, world):
    shards = [shard_indices(n, rank=r, world_size=world) for r in range(world)]
    allidx = torch.cat(shards)
    assert sorted(allidx.tolist()) == list(range(n))  # each sample exactly once
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    samplers = [ExactDistributedSampler(n, rank=r, world_size=world, shuffle=True, seed=3) for r in range(world)]
    for s in samplers:
        s.set_epoch(1)
    assert sorted(i for s in samplers for i in s) == list(range(n))
    assert sum(len(s) for s in samplers) == n
    # torch's own sampler pads: the reason ours exists
    padded = [list(torch.utils.data.DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=False))
              for r in range(world)] if n else [[]]
    if n % world:
        assert sum(map(len, padded)) > n


def _data():
    splits = load_dataset("digits")
    return splits.train.subset(torch.arange(N_TRAIN)), splits.test.subset(torch.arange(N_EVAL))


def _model():
    torch.manual_seed(0)
    return build_model("mlp", num_classes=10, input_shape=(1, 8, 8), width=0.5)


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        train, test = _data()
        model = _model()
        before = evaluate_groups_distributed(model, test, batch_size=50)
        history = fit_ddp(model, train, SETTINGS, seed=0)
        after = evaluate_groups_distributed(model, test, batch_size=50)
        out = {"before": before.to_dict(), "after": after.to_dict(), "loss": [e["loss"] for e in history.epochs],
               "params": {k: v.tolist() for k, v in model.state_dict().items()}}
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(out))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_equals_single_process(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert r0["after"] == r1["after"]  # every rank ends with the same all-reduced metrics

    train, test = _data()
    torch.set_num_threads(1)
    model = _model()
    before = evaluate_groups(model, test, batch_size=50).to_dict()
    history = fit(model, train, SETTINGS, seed=0)
    after = evaluate_groups(model, test, batch_size=50).to_dict()
    for dist_stats, ref in ((r0["before"], before), (r0["after"], after)):
        assert dist_stats["count"] == ref["count"] and sum(ref["count"]) == N_EVAL  # exact: no sample twice
        assert dist_stats["correct"] == ref["correct"]
        np.testing.assert_allclose(dist_stats["loss_sum"], ref["loss_sum"], rtol=1e-5, atol=1e-6)
    # training: the same global batches, the same updates, up to float rounding
    np.testing.assert_allclose(r0["loss"], [e["loss"] for e in history.epochs], rtol=1e-5)
    for k, v in model.state_dict().items():
        np.testing.assert_allclose(np.asarray(r0["params"][k]), v.numpy(), rtol=1e-4, atol=1e-5, err_msg=k)
        np.testing.assert_array_equal(np.asarray(r0["params"][k]), np.asarray(r1["params"][k]))


def test_fit_ddp_with_dropout_depends_on_the_seed_alone_and_restores_the_global_rng():
    """As fit: dropout draws from the global RNG, seeded per rank for the run (one process here: rank 0)."""
    from torch import nn

    train, _ = _data()

    def trained(outer_seed):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))
        torch.manual_seed(outer_seed)  # whatever drew from the global RNG before
        state = torch.get_rng_state()
        fit_ddp(model, train, TrainSettings(epochs=1, batch_size=32, lr=0.05), seed=0)
        assert torch.equal(torch.get_rng_state(), state)
        return model.state_dict()

    a, b = trained(1), trained(2)
    for k in a:
        assert torch.equal(a[k], b[k]), k
