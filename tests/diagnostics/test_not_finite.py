"""A loss, gradient or Hessian-vector product that is NaN or infinite (NaN inputs, overflowing weights) is a
ValueError that says so and names the group, not numpy's "Eigenvalues did not converge" or NaN diagnostics."""

import math

import pytest
import torch
from typer.testing import CliRunner

from prunefair.cli import app
from prunefair.data import GroupedData
from prunefair.diagnostics import (
    diagnose_groups, group_gradient_norms, hutchinson_trace, lanczos_lockstep, lanczos_top_eigenvalue,
    power_top_eigenvalue,
)
from prunefair.models import build_model
from prunefair.study.store import save_checkpoint
from tests.diagnostics.helpers import tiny_data, tiny_model


def _with_nan_input(data: GroupedData, row: int) -> GroupedData:
    x = data.x.clone()
    x[row, 2] = math.nan
    return GroupedData(x, data.y, data.g, data.class_names, data.group_names)


def test_a_nan_input_is_named_with_its_group():
    data = tiny_data()
    bad = _with_nan_input(data, 40)
    group = data.group_names[int(data.g[40])]
    model = tiny_model(batch_norm=False)
    with pytest.raises(ValueError, match=rf"group '{group}'.*loss.*not finite"):
        diagnose_groups(model, bad, trace_samples=2)
    with pytest.raises(ValueError, match=rf"group '{group}'.*not finite"):
        group_gradient_norms(model, bad)


def test_weights_that_overflow_float32_are_named():
    data = tiny_data()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1e20)  # logits about 1e40: inf in float32
    with pytest.raises(ValueError, match=r"group 'g\d'.*not finite"):
        diagnose_groups(model, data, trace_samples=2)


def _nan_matvec(v):
    return v * math.nan


def test_a_non_finite_product_is_a_value_error_not_a_linalg_error():
    for run in (lambda: lanczos_top_eigenvalue(_nan_matvec, 5),
                lambda: power_top_eigenvalue(_nan_matvec, 5),
                lambda: hutchinson_trace(_nan_matvec, 5, samples=2)):
        with pytest.raises(ValueError, match="Hessian-vector product is not finite"):
            run()
    # in lockstep the operator is named, so that diagnose_groups(stacked=True) can name the group
    good = torch.diag(torch.arange(1.0, 6.0))

    def matmat(V):
        W = V @ good
        W[1] = math.nan
        return W

    with pytest.raises(ValueError, match="operator 1") as info:
        lanczos_lockstep(matmat, 5, 3)
    assert getattr(info.value, "index", None) == 1


def test_a_non_finite_hessian_in_diagnose_groups_names_the_group(monkeypatch):
    """Finite loss and gradient, non-finite products (as when only the second derivatives overflow)."""
    import prunefair.diagnostics.hvp as hvp

    data = tiny_data()
    model = tiny_model(batch_norm=False)
    real = hvp.GroupHessian.__call__

    def poisoned(self, v):
        out = real(self, v)
        return out * math.nan if bool((self.chunks[0][0] == data.x[data.g == 2][:1]).all(1).any()) else out

    monkeypatch.setattr(hvp.GroupHessian, "__call__", poisoned)
    with pytest.raises(ValueError, match=r"group 'g2' on train: the Hessian-vector product is not finite"):
        diagnose_groups(model, data, split="train", trace_samples=0)


def test_cli_diagnose_and_audit_exit_2_naming_the_non_finite_loss(tmp_path):
    torch.manual_seed(0)
    model = build_model("mlp", num_classes=10, input_shape=(1, 8, 8), width=0.25)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1e13)
    save_checkpoint(tmp_path / "huge.safetensors", model.state_dict())
    sets = ["--set", "model.width=0.25", "--set", "diagnostics.max_samples=16", "--set", "diagnostics.trace_samples=0"]
    common = ["--model-name", "mlp", "--data", "digits", *sets]
    res = CliRunner().invoke(app, ["diagnose", "--model", str(tmp_path / "huge.safetensors"), "--rate", "0.5",
                                   "--out", str(tmp_path / "d"), *common])
    assert res.exit_code == 2, res.output
    assert "not finite" in res.output and "group '" in res.output and "did not converge" not in res.output
    res = CliRunner().invoke(app, ["audit", "--dense", str(tmp_path / "huge.safetensors"), "--pruned",
                                   str(tmp_path / "huge.safetensors"), "--split", "test", "--out", str(tmp_path / "a"),
                                   *common])
    assert res.exit_code == 2, res.output
    assert "not finite" in res.output and "dense model, group '" in res.output


def _scaled_linear_data(dtype):
    torch.manual_seed(0)
    n = 60
    x, y, g = torch.randn(n, 5), torch.randint(0, 3, (n,)), torch.arange(n) % 3
    model = torch.nn.Linear(5, 3).eval()
    with torch.no_grad():
        model.weight.mul_(1e-12)  # logits and loss ordinary (about 1), curvature about 1e23
    return model.to(dtype), GroupedData((x.double() * 1e12).to(dtype), y, g, ("a", "b", "c"), ("g0", "g1", "g2"))


def test_a_float32_product_whose_norm_overflows_is_said_as_such():
    """Finite entries whose float32 norm overflows (||Hv|| > 1.8e19) are not 'NaN inputs or overflowing logits':
    the message says to run in float64, where the eigenvalue comes out (5.9e23)."""
    model, data = _scaled_linear_data(torch.float32)
    with pytest.raises(ValueError, match=r"group 'g\d' on train: the Hessian-vector product's norm overflows float32 "
                                         r"\(its largest entry is .*\): .* run the diagnostics on the model in float64"):
        diagnose_groups(model, data, trace_samples=0, split="train")
    model, data = _scaled_linear_data(torch.float64)
    d = diagnose_groups(model, data, trace_samples=0)
    assert (d.hessian_top_eigenvalue > 1e23).all() and all(e["converged"] for e in d.eigen)


def test_a_finite_loss_whose_float32_sum_overflows_is_not_refused():
    """Per-batch loss sums of 1e37 add up past float32's range; the group's mean loss (1e37) is finite."""
    torch.manual_seed(0)
    n = 150
    x, g, y = torch.randn(n, 5), torch.arange(n) % 3, torch.ones(n, dtype=torch.long)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)).eval()
    with torch.no_grad():
        model[2].bias[0] = 1e37
    data = GroupedData(x, y, g, ("a", "b", "c"), ("g0", "g1", "g2"))
    norms = group_gradient_norms(model, data, batch_size=16)
    assert math.isfinite(norms.full_norm) and all(math.isfinite(v) for v in norms.norms)


def test_a_gradient_error_names_the_split(monkeypatch):
    """A gradient that overflows where the loss does not: group_gradient_norms names the group, diagnose_groups
    adds the split."""
    import prunefair.diagnostics.diagnose as diagnose
    from prunefair.diagnostics.eigen import NotFiniteError

    data = tiny_data()
    name = data.group_names[1]

    def overflowing(*args, **kwargs):
        raise NotFiniteError(f"group {name!r}: the gradient norm of the model is not finite (inf): ...", index=1)

    monkeypatch.setattr(diagnose, "group_gradient_norms", overflowing)
    with pytest.raises(ValueError, match=rf"^group '{name}' on val: the gradient norm of the model is not finite"):
        diagnose_groups(tiny_model(batch_norm=False), data, trace_samples=0, split="val")
