"""MitigateOptions held to the study file's rules, the selection options in cell keys, VKD's precision and the
advice of a run whose dual step diverged."""

import math
import re
from dataclasses import asdict

import numpy as np
import pytest
import torch

from prunefair.config import ConfigError, MitigateConfig, validate_config
from prunefair.data import DatasetSplits, GroupedData
from prunefair.measure import GroupStats
from prunefair.mitigate import CEAG, EqualLoss, EqualLossReplay, MitigateOptions, objective_for
from prunefair.train import NonFiniteLossError, TrainSettings, fit
from prunefair.train.loop import divergence_advice
from tests.conftest import tiny_study


@pytest.mark.parametrize("key, value, rule", [
    ("eps", math.inf, "a finite number >= 0"), ("el_dual_lr", math.inf, "a finite number >= 0"),
    ("buffer_size", 2.5, "an integer >= 1"), ("buffer_size", True, "an integer >= 1"),
    ("vkd_val_every", 0.5, "an integer >= 0"), ("ceag_dual_lr", "0.1", "a finite number >= 0"),
    ("eps", None, "a finite number >= 0"), ("vkd_alpha", 1.5, "a finite number in [0, 1]"),
    ("dual_update", "sometimes", "epoch or batch"), ("selection", "best", "last, val_accuracy or val_max_psi"),
])
def test_mitigate_options_refuse_what_the_study_file_refuses(key, value, rule):
    with pytest.raises(ConfigError, match=rf"mitigate\.{key}"):
        validate_config({"mitigate": {key: value}})
    with pytest.raises(ValueError, match=rf"^mitigate option {key} = {re.escape(repr(value))}: must be "
                                         rf"{re.escape(rule)}$"):
        MitigateOptions(**{key: value})


def test_a_bad_buffer_size_from_python_is_refused_before_the_objective_is_built():
    x, y, g = torch.randn(30, 3), torch.randint(0, 2, (30,)), torch.randint(0, 2, (30,))
    d = GroupedData(x, y, g, ("a", "b"), ("A", "B"))
    splits = DatasetSplits(d, d, d, "t", "y", "g")
    with pytest.raises(ValueError, match=r"mitigate option buffer_size = 2\.5: must be an integer >= 1"):
        objective_for("ceag", dense_model=torch.nn.Linear(3, 2), data=splits, options={"buffer_size": 2.5})


def test_mitigate_options_agree_with_the_study_file_and_take_numpy_scalars():
    assert asdict(MitigateOptions()) == MitigateConfig().model_dump()
    o = MitigateOptions(eps=np.float64(0.5), buffer_size=np.int64(5))
    assert (o.eps, o.buffer_size) == (0.5, 5) and type(o.eps) is float and type(o.buffer_size) is int


def _keys(tmp_path, **mitigate) -> dict:
    from prunefair.study.cells import plan_cells

    cfg = validate_config(tiny_study(tmp_path, finetune={"methods": ["nft", "el", "ceag", "vkd"]}, mitigate=mitigate))
    return {c.name: c.key for c in plan_cells(cfg)[1]}


def test_selection_tolerance_is_in_the_keys_only_where_the_rule_reads_it(tmp_path):
    acc = _keys(tmp_path, selection="val_accuracy")
    assert _keys(tmp_path, selection="val_accuracy", selection_tolerance=0.2) == acc  # val_accuracy never reads it
    psi = _keys(tmp_path, selection="val_max_psi")
    other = _keys(tmp_path, selection="val_max_psi", selection_tolerance=0.2)
    assert all(psi[n] != other[n] for n in psi)
    assert _keys(tmp_path, selection_tolerance=0.2) == _keys(tmp_path)  # 'last': no selection options at all


def test_selection_keys_of_stored_studies_hold(tmp_path):
    """Keys computed before the tolerance was left out of 'val_accuracy' cells (default tolerance) still hold."""
    from prunefair.config import config_hash
    from prunefair.mitigate import method_options

    for selection in ("val_accuracy", "val_max_psi"):
        spec = {"eps": 0.01, "ceag_dual_lr": 0.01, "buffer_size": 40, "selection": selection,
                "selection_tolerance": 0.01}
        assert config_hash(method_options("ceag", {"selection": selection})) == config_hash(spec)
    assert method_options("nft", None) is None


def _float64_problem():
    torch.manual_seed(0)
    x = torch.randn(24, 4, dtype=torch.float64)
    y, g = torch.randint(0, 3, (24,)), torch.arange(24) % 2
    data = GroupedData(x, y, g, ("a", "b", "c"), ("A", "B"))
    teacher = torch.nn.Linear(4, 3).double()
    student = torch.nn.Linear(4, 3).double()
    return DatasetSplits(data, data, data, "t", "y", "g"), teacher, student


def _reference_loss(z, t, y, w, *, alpha, temperature):
    """(1 - alpha) CE + alpha T^2 KL(teacher_T || student_T), weighted by w, in float64 by hand."""
    ce = torch.logsumexp(z, 1) - z.gather(1, y[:, None])[:, 0]
    log_p = z / temperature - torch.logsumexp(z / temperature, 1, keepdim=True)
    log_q = t / temperature - torch.logsumexp(t / temperature, 1, keepdim=True)
    kl = (log_q.exp() * (log_q - log_p)).sum(1)
    per = (1 - alpha) * ce + alpha * temperature ** 2 * kl
    return (w * per).sum() / w.sum()


def test_vkd_keeps_float64_precision():
    splits, teacher, student = _float64_problem()
    reference = torch.nn.Linear(4, 3).double()
    reference.load_state_dict(student.state_dict())
    obj = objective_for("vkd", dense_model=teacher, data=splits, options={"vkd_alpha": 0.3, "vkd_temperature": 3.0})
    obj.start(model=student, data=splits.train, device="cpu")
    student.train()
    lam = torch.tensor([0.25, 1.5], dtype=torch.float64)
    obj.duals.multipliers = lam.clone()
    x, y, g = splits.train.x, splits.train.y, splits.train.g
    for step in range(6):
        b = slice(8 * (step % 3), 8 * (step % 3) + 8)
        for model, loss_of in ((student, lambda z: obj.batch_loss(z, y[b], g[b])),
                               (reference, lambda z: _reference_loss(z, teacher(x[b]).detach(), y[b], 1 + lam[g[b]],
                                                                     alpha=0.3, temperature=3.0))):
            model.zero_grad()
            loss = loss_of(model(x[b]))
            assert loss.dtype == torch.float64
            loss.backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.5 * p.grad
    obj.finish(student)
    for p, q in zip(student.parameters(), reference.parameters()):
        assert torch.allclose(p, q, rtol=0, atol=1e-12)


def test_vkd_upcasts_half_precision_logits_to_float32():
    splits, teacher, student = _float64_problem()
    teacher, student = teacher.to(torch.bfloat16), student.to(torch.bfloat16)
    obj = objective_for("vkd", dense_model=teacher, data=splits)
    obj.start(model=student, data=splits.train, device="cpu")
    student.train()
    x = splits.train.x[:8].to(torch.bfloat16)
    loss = obj.batch_loss(student(x), splits.train.y[:8], splits.train.g[:8])
    assert loss.dtype == torch.float32
    obj.finish(student)


def test_divergence_advice_keeps_its_wording_without_a_dual_step():
    assert divergence_advice(0.1, None) == "lower the learning rate (lr=0.1) or check the data"
    assert divergence_advice(0.1, 0.001) == ("lower the learning rate (lr=0.1) or the weight decay "
                                             "(weight_decay=0.001), or check the data")
    assert divergence_advice(0.1, None, dual_step="mitigate.ceag_dual_lr=5.0") == (
        "lower the dual step size (mitigate.ceag_dual_lr=5.0) or the learning rate (lr=0.1), or check the data")


def _diverging(objective) -> str:
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    data = GroupedData(x, (x[:, 0] > 0).long(), (x[:, 1] > 0.5).long(), ("n", "p"), ("A", "B"))
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    with pytest.raises(NonFiniteLossError) as e:
        fit(model, data, TrainSettings(epochs=3, batch_size=16, lr=0.1), seed=0, objective=objective)
    return str(e.value)


@pytest.mark.parametrize("make, setting", [
    (lambda: EqualLoss(num_groups=2, dual_lr=1e6, dual_update="batch"),
     "mitigate.el_dual_lr=1000000.0 with mitigate.dual_update='batch'"),
    (lambda: EqualLossReplay(num_groups=2, group_shares=[0.6, 0.4], buffer_size=4, dual_lr=1e6),
     "mitigate.el_dual_lr=1000000.0"),
    (lambda: CEAG(num_groups=2, dual_lr=1e6, buffer_size=4, dense_train=GroupStats(
        ("A", "B"), np.array([40, 24]), np.array([38, 20]), np.array([0.1, 0.5]))), "mitigate.ceag_dual_lr=1000000.0"),
])
def test_a_diverging_dual_step_is_named_in_the_advice(make, setting):
    message = _diverging(make())
    assert f"lower the dual step size ({setting}), the learning rate (lr=0.1) or the weight decay" in message
