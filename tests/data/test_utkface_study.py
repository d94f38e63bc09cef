import json

import pytest

from prunefair import run_study
from prunefair.config import load_config
from prunefair.study.cells import plan_cells
from tests.conftest import tiny_study


@pytest.mark.slow
def test_utkface_study_runs_end_to_end(shared_data, tmp_path):
    cfg = tiny_study(tmp_path, data={"dataset": "utkface", "root": str(shared_data / "utkface"), "target": "ethnicity",
                                     "group": "ethnicity*gender", "image_size": 16, "limit": 300,
                                     "cache_dir": str(tmp_path / "cache"),
                                     "resample": {"group": "Black/female", "factor": 2}},
                     model={"name": "cnn", "width": 0.25}, train={"epochs": 1, "batch_size": 64},
                     prune={"rates": [0.9]}, finetune={"epochs": 1})
    r = run_study(cfg)
    out = tmp_path / "study"
    groups = set(r.by_group.group)
    assert "White/male" in groups and "Others/female" in groups and len(groups) == 10
    described = json.loads((out / "data.json").read_text())
    assert described["names_without_race"] == 3 and described["limit"] == 300
    assert described["resample"]["group"] == "Black/female"
    assert described["resample"]["after"] == 2 * described["resample"]["before"]
    assert (out / "summary.csv").is_file() and list((tmp_path / "cache").glob("images-*.npy"))


def test_preset_needs_a_root_and_cache_dir_is_not_in_cell_keys(tmp_path):
    cfg = load_config(preset="utkface_ethnicity")
    assert cfg.data.dataset == "utkface" and cfg.data.root is None and cfg.model.name == "cnn"
    assert cfg.prune.rates == [0.9, 0.95, 0.98] and cfg.train.epochs == 12
    with pytest.raises(ValueError, match="needs data.root"):
        from prunefair.study import load_study_data

        load_study_data(cfg)
    a = load_config(preset="utkface_ethnicity", overrides=["data.root=/x", "data.cache_dir=/a", "data.workers=1"])
    b = load_config(preset="utkface_ethnicity", overrides=["data.root=/x", "data.cache_dir=/b"])
    c = load_config(preset="utkface_ethnicity", overrides=["data.root=/x", "data.limit=100"])
    assert [d.key for d in plan_cells(a)[0]] == [d.key for d in plan_cells(b)[0]]
    assert [d.key for d in plan_cells(a)[0]] != [d.key for d in plan_cells(c)[0]]
