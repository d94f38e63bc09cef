"""What a newcomer copies from the docs runs, and the study command says where its results went and what next."""

import re
from pathlib import Path

from typer.testing import CliRunner

from prunefair.cli import app
from prunefair.config import load_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--seeds", "0", "--rates", "0.5", "--set", "train.epochs=1", "--set", "finetune.epochs=1",
        "--set", "diagnostics.enabled=false"]


def _study_file_example() -> str:
    blocks = re.findall(r"```toml\n(.*?)```", (ROOT / "docs" / "study-file.md").read_text(encoding="utf-8"), re.S)
    assert blocks, "docs/study-file.md shows no study file to copy (README: prunefair study --config study.toml)"
    return blocks[0]


def test_the_study_file_that_study_file_md_shows_runs_as_study_toml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths are taken from the folder the command runs in
    Path("study.toml").write_text(_study_file_example(), encoding="utf-8")
    cfg = load_config("study.toml")
    assert cfg.output_dir == "runs/my_study" and cfg.prune.rates == [0.9, 0.99] and cfg.seeds == [0, 1]
    res = CliRunner().invoke(app, ["study", "--config", "study.toml", "--quiet", *TINY])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "runs" / "my_study" / "report.html").is_file()


def test_a_study_ends_naming_its_folder_the_report_and_how_to_rebuild_it(tmp_path):
    out = tmp_path / "s"
    res = CliRunner().invoke(app, ["study", "--out", str(out), *TINY], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert f"study folder: {out} (" in text and "group_summary.csv" in text
    assert f"next: open {out}/report.html in a browser" in text and f"`prunefair report {out}` rebuilds it" in text
