"""The methods inside a study on real data (digits), the [mitigate] section and the mitigation outputs."""

import math
import re

import pytest
import torch

from prunefair import run_study
from prunefair.config import ConfigError, validate_config
from prunefair.data import GroupedData, load_dataset
from prunefair.mitigate import METHODS, objective_for
from prunefair.models import build_model
from prunefair.prune import make_masks
from prunefair.train import TrainSettings, fit
from tests.conftest import tiny_study


@pytest.mark.slow
def test_el_drives_train_violations_down_on_digits(tmp_path):
    cfg = tiny_study(tmp_path, prune={"rates": [0.9]},
                     finetune={"epochs": 4, "lr": 0.01, "methods": ["nft", "el"]},
                     mitigate={"dual_update": "batch", "el_dual_lr": 0.5})
    r = run_study(cfg)
    from prunefair.report.mitigation import mitigation_table

    t = mitigation_table(r).set_index(["method", "split"])
    nft_gap, el_gap = t.loc[("nft", "train"), "loss_gap_mean"], t.loc[("el", "train"), "loss_gap_mean"]
    print(f"train max|J_a - J|: nft {nft_gap:.4f}, el {el_gap:.4f}")
    assert el_gap < 0.8 * nft_gap, (el_gap, nft_gap)
    el = next(c for c in r.cells if c.get("method") == "el")
    viol = [max(v for v in rec["violations"] if v is not None) for rec in el["history"]]
    assert viol[-1] < viol[0]  # the mean per-batch violation of the worst group falls over the epochs
    lam = [rec["multipliers"] for rec in el["history"]]
    assert all(v >= 0 for row in lam for v in row) and max(lam[-1]) > 0
    assert (tmp_path / "study" / "mitigation.csv").is_file()
    assert (tmp_path / "study" / "figures" / "mitigation_duals_p0.9.png").is_file()


def _with_rare_group(data: GroupedData) -> GroupedData:
    """Relabel three samples into an extra group 10: most mini-batches lack it."""
    g = data.g.clone()
    g[:3] = 10
    return GroupedData(data.x, data.y, g, data.class_names, data.group_names + ("rare",), data.mean, data.std)


@pytest.mark.parametrize("method", METHODS)
def test_group_absent_from_most_batches(method):
    torch.manual_seed(0)
    splits = load_dataset("digits")
    splits.train, splits.val = _with_rare_group(splits.train.subset(range(300))), _with_rare_group(splits.val)
    dense = build_model("mlp", num_classes=10, input_shape=splits.train.input_shape, width=0.25)
    fit(dense, splits.train, TrainSettings(epochs=2, batch_size=32, lr=0.05), seed=0)
    model = build_model("mlp", num_classes=10, input_shape=splits.train.input_shape, width=0.25)
    model.load_state_dict(dense.state_dict())
    masks = make_masks(model, 0.8)
    obj = objective_for(method, dense_model=dense, data=splits,
                        options={"dual_update": "batch", "el_dual_lr": 0.1, "buffer_size": 2,
                                 "selection": "val_max_psi", "vkd_val_every": 3})
    hist = fit(model, splits.train, TrainSettings(epochs=2, batch_size=32, lr=0.01), seed=0, masks=masks, objective=obj)
    info = obj.finish(model)
    assert all(math.isfinite(rec["loss"]) for rec in hist.epochs)
    assert 1 <= info["selected_epoch"] <= 2
    for rec in hist.epochs:
        lam = rec.get("multipliers", [0.0] * 11)
        assert len(lam) == 11 and min(lam) >= 0.0
    if method == "el":  # the rare group was in a few batches: its violation was counted there only
        assert hist.epochs[-1]["multipliers"][10] > 0.0
        assert all(rec["violations"][10] is not None for rec in hist.epochs)


def test_mitigate_section_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"mitigate\.dual_update") as e:
        validate_config({"mitigate": {"dual_update": "sometimes"}})
    assert "epoch" in str(e.value) and "batch" in str(e.value)
    with pytest.raises(ConfigError, match=r"mitigate\.eps"):
        validate_config({"mitigate": {"eps": -1}})
    with pytest.raises(ConfigError, match=r"unknown key 'mitigate\.lambda'"):
        validate_config({"mitigate": {"lambda": 1}})
    with pytest.raises(ConfigError, match=r"finetune\.methods\[0\]"):
        validate_config({"finetune": {"methods": ["fairprune"]}})
    cfg = validate_config({"finetune": {"methods": list(METHODS)}, "mitigate": {"selection": "val_accuracy"}})
    assert cfg.mitigate.selection == "val_accuracy"


def test_nft_keys_unchanged_and_methods_paired(tmp_path):
    from prunefair.study.cells import plan_cells

    base = validate_config(tiny_study(tmp_path))
    other = validate_config(tiny_study(tmp_path, mitigate={"eps": 0.05, "el_dual_lr": 0.1}))
    assert [c.key for c in plan_cells(base)[1]] == [c.key for c in plan_cells(other)[1]]  # NFT ignores them
    both = validate_config(tiny_study(tmp_path, finetune={"methods": ["nft", "ceag"]}))
    tweaked = validate_config(tiny_study(tmp_path, finetune={"methods": ["nft", "ceag"]}, mitigate={"eps": 0.05}))
    k1 = {c.name: c.key for c in plan_cells(both)[1]}
    k2 = {c.name: c.key for c in plan_cells(tweaked)[1]}
    assert k1["s0_p0.9_nft"] == k2["s0_p0.9_nft"] and k1["s0_p0.9_ceag"] != k2["s0_p0.9_ceag"]


@pytest.mark.parametrize("schedule", ["gradual", "iterative"])
@pytest.mark.parametrize("method", ["nft", "vkd"])
def test_selection_under_a_schedule_keeps_a_model_at_the_final_mask(schedule, method):
    """Selection on validation picks among the epochs at the final mask: an earlier, less sparse epoch (often the
    most accurate) would be reported at the cell's rate. VKD's input hook is registered once, removed at the end."""
    from functools import partial

    from prunefair.train.pruned import finetune_pruned

    torch.manual_seed(0)
    splits = load_dataset("digits")
    splits.train = splits.train.subset(range(400))
    dense = build_model("mlp", num_classes=10, input_shape=splits.train.input_shape, width=0.25)
    fit(dense, splits.train, TrainSettings(epochs=3, batch_size=32, lr=0.05), seed=0)
    model = build_model("mlp", num_classes=10, input_shape=splits.train.input_shape, width=0.25)
    model.load_state_dict(dense.state_dict())
    obj = objective_for(method, dense_model=dense, data=splits, options={"selection": "val_accuracy"})
    prune = partial(lambda m, rate, previous: make_masks(m, rate, previous=previous))
    run = finetune_pruned(model, splits.train, TrainSettings(epochs=2, batch_size=32, lr=0.01), rate=0.95,
                          prune=prune, schedule=schedule, rounds=3, seed=0, objective=obj)
    info = obj.finish(model)
    first_final = 1 if schedule == "gradual" else 4  # gradual: the cubic schedule reaches 0.95 at epoch 2 of 2
    assert info["selected_epoch"] > first_final
    weights = [p for n, p in model.named_parameters() if n in run.masks.masks]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros == pytest.approx(run.masks.sparsity, abs=1e-9) and run.masks.sparsity == pytest.approx(0.95, abs=1e-3)
    assert not model._forward_pre_hooks  # VKD's capture hook: one per study cell, removed by finish


def test_mitigate_options_from_python_are_range_checked():
    splits = load_dataset("digits")
    dense = build_model("mlp", num_classes=10, input_shape=splits.train.input_shape, width=0.25)
    for key, value, rule in (("vkd_alpha", 1.5, "a finite number in [0, 1]"), ("eps", -0.5, "a finite number >= 0"),
                             ("selection_tolerance", -1, "a finite number >= 0"),
                             ("vkd_temperature", 0, "a finite number > 0")):
        with pytest.raises(ValueError, match=rf"mitigate option {key} = {value!r}: must be {re.escape(rule)}"):
            objective_for("vkd", dense_model=dense, data=splits, options={key: value})


def test_a_validation_split_is_required_up_front(tmp_path):
    for extra in ({"mitigate": {"selection": "val_accuracy"}}, {"finetune": {"methods": ["nft", "vkd"]}}):
        with pytest.raises(ConfigError, match="need.s. a validation split, but data.val_fraction = 0"):
            validate_config(tiny_study(tmp_path, data={"dataset": "digits", "val_fraction": 0.0}, **extra))


@pytest.mark.parametrize("every, expected", [(0, [10]), (3, [3, 3, 3, 1]), (10, [10]), (4, [4, 4, 2])])
def test_vkd_takes_its_extra_dual_steps_after_every_k_batches(every, expected, monkeypatch):
    """300 samples in batches of 32 make 10 batches an epoch. Each dual step is recorded with the primal steps taken
    since the last one: for k = 3, after 3, 6 and 9 batches and at the epoch's end (1 more); for k = 10 none extra
    (the epoch's end is the tenth), where the step used to be taken twice, one batch apart."""
    from prunefair.mitigate.vkd import ValidationDistillation

    splits = load_dataset("digits")
    splits.train = splits.train.subset(range(300))
    dense = build_model("mlp", num_classes=10, input_shape=splits.train.input_shape, width=0.25)
    model = build_model("mlp", num_classes=10, input_shape=splits.train.input_shape, width=0.25)
    model.load_state_dict(dense.state_dict())
    steps = []
    original = ValidationDistillation.after_val

    def counted(self, stats, impact):
        steps.append(self._batches)
        original(self, stats, impact)

    monkeypatch.setattr(ValidationDistillation, "after_val", counted)
    obj = objective_for("vkd", dense_model=dense, data=splits, options={"vkd_val_every": every})
    fit(model, splits.train, TrainSettings(epochs=2, batch_size=32, lr=0.01), seed=0, objective=obj)
    assert steps == expected * 2


def test_vkd_gives_the_dense_model_back_in_its_own_modes():
    torch.manual_seed(0)
    splits = load_dataset("digits")
    splits.train = splits.train.subset(range(200))
    dense = build_model("mlp", num_classes=10, input_shape=splits.train.input_shape, width=0.25)
    dense.train()
    modes = [m.training for m in dense.modules()]
    model = build_model("mlp", num_classes=10, input_shape=splits.train.input_shape, width=0.25)
    model.load_state_dict(dense.state_dict())
    masks = make_masks(model, 0.5)
    obj = objective_for("vkd", dense_model=dense, data=splits)
    fit(model, splits.train, TrainSettings(epochs=1, batch_size=50, lr=0.01), seed=0, masks=masks, objective=obj)
    obj.finish(model)
    assert [m.training for m in dense.modules()] == modes
