"""The Python entry point's edges: wrong arguments, failed cells, studies of arrays registered elsewhere,
diagnostics turned off, a wrong data folder."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from prunefair import run_study
from prunefair.api import CellsFailed
from prunefair.cli import app
from prunefair.data import register_arrays
from tests.conftest import tiny_study

ROOT = Path(__file__).resolve().parents[2]


def test_wrong_arguments_are_named(tmp_path):
    with pytest.raises(TypeError, match="overrides must be a list of 'key=value' strings"):
        run_study(tiny_study(tmp_path), overrides="train.epochs=1")
    with pytest.raises(TypeError, match="config must be a StudyConfig, a dict .* got int"):
        run_study(123)


def test_failed_cells_warn_from_python(tmp_path):
    with pytest.warns(CellsFailed, match=r"1 of 2 cells failed \(s0_p0.5_nft\)"):
        results = run_study(tiny_study(tmp_path, prune={"rates": [0.5]}, finetune={"lr": 1e12},
                                       diagnostics={"enabled": False}))
    assert [r["name"] for r in results.failed] == ["s0_p0.5_nft"]
    assert "1 failed" in repr(results) and len(repr(results)) < 300


def test_a_study_of_registered_arrays_reads_back_in_another_process(tmp_path):
    """report, status and StudyResults.from_store need only the folder, not the arrays' registration."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype("float32")
    register_arrays("arrays_of_another_process", x, (x[:, 0] > 0).astype(int),
                    attributes={"grp": np.array(["A", "B"])[rng.integers(0, 2, 200)]})
    cfg = tiny_study(tmp_path, data={"dataset": "arrays_of_another_process", "group": "grp"},
                     prune={"rates": [0.5]}, diagnostics={"enabled": False})
    run_study(cfg)
    out = cfg["output_dir"]
    code = ("import sys\nfrom prunefair.study import StudyResults\n"
            f"r = StudyResults.from_store({out!r})\nprint(len(r.cells), sorted(set(r.by_group.group)))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["2", "['A',", "'B']"]
    for args in (["status", out], ["report", out, "--quiet"]):
        proc = subprocess.run([sys.executable, "-m", "prunefair.cli", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)


def test_turning_diagnostics_off_removes_them_from_the_outputs(tmp_path):
    cfg = tiny_study(tmp_path, prune={"rates": [0.5]}, diagnostics={"trace_samples": 0, "max_samples": 16})
    root = Path(cfg["output_dir"])
    run_study(cfg)
    assert (root / "diagnostics.csv").is_file() and (root / "figures" / "fig12_gradient_hessian.png").is_file()
    cfg["diagnostics"]["enabled"] = False
    results = run_study(cfg)
    assert not (root / "diagnostics.csv").exists() and not list(root.glob("figures/fig1[23]_*.png"))
    html = (root / "report.html").read_text()
    assert '<section id="diagnostics">' not in html and '<section id="theorem1">' not in html
    assert all("diagnostics" not in r for r in results.cells)
    stored = json.loads((root / "cells" / "s0_dense" / "result.json").read_text())
    assert "grad_norm" in stored["diagnostics"]  # kept in the store: turning them on again reuses them


def test_a_wrong_data_folder_leaves_no_folder_and_no_resume_hint(tmp_path):
    out = tmp_path / "never"
    res = CliRunner().invoke(app, ["study", "--preset", "utkface_ethnicity", "--set", f"data.root={tmp_path / 'no'}",
                                   "--out", str(out), "--quiet"])
    text = " ".join(res.output.split())  # rich wraps long lines
    assert res.exit_code == 1 and "UTKFace folder not found" in text
    assert "rerun the same command to resume" not in text
    assert not out.exists()
    out.mkdir()
    (out / ".lock").write_text("{}")  # a study killed (kill -9) while its data loaded
    res = CliRunner().invoke(app, ["status", str(out)])
    assert res.exit_code == 2 and "no config.toml, so not a study folder" in " ".join(res.output.split())


def test_the_cli_shows_a_config_warning_once(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "prunefair.cli", "study", "--preset", "digits", "--out",
                           str(tmp_path / "s"), "--seeds", "0", "--rates", "0.5", "--set", "train.epochs=1",
                           "--set", 'eval.splits=["test"]', "--quiet"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("is not among eval.splits") == 1


def test_run_group_size_checks_its_arguments(tmp_path):
    from prunefair.api import run_group_size

    cfg = tiny_study(tmp_path)
    with pytest.raises(TypeError, match=r"factors: a list of upsampling factors such as \[1, 5, 10, 20\], got '1,5'"):
        run_group_size(cfg, group="8", factors="1,5")
    with pytest.raises(ValueError, match=r"group '99': not a group of digits"):  # an integer is a group's name
        run_group_size(cfg, group=99, factors=[1])
