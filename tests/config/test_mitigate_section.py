"""finetune.methods and the [mitigate] section: a repeated method is refused, a setting no method reads is named."""

import pytest

from prunefair.config import ConfigError, MitigateConfig, load_config, validate_config


def test_a_repeated_fine_tuning_method_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"finetune\.methods = \[\"el\", \"el\"\]: methods contain duplicates"):
        load_config(None, overrides=['finetune.methods=["el","el"]'])
    with pytest.raises(ConfigError, match=r"finetune\.methods = \[\"nft\", \"ceag\", \"nft\"\]"):
        validate_config({"finetune": {"methods": ["nft", "ceag", "nft"]}})
    assert validate_config({"finetune": {"methods": ["nft", "el"]}}).finetune.methods == ["nft", "el"]


@pytest.mark.parametrize("methods, options, expected", [
    (["nft"], {"ceag_dual_lr": 0.5}, ["mitigate.ceag_dual_lr = 0.5 has no effect: only ceag reads it, and "
                                      "finetune.methods = ['nft']"]),
    (["el_rb"], {"dual_update": "batch"}, ["mitigate.dual_update = 'batch' has no effect: only el reads it (el_rb "
                                           "takes its dual step after every mini-batch), and finetune.methods = "
                                           "['el_rb']"]),
    (["nft"], {"eps": 0.5}, ["mitigate.eps = 0.5 has no effect: only ceag, vkd and mitigation.csv (written when a "
                             "method other than nft runs) read it, and finetune.methods = ['nft']"]),
    (["nft", "el"], {"selection_tolerance": 0.1}, [
        "mitigate.selection_tolerance = 0.1 has no effect: only selection = 'val_max_psi' reads it, and "
        "mitigate.selection = 'last'"]),
    (["el"], {"eps": 0.5, "el_tolerance": 0.1}, []),  # mitigation.csv bounds psi_holds_share and el_holds_share
    (["el", "el_rb"], {"dual_update": "batch", "el_dual_lr": 0.1}, []),
    (["ceag"], {"buffer_size": 10, "selection": "val_max_psi", "selection_tolerance": 0.1}, []),
    (["nft"], {}, []),
])
def test_settings_no_method_reads_are_named(methods, options, expected):
    assert MitigateConfig(**options).ineffective(methods) == expected


def test_a_setting_no_method_reads_warns_when_the_study_is_configured():
    from prunefair.config import validate_config

    with pytest.warns(UserWarning, match=r"mitigate.ceag_dual_lr = 0.5 has no effect: only ceag reads it"):
        validate_config({"finetune": {"methods": ["nft"]}, "mitigate": {"ceag_dual_lr": 0.5}}, source="t")


def test_a_stored_config_with_a_repeated_method_still_reads_once_per_method():
    """Folders written before repeats were refused: status and report read them, each method once."""
    cfg = validate_config({"finetune": {"methods": ["nft", "el", "nft"]}}, source="t", stored=True)
    assert cfg.finetune.methods == ["nft", "el"]


def test_the_advice_leaves_out_a_dual_step_of_zero():
    from prunefair.mitigate.ceag import CEAG
    from prunefair.mitigate.equal_loss import EqualLoss
    from prunefair.measure import GroupStats

    import numpy as np

    dense = GroupStats(("a", "b"), np.array([2, 2]), np.array([1, 1]), np.array([1.0, 1.0]))
    assert CEAG(num_groups=2, dense_train=dense, dual_lr=0.0).dual_step_setting() is None
    assert EqualLoss(num_groups=2, dual_lr=0.0).dual_step_setting() is None
    assert EqualLoss(num_groups=2, dual_lr=0.5).dual_step_setting() == \
        "mitigate.el_dual_lr=0.5 with mitigate.dual_update='epoch'"
