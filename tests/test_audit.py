"""audit_pair / diagnose_model from Python: the forms of the study file, and what a wrong checkpoint is told."""

import copy

import pytest
import torch

from prunefair.audit import audit_pair, diagnose_model, load_model
from prunefair.config import ConfigError, load_config, resolve_config
from prunefair.models import build_model
from prunefair.prune import ArchitectureMismatch, global_magnitude_masks
from prunefair.study.runner import load_study_data
from prunefair.study.store import save_checkpoint

CFG = {"data": {"dataset": "digits"}, "model": {"name": "mlp", "width": 0.5},
       "diagnostics": {"max_samples": 32, "trace_samples": 0, "hvp": "double_backward", "iterations": 5}}
TOML = """[data]
dataset = "digits"
[model]
name = "mlp"
width = 0.5
[diagnostics]
max_samples = 32
trace_samples = 0
hvp = "double_backward"
iterations = 5
"""


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("audit_pair")
    torch.manual_seed(0)
    dense = build_model("mlp", num_classes=10, input_shape=(1, 8, 8), width=0.5)
    pruned = copy.deepcopy(dense)
    global_magnitude_masks(pruned, 0.8).bind(pruned).apply()
    save_checkpoint(tmp / "dense.safetensors", dense.state_dict())
    torch.save({"state_dict": pruned.state_dict(), "epoch": 3}, tmp / "pruned.pth")  # plain PyTorch
    (tmp / "study.toml").write_text(TOML)
    return tmp


@pytest.mark.parametrize("form", ["dict", "toml", "StudyConfig"])
def test_audit_pair_takes_a_dict_a_toml_path_or_a_study_config(pair, form):
    cfg = {"dict": CFG, "toml": pair / "study.toml", "StudyConfig": load_config(pair / "study.toml")}[form]
    r = audit_pair(cfg, pair / "dense.safetensors", pair / "pruned.pth", splits=["test"])
    assert r.sparsity == pytest.approx(0.8, abs=1e-3) and set(r.impacts) == {"test"}


def test_diagnose_model_takes_a_dict_and_a_wrong_type_is_named(pair):
    r = diagnose_model(CFG, pair / "dense.safetensors", rates=[0.5])
    assert list(r.rankings) == [0.5]
    with pytest.raises(ConfigError, match="config: a int; give a StudyConfig, a dict"):
        audit_pair(123, pair / "dense.safetensors", pair / "pruned.pth")


def test_a_dense_model_that_looks_pruned_is_warned_about(pair, caplog):
    cfg = resolve_config(CFG)
    data = load_study_data(cfg)
    with caplog.at_level("WARNING", logger="prunefair.audit"):
        load_model(cfg, data, pair / "pruned.pth", torch.device("cpu"))  # what audit and diagnose load as dense
    assert "pruned.pth: 80.0% of the prunable weights are exactly zero: this 'dense' model looks pruned" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="prunefair.audit"):
        load_model(cfg, data, pair / "dense.safetensors", torch.device("cpu"))
    assert "looks pruned" not in caplog.text


def test_a_checkpoint_of_another_width_says_which_width_fits(pair):
    cfg = {**CFG, "model": {"name": "mlp", "width": 1.0}}
    with pytest.raises(ArchitectureMismatch) as err:
        diagnose_model(cfg, pair / "dense.safetensors", rates=[0.5])
    msg = str(err.value)
    assert "net.1.weight: checkpoint (64, 64), model (128, 64)" in msg
    assert "the shapes fit model.width = 0.5 (this study file has 1): --set model.width=0.5" in msg


def test_a_slimmed_pruned_checkpoint_is_not_told_to_change_the_width_the_dense_one_fits(pair, tmp_path):
    # structured pruning that removes channels (torch-pruning, NNI's speedup) gives smaller tensors: the width
    # they match would no longer fit the dense checkpoint, so the advice is to zero the channels instead
    slim = build_model("mlp", num_classes=10, input_shape=(1, 8, 8), width=0.25)
    save_checkpoint(tmp_path / "slim.safetensors", slim.state_dict())
    with pytest.raises(ArchitectureMismatch) as err:
        audit_pair(CFG, pair / "dense.safetensors", tmp_path / "slim.safetensors", splits=["test"])
    msg = str(err.value)
    assert "slim.safetensors: does not fit this architecture" in msg
    assert "--set model.width" not in msg
    assert "dense.safetensors fits model 'mlp' (width 0.5) but this one has fewer channels or units" in msg
    assert "set to zero in tensors of the dense shapes" in msg
    wider = build_model("mlp", num_classes=10, input_shape=(1, 8, 8), width=1.0)
    save_checkpoint(tmp_path / "wide.safetensors", wider.state_dict())
    with pytest.raises(ArchitectureMismatch, match="fits this configuration; the two checkpoints are not of one "
                                                   "architecture") as err:
        audit_pair(CFG, pair / "dense.safetensors", tmp_path / "wide.safetensors", splits=["test"])
    assert "--set model.width" not in str(err.value)
    with pytest.raises(ArchitectureMismatch, match="--set model.width=0.25"):  # the dense one: the width is the fix
        audit_pair(CFG, tmp_path / "slim.safetensors", tmp_path / "slim.safetensors", splits=["test"])

def test_a_checkpoint_with_batch_norm_read_without_says_model_batch_norm(tmp_path):
    cfg = {"data": {"dataset": "digits"}, "model": {"name": "cnn", "width": 0.25, "batch_norm": False},
           "diagnostics": {"max_samples": 8, "trace_samples": 0, "iterations": 3}}
    with_bn = build_model("cnn", num_classes=10, input_shape=(1, 8, 8), width=0.25, batch_norm=True)
    save_checkpoint(tmp_path / "bn.safetensors", with_bn.state_dict())
    with pytest.raises(ArchitectureMismatch, match=r"of model 'cnn' with batch norm: --set model.batch_norm=true"):
        diagnose_model(cfg, tmp_path / "bn.safetensors", rates=[0.5])
    without = build_model("cnn", num_classes=10, input_shape=(1, 8, 8), width=0.25, batch_norm=False)
    save_checkpoint(tmp_path / "plain.safetensors", without.state_dict())
    cfg["model"]["batch_norm"] = True
    with pytest.raises(ArchitectureMismatch, match=r"without batch norm: --set model.batch_norm=false"):
        diagnose_model(cfg, tmp_path / "plain.safetensors", rates=[0.5])

def test_a_checkpoint_of_another_model_points_at_register_model(pair, tmp_path):
    own = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    save_checkpoint(tmp_path / "own.safetensors", own.state_dict())
    with pytest.raises(ArchitectureMismatch, match=r"is model.name right\?.*register_model"):
        diagnose_model(CFG, tmp_path / "own.safetensors", rates=[0.5])


def test_audit_and_diagnose_refuse_arguments_of_the_wrong_kind_naming_them(pair):
    dense = pair / "dense.safetensors"
    with pytest.raises(TypeError, match=r"splits: a list of split names such as \['test'\], got 'test'"):
        audit_pair(CFG, dense, pair / "pruned.pth", splits="test")  # not ['t', 'e', 's', 't']
    with pytest.raises(ValueError, match="splits is empty"):
        audit_pair(CFG, dense, pair / "pruned.pth", splits=[])
    with pytest.raises(ValueError, match="rates is empty"):
        diagnose_model(CFG, dense, rates=[])  # not the config's rates
    assert list(diagnose_model(CFG, dense, rates=(r for r in [0.5, 0.8])).distances) == [0.5, 0.8]  # read once
    with pytest.raises(TypeError, match="model_path: the path of a checkpoint file, got a MLP.*diagnose_groups"):
        diagnose_model(CFG, build_model("mlp", num_classes=10, input_shape=(1, 8, 8), width=0.5), rates=[0.5])


def test_the_api_refuses_wrong_types_with_the_argument_named():
    import numpy as np

    from prunefair.data import load_dataset
    from prunefair.data.tensors import register_arrays
    from prunefair.diagnostics import diagnose_groups
    from prunefair.measure import GroupStats, pruning_impact
    from prunefair.mitigate import objective_for
    from prunefair.prune import make_masks

    model = build_model("mlp", num_classes=10, input_shape=(1, 8, 8), width=0.5)
    with pytest.raises(TypeError, match=r"pruning rate: a number in \[0, 1\), got '0.9'"):
        make_masks(model, "0.9")
    with pytest.raises(TypeError, match="register_arrays: attributes is a dict"):
        register_arrays("typed", np.zeros((4, 3)), np.array([0, 1, 0, 1]), attributes=[np.zeros(4)])
    splits = load_dataset("digits")
    with pytest.raises(TypeError, match="data: one split's GroupedData"):
        diagnose_groups(model, splits)
    with pytest.raises(ValueError, match="max_samples = 0"):
        diagnose_groups(model, splits.train, max_samples=0)
    with pytest.raises(TypeError, match="data: a DatasetSplits"):
        objective_for("nft", dense_model=model, data=splits.train)
    a = GroupStats(("a", "b"), np.array([2, 2]), np.array([1, 2]), np.array([1.0, 2.0]))
    b = GroupStats(("b", "a"), np.array([2, 2]), np.array([1, 2]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"different groups \(dense \['a', 'b'\], pruned \['b', 'a'\]\)"):
        pruning_impact(a, b)  # same length, other order: was paired silently
    with pytest.raises(ValueError, match="count different samples"):
        pruning_impact(a, GroupStats(("a", "b"), np.array([2, 3]), np.array([1, 2]), np.array([1.0, 2.0])))
    with pytest.raises(KeyError, match="no numeric by_group column 'acc'; allowed: n, acc_dense"):
        pruning_impact(a, a).difference("acc")


def test_a_checkpoint_with_nan_weights_or_integer_weights_is_refused_naming_file_and_tensor(pair, tmp_path):
    from safetensors.torch import load_file

    state = load_file(pair / "dense.safetensors")
    state["net.5.weight"][0, 0] = float("nan")
    save_checkpoint(tmp_path / "nan.safetensors", state)
    with pytest.raises(ValueError, match=r"nan\.safetensors: tensor net\.5\.weight holds 1 NaN/inf value\(s\); "
                                         r"the checkpoint is damaged or the model diverged"):
        diagnose_model(CFG, tmp_path / "nan.safetensors", rates=[0.5])  # not "Eigenvalues did not converge"
    with pytest.raises(ValueError, match=r"nan\.safetensors: tensor net\.5\.weight holds 1 NaN/inf"):
        audit_pair(CFG, pair / "dense.safetensors", tmp_path / "nan.safetensors", splits=["test"])  # not exit 0
    save_checkpoint(tmp_path / "int.safetensors", {k: v.to(torch.int64) for k, v in load_file(
        pair / "dense.safetensors").items()})
    with pytest.raises(ValueError, match=r"int\.safetensors: tensor net\.1\.weight is int64, the model's "
                                         r"parameter is float32"):
        audit_pair(CFG, pair / "dense.safetensors", tmp_path / "int.safetensors", splits=["test"])


def test_audit_groups_csv_holds_every_diagnostic_of_the_dense_model(pair, tmp_path):
    import numpy as np
    import pandas as pd

    cfg = {**CFG, "diagnostics": {**CFG["diagnostics"], "trace_samples": 2}}
    r = audit_pair(cfg, pair / "dense.safetensors", pair / "pruned.pth", splits=["test"])
    r.write(tmp_path)
    t = pd.read_csv(tmp_path / "audit_groups_test.csv")
    d = r.diagnostics.frame()
    for c in ("grad_norm", "hessian_top_eigenvalue", "hessian_iterations", "hessian_residual", "hessian_samples",
              "hessian_trace", "hessian_trace_se", "gini", "margin"):
        np.testing.assert_allclose(t[c].to_numpy(float), d[c].to_numpy(float), rtol=1e-12, err_msg=c)
    assert t.f_one_minus_f.isna().all()  # ten classes: f(1-f) is of binary tasks, NaN here (same columns always)
    # the columns of earlier versions keep their places; the details come last
    assert list(t.columns) == ["group", "n", "acc_dense", "acc_pruned", "loss_dense", "loss_pruned", "accuracy_drop",
                               "excess_loss", "psi", "normalized_accuracy", "grad_norm", "hessian_top_eigenvalue",
                               "hessian_trace", "gini", "margin", "bound_train", "hessian_iterations",
                               "hessian_residual", "hessian_samples", "hessian_trace_se", "f_one_minus_f"]
    assert str(t.hessian_iterations.dtype) == "int64"


def test_audit_diagnoses_with_the_models_channels_last(pair, monkeypatch):
    import prunefair.audit as audit

    seen = {}

    def record(model, data, **kw):
        seen.update(kw)
        raise RuntimeError("recorded")

    import prunefair.diagnostics

    monkeypatch.setattr(prunefair.diagnostics, "diagnose_groups", record)
    cfg = resolve_config({**CFG, "model": {**CFG["model"], "channels_last": True}})
    with pytest.raises(RuntimeError, match="recorded"):
        audit.diagnose_dense(cfg, None, load_study_data(cfg), torch.device("cpu"))
    assert seen["channels_last"] is True


def test_a_group_without_samples_on_a_split_keeps_integer_iterations_in_the_csv(tmp_path):
    import numpy as np
    import pandas as pd

    from prunefair.data.tensors import register_arrays

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 4)).astype("float32"), rng.integers(0, 2, 120)
    site = np.array(["a", "b", "c"] * 40)
    x_test, y_test = rng.normal(size=(30, 4)).astype("float32"), rng.integers(0, 2, 30)
    register_arrays("audit_empty_group", x, y, attributes={"site": site}, x_test=x_test, y_test=y_test,
                    attributes_test={"site": np.array(["a", "b"] * 15)}, overwrite=True)  # no 'c' in test
    cfg = {"data": {"dataset": "audit_empty_group", "group": "site", "val_fraction": 0.0},
           "model": {"name": "mlp", "width": 0.25},
           "diagnostics": {"max_samples": 8, "trace_samples": 0, "iterations": 3, "split": "test"}}
    torch.manual_seed(0)
    dense = build_model("mlp", num_classes=2, input_shape=(4,), width=0.25)
    pruned = copy.deepcopy(dense)
    global_magnitude_masks(pruned, 0.5).bind(pruned).apply()
    save_checkpoint(tmp_path / "d.safetensors", dense.state_dict())
    save_checkpoint(tmp_path / "p.safetensors", pruned.state_dict())
    audit_pair(cfg, tmp_path / "d.safetensors", tmp_path / "p.safetensors", splits=["test"]).write(tmp_path)
    t = pd.read_csv(tmp_path / "audit_groups_test.csv")
    assert list(t.n) == [15, 15, 0] and t.hessian_iterations.isna().tolist() == [False, False, True]
    lines = (tmp_path / "audit_groups_test.csv").read_text().splitlines()
    cols = lines[0].split(",")
    iters = [line.split(",")[cols.index("hessian_iterations")] for line in lines[1:]]
    assert all(v.isdigit() for v in iters[:2]) and iters[2] == ""  # "3", not "3.0"


def test_rewriting_an_audit_folder_removes_the_earlier_audits_split_tables(pair, tmp_path, caplog):
    (tmp_path / "audit_groups_train.csv").write_text("group,n\nx,1\n")  # an earlier audit on train and test
    (tmp_path / "notes.csv").write_text("mine\n")
    result = audit_pair(CFG, pair / "dense.safetensors", pair / "pruned.pth", splits=["test"])
    with caplog.at_level("WARNING", logger="prunefair.audit"):
        paths = result.write(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.json", "audit_groups_test.csv", "notes.csv"]
    assert set(paths) == {"json", "csv_test"}
    assert "audit_groups_train.csv: an earlier audit's (this audit.json has splits test)" in caplog.text


def test_rewriting_an_audit_folder_keeps_the_users_own_files_named_like_split_tables(pair, tmp_path):
    # a copy kept to compare with (audit_groups_test_v1.csv) is not an earlier audit's split table
    (tmp_path / "audit_groups_test_v1.csv").write_text("group,n\nx,1\n")
    (tmp_path / "audit_groups_summary.csv").write_text("mine\n")
    (tmp_path / "audit_groups_val.csv").write_text("group,n\nx,1\n")  # an earlier audit's split: removed
    audit_pair(CFG, pair / "dense.safetensors", pair / "pruned.pth", splits=["test"]).write(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "audit.json", "audit_groups_summary.csv", "audit_groups_test.csv", "audit_groups_test_v1.csv"]
    assert (tmp_path / "audit_groups_test_v1.csv").read_text() == "group,n\nx,1\n"
