"""The [prune] section in a study: schedules, criteria, protocol options, BN recalibration, cell keys."""

import json

import pytest

from prunefair import run_study
from prunefair.config import ConfigError, config_hash, validate_config
from prunefair.study import plan_cells
from tests.conftest import tiny_study


def _cells(out):
    return {p.parent.name: json.loads(p.read_text()) for p in (out / "study" / "cells").glob("*/result.json")}


def test_default_prune_keys_are_unchanged_and_new_fields_change_them(tmp_path):
    cfg = validate_config(tiny_study(tmp_path))
    _, cells = plan_cells(cfg)
    d = cells[0].dense
    ft = cfg.finetune.model_dump(mode="json")
    ft.pop("methods")
    ft.pop("crop_fill")  # added later; in keys only when not its default
    old = config_hash({"dense": d.key, "prune": {"scope": "global", "method": "magnitude"}, "rate": cells[0].rate,
                       "finetune": ft, "method": "nft"})
    assert cells[0].key == old  # studies run before these options existed are not recomputed
    keys = {cells[0].key}
    for change in ({"criterion": "random"}, {"schedule": "iterative"}, {"schedule": "iterative", "iterative_rounds": 2},
                   {"keep_first_last": True}, {"bn_recalibrate": True}):
        _, c = plan_cells(validate_config(tiny_study(tmp_path, prune={"rates": [0.5, 0.9], **change})))
        keys.add(c[0].key)
    assert len(keys) == 6
    # a field that does not matter to the schedule in use does not change the key
    _, c = plan_cells(validate_config(tiny_study(tmp_path, prune={"rates": [0.5, 0.9], "iterative_rounds": 5})))
    assert c[0].key == cells[0].key


def test_bad_prune_values_name_the_key():
    for raw, words in [({"prune": {"schedule": "cubic"}}, ["prune.schedule", "gradual"]),
                       ({"prune": {"criterion": "l1"}}, ["prune.criterion", "structured"]),
                       ({"prune": {"iterative_rounds": 0}}, ["prune.iterative_rounds"]),
                       ({"prune": {"schedule": "gradual", "gradual_end_epoch": 12}, "finetune": {"epochs": 10}},
                        ["prune.gradual_end_epoch", "finetune.epochs"]),
                       ({"prune": {"schedule": "gradual", "gradual_initial": 0.6, "rates": [0.5]}},
                        ["gradual_initial"]),
                       ({"prune": {"bn_batches": 0}}, ["prune.bn_batches"])]:
        with pytest.raises(ConfigError) as err:
            validate_config(raw)
        for w in words:
            assert w in str(err.value), (raw, str(err.value))
    assert validate_config({"prune": {"method": "random"}}).prune.criterion == "random"  # the former key


@pytest.mark.slow
def test_rate_zero_cell_is_the_dense_model(tmp_path):
    run_study(tiny_study(tmp_path, prune={"rates": [0.0]}, train={"epochs": 1}, finetune={"epochs": 1}))
    cells = _cells(tmp_path)
    dense, pruned = cells["s0_dense"], cells["s0_p0_nft"]
    assert pruned["achieved_sparsity"] == 0.0 and pruned["distance_oneshot"] == 0.0
    assert pruned["oneshot"] == dense["metrics"]  # bit-exact: the same numbers, not approximately


@pytest.mark.slow
@pytest.mark.parametrize("prune,expect_steps", [
    ({"schedule": "gradual", "criterion": "random", "keep_first_last": True}, 2),
    ({"schedule": "iterative", "iterative_rounds": 2, "criterion": "structured", "scope": "layer"}, 2),
])
def test_schedules_run_in_a_study(tmp_path, prune, expect_steps):
    run_study(tiny_study(tmp_path, prune={"rates": [0.8], **prune}, train={"epochs": 1}, finetune={"epochs": 3}))
    cell = _cells(tmp_path)["s0_p0.8_nft"]
    assert cell["status"] == "done"
    assert len(cell["prune_steps"]) == expect_steps
    if prune["schedule"] == "gradual":
        assert [s["epoch"] for s in cell["prune_steps"]] == [1, 2]
        assert cell["layer_sparsity"]["net.1.weight"] == 0.0 and cell["layer_sparsity"]["net.5.weight"] == 0.0
        assert cell["layer_sparsity"]["net.3.weight"] == pytest.approx(0.8, abs=1e-3)
        assert [h["sparsity"] for h in cell["history"]] == [0.0] + [s["sparsity"] for s in cell["prune_steps"]]
    else:
        for name, s in cell["layer_sparsity"].items():
            assert s == (0.0 if name == "net.5.weight" else pytest.approx(0.8, abs=0.02)), name


@pytest.mark.slow
def test_bn_recalibration_in_a_study(tmp_path):
    run_study(tiny_study(tmp_path, model={"name": "mlp", "width": 0.5, "batch_norm": True},
                         prune={"rates": [0.95], "bn_recalibrate": True, "bn_recalibrate_finetuned": True,
                                "bn_batches": 2}, train={"epochs": 1}, finetune={"epochs": 1}))
    cell = _cells(tmp_path)["s0_p0.95_nft"]
    assert cell["bn_recalibration_samples"]["oneshot"] == 2 * 512  # eval.batch_size x bn_batches
    assert cell["bn_recalibration_samples"]["finetuned"] == 2 * 512
