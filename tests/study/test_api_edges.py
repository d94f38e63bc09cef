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


def test_a_study_whose_every_cell_failed_gives_empty_tables_with_their_key_columns(tmp_path):
    """A notebook filters ``summary()`` by split: with nothing to compare (the dense cell diverged) that was a
    frame without columns, and ``s[s.split == "test"]`` raised KeyError."""
    with pytest.warns(CellsFailed):
        results = run_study(tiny_study(tmp_path, prune={"rates": [0.5]}, train={"lr": 1e12},
                                       diagnostics={"enabled": False}))
    assert results.measures.empty and results.by_group.empty
    for table in (results.summary(), results.measures, results.by_group, results.group_summary()):
        assert table[table.split == "test"].empty and "method" in table.columns


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


def test_cli_refuses_an_unwritable_out_before_computing_and_names_a_missing_folder(tmp_path):
    (tmp_path / "afile").write_text("x")
    runner = CliRunner()
    for cmd in (["diagnose", "--model", str(tmp_path / "m.safetensors")],
                ["audit", "--dense", str(tmp_path / "d.pt"), "--pruned", str(tmp_path / "p.pt")]):
        res = runner.invoke(app, [*cmd, "--out", str(tmp_path / "afile" / "x")])
        text = " ".join(res.output.split())  # the error is wrapped at the console's width
        assert res.exit_code == 2 and "cannot create the folder" in text and "Traceback" not in text
    res = runner.invoke(app, ["status", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "no such folder" in " ".join(res.output.split())  # wrapped with a long tmp path


def test_study_refuses_an_out_that_is_a_file_before_the_data_loads(tmp_path, monkeypatch):
    """`study --out FILE` loaded the data, then said "[Errno 17] File exists" (exit 1), naming no setting."""
    import prunefair.study.runner

    def no_load(cfg):
        raise AssertionError("the data was loaded")

    monkeypatch.setattr(prunefair.study.runner, "load_study_data", no_load)
    (tmp_path / "afile").write_text("x")
    args = ["study", "--seeds", "0", "--rates", "0.9", "--set", "train.epochs=1", "--set", "finetune.epochs=1",
            "--set", "diagnostics.enabled=false", "-q", "--out"]
    res = CliRunner().invoke(app, [*args, str(tmp_path / "afile")])
    squashed = "".join(res.output.split())  # (a long path is folded at the console width)
    assert res.exit_code == 2, res.output
    assert "".join(f"error: output_dir (--out) = {tmp_path / 'afile'}: is a file, not a folder".split()) in squashed
    res = CliRunner().invoke(app, [*args, str(tmp_path / "afile" / "x")])
    squashed = "".join(res.output.split())
    assert res.exit_code == 2 and "".join(f"cannot create the folder ({tmp_path / 'afile'} is a file)".split()) \
        in squashed, res.output
    assert (tmp_path / "afile").read_text() == "x"


def test_cli_prints_a_config_warning_as_one_line_and_says_what_a_rerun_keeps(tmp_path):
    out = str(tmp_path / "s")
    args = ["study", "--seeds", "0", "--rates", "0.5", "--set", "train.epochs=1", "--set", "finetune.epochs=1",
            "--set", "diagnostics.enabled=false", "--out", out]
    res = CliRunner().invoke(app, [*args, "--set", 'eval.splits=["test"]', "-q"])
    assert res.exit_code == 0, res.output
    assert "warning: diagnostics.split" not in res.output  # diagnostics off: nothing to warn about
    res = CliRunner().invoke(app, [*args[:-1], str(tmp_path / "t"), "--set", "diagnostics.enabled=true",
                                   "--set", 'eval.splits=["test"]', "-q"])
    assert "warning: diagnostics.split = 'train' is not among eval.splits" in res.output
    assert "pydantic" not in res.output and "UserWarning" not in res.output

    from prunefair.config import load_config
    from prunefair.study.runner import resume_notes

    overrides = ["seeds=[0, 1]", "prune.rates=[0.5]", "train.epochs=1", "finetune.epochs=1",
                 "diagnostics.enabled=false", f"output_dir={json.dumps(out)}", 'eval.splits=["test"]']
    notes = resume_notes(load_config(overrides=overrides, preset="digits"))  # the CLI's default preset
    assert any("2 of 4 cells are done and kept, 2 to run" in n for n in notes)
    assert any("differs from this run's settings" in n for n in notes)  # seeds [0] -> [0, 1]
    same = [o for o in overrides if not o.startswith("seeds")] + ["seeds=[0]", "run.workers=2"]
    assert not any("differs" in n for n in resume_notes(load_config(overrides=same, preset="digits")))  # [run]
    notes = resume_notes(load_config(overrides=[o for o in overrides if not o.startswith("seeds")] + ["seeds=[1]"],
                                     preset="digits"))
    assert any("2 stored cell(s) belong to other seeds" in n for n in notes)


def test_group_table_drops_the_std_when_the_terminal_is_narrow(tmp_path):
    from rich.console import Console

    from prunefair.report.terminal import print_group_table

    results = run_study(tiny_study(tmp_path, seeds=[0, 1], prune={"rates": [0.5, 0.9]},
                                   diagnostics={"enabled": False}), quiet=True)
    wide, narrow = Console(width=200, record=True), Console(width=40, record=True)
    print_group_table(results, console=wide)
    print_group_table(results, console=narrow)
    assert "±" in wide.export_text() and "±" not in narrow.export_text()
    assert "…" not in narrow.export_text()  # values are never cut
