"""[diagnostics] criterion: Lanczos's stop rule from a study file (keys of earlier studies hold at the default)."""

import tomllib

import pytest

from prunefair.config import load_config
from prunefair.study.cells import diagnostics_key, plan_cells


def _key(cfg):
    return diagnostics_key(cfg, plan_cells(cfg)[0][0])


def test_the_default_criterion_keeps_the_diagnostics_keys_and_config_toml_of_earlier_studies():
    # the keys these presets' dense diagnostics had before the key existed
    assert _key(load_config(None, preset="digits")) == "5f6b98b07d56"
    assert _key(load_config(None, preset="cifar10")) == "54d432b7d9c1"
    cfg = load_config(None, preset="digits", overrides=["diagnostics.criterion=eigenvalue"])
    assert _key(cfg) == "5f6b98b07d56"
    assert "criterion" not in tomllib.loads(cfg.to_toml())["diagnostics"]


def test_the_residual_criterion_changes_the_key_and_is_written():
    cfg = load_config(None, preset="digits", overrides=["diagnostics.criterion=residual"])
    assert _key(cfg) != "5f6b98b07d56"
    assert tomllib.loads(cfg.to_toml())["diagnostics"]["criterion"] == "residual"
    assert load_config(None, preset="digits", overrides=["diagnostics.criterion=residual"]).diagnostics.criterion \
        == "residual"


def test_an_unknown_criterion_is_refused_naming_the_key():
    with pytest.raises(Exception, match="criterion"):
        load_config(None, preset="digits", overrides=["diagnostics.criterion=value"])


def test_the_criterion_reaches_the_diagnostics_of_audit_and_diagnose():
    import torch

    from prunefair import audit
    from prunefair.study.runner import build_study_model, load_study_data

    out = {}
    for crit in ("eigenvalue", "residual"):
        cfg = load_config(None, preset="digits", overrides=[f"diagnostics.criterion={crit}",
                                                             "diagnostics.trace_samples=0", "diagnostics.max_samples=32"])
        data = load_study_data(cfg)
        torch.manual_seed(0)
        model = build_study_model(cfg, data)
        diag = audit.diagnose_dense(cfg, model, data, torch.device("cpu"))
        out[crit] = diag
        assert diag.settings["criterion"] == crit
    # the residual rule stops later: at least as many products for every group, more for some
    hvps = {c: [g["eigen"]["hvps"] for g in d.to_dict()["per_group"]] for c, d in out.items()}
    assert all(r >= e for r, e in zip(hvps["residual"], hvps["eigenvalue"]))
    assert sum(hvps["residual"]) > sum(hvps["eigenvalue"])
