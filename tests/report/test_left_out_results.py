"""Stored results the report cannot use (other settings than config.toml, other data than data.json), planned cells
still pending, a folder the report cannot write, and the reading's words for accuracy that rose."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from prunefair.cli import app
from prunefair.report.html import write_report
from prunefair.report.terminal import group_table
from prunefair.study import StudyResults


def _squash(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture()
def folder(study, tmp_path) -> Path:
    root = tmp_path / "study"
    shutil.copytree(study[0], root)  # with the outputs `prunefair study` wrote
    return root


def _edit_section(root: Path, section: str, key: str, value: str) -> None:
    """Set ``key = value`` in ``[section]`` of the stored config.toml (as a hand edit after the run)."""
    text = (root / "config.toml").read_text()
    head, _, rest = text.partition(f"[{section}]\n")
    body, sep, tail = rest.partition("\n[")
    body, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", body, flags=re.M)
    assert n == 1, (section, key)
    (root / "config.toml").write_text(f"{head}[{section}]\n{body}{sep}{tail}")


def _outputs(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "cells" not in p.parts}


EDITS = {
    "config edited": (lambda root: _edit_section(root, "train", "epochs", "4"),
                      "6 stored result(s) are of other settings than config.toml (edited after they ran"),
    "data changed": (lambda root: (root / "data.json").write_text(json.dumps(
        {**json.loads((root / "data.json").read_text()), "fingerprint": "0" * 16})),
        "6 stored result(s) were computed on other data than data.json records"),
}


@pytest.mark.parametrize("edit", EDITS)
def test_report_refuses_to_empty_the_outputs_when_no_stored_result_matches(folder, edit):
    """`report` exited 0, rewrote every table empty, deleted the figures and the diagnostics CSVs and said "No
    pruned cell has finished yet"; status showed plain pending cells."""
    change, said = EDITS[edit]
    before = _outputs(folder)
    change(folder)
    res = CliRunner().invoke(app, ["report", str(folder), "-q"])
    assert res.exit_code == 1, res.output
    out = _squash(res.output)
    assert said in out and "`prunefair study` recomputes them" in out and "Traceback" not in out
    assert "s0_dense, s1_dense, s0_p0.5_nft, s0_p0.9_nft, s1_p0.5_nft and 1 more" in out
    assert "nothing was rewritten" in out
    after = _outputs(folder)
    assert {k: v for k, v in after.items() if k not in ("config.toml", "data.json")} == \
        {k: v for k, v in before.items() if k not in ("config.toml", "data.json")}
    st = CliRunner().invoke(app, ["status", str(folder)])
    assert st.exit_code == 0, st.output
    if edit == "config edited":
        assert "0 done" in st.output and "6 pending" in st.output
        assert "6 of the pending cells hold a stored result of other settings than" in _squash(st.output)
        assert "a result of other settings than config.toml is stored" in _squash(st.output)
    else:
        assert "6 outdated" in st.output
        assert "6 stored result(s) were computed on other data than" in _squash(st.output)
    from prunefair.api import LeftOutResults, write_outputs  # from Python: nothing written either, and a warning

    with pytest.warns(LeftOutResults, match="no finished result matches config.toml and data.json, so nothing was"):
        assert write_outputs(StudyResults.from_store(folder), folder) == {}
    assert {k: v for k, v in _outputs(folder).items() if k not in ("config.toml", "data.json")} == \
        {k: v for k, v in before.items() if k not in ("config.toml", "data.json")}


def test_report_of_a_partly_edited_config_writes_what_matches_and_names_the_rest(folder):
    _edit_section(folder, "finetune", "epochs", "2")  # the pruning cells' settings only: the dense cells still hold
    res = CliRunner().invoke(app, ["report", str(folder), "-q"])
    assert res.exit_code == 1, res.output
    out = _squash(res.output)
    assert "4 stored result(s) are of other settings than config.toml" in out
    assert "s0_p0.5_nft, s0_p0.9_nft, s1_p0.5_nft, s1_p0.9_nft" in out and "restore config.toml" in out
    results = StudyResults.from_store(folder)
    assert set(results.measures.stage) == {"dense"} and results.other_settings == results.pending
    assert "4 of 6 planned cells are pending" in (folder / "report.html").read_text()


def test_a_missing_cell_is_named_pending_in_the_report_and_marked_in_the_terminal_table(folder):
    """A kill -9 leaves a cell without result.json: the report said "All 5 stored cells ... finished" and the
    terminal table's title said "mean±std over 2 seeds" over a column of one seed, unmarked."""
    (folder / "cells" / "s1_p0.9_nft" / "result.json").unlink()
    res = CliRunner().invoke(app, ["report", str(folder)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output  # pending is not an error: a study may still be running into the folder
    out = _squash(res.output)
    assert "1 of 6 planned cells is pending (s1_p0.9_nft), not in the tables" in out
    assert "90%*" in res.output and "* 90%: 1 of 2 seeds" in out
    html = (folder / "report.html").read_text()
    assert "1 of 6 planned cells is pending (s1_p0.9_nft) and missing from these numbers" in html
    assert "1 pending" in html  # the badge
    assert ">Failed and pending cells<" in html  # the section's title (it said "Failed cells")
    console = Console(record=True, width=200)
    console.print(group_table(StudyResults.from_store(folder)))
    text = console.export_text()
    assert "90%*" in text and "50%*" not in text and "dense*" not in text


def _make_readonly(root: Path) -> bool:
    if os.geteuid() != 0:
        root.chmod(0o555)
        return True
    return subprocess.run(["chattr", "+i", str(root)], capture_output=True).returncode == 0


def _undo_readonly(root: Path) -> None:
    if os.geteuid() != 0:
        root.chmod(0o755)
    else:
        subprocess.run(["chattr", "-i", str(root)], capture_output=True)


def test_report_on_a_folder_it_cannot_write_says_so_in_one_line(folder):
    """It crashed with a 115-line traceback ending in PermissionError (exit 1)."""
    if not _make_readonly(folder):
        pytest.skip("cannot make a folder read-only here (chattr +i refused)")
    try:
        res = CliRunner().invoke(app, ["report", str(folder), "-q"])
    finally:
        _undo_readonly(folder)
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") == 1 and "Traceback" not in res.output, res.output
    assert f"{folder / 'table.csv'}: cannot write" in res.output
    assert f"check that {folder} and what is in it can be written" in res.output
    assert "2 when the folder cannot be read or written" in _squash(CliRunner().invoke(
        app, ["report", "--help"], env={"COLUMNS": "200"}).output)


def _edit_pruned(root: Path, fn) -> None:
    for p in (root / "cells").glob("*_p*/result.json"):
        r = json.loads(p.read_text())
        fn(r)
        p.write_text(json.dumps(r))


def test_reading_says_rose_for_accuracy_gained_after_fine_tuning(folder):
    """It said "overall accuracy stays within 1 point of the dense model" when accuracy rose 5 points, and "test
    accuracy fell by -1.4 points"."""
    def perfect(r):  # every pruned model right on every test sample: accuracy rises above the dense model's
        r["metrics"]["test"]["correct"] = list(r["metrics"]["test"]["count"])

    _edit_pruned(folder, perfect)
    results = StudyResults.from_store(folder)
    m = results.measures
    gain = -m[(m.stage == "finetuned") & (m.split == "test")].groupby("sparsity").accuracy_drop.mean()
    assert (gain > 0.01).all()
    html = write_report(results, folder).read_text()
    reading = _squash(html.split('<section id="reading">')[1].split("</section>")[0])
    assert "within 1 point" not in reading and "fell by -" not in reading
    assert f"test accuracy rose by {gain[0.9] * 100:.1f} points" in reading
    assert "is never more than 1 point below the dense model&#x27;s at every rate studied, up to 90% sparsity, and " \
           f"rises above it by up to {gain.max() * 100:.1f} points" in reading


def test_reading_names_the_first_rate_where_accuracy_falls_by_more_than_1_point():
    """It said "already falls by more than 1 point at 90%" when 50% was within 1 point and 95% too."""
    from prunefair.report.narrative import _overall_sentence

    ok_bad_ok = _overall_sentence("nft", [(0.5, 0.0), (0.7, 0.03), (0.9, 0.005)])
    assert "up to 50% sparsity; the first rate where it falls by more than 1 point is 70%" in ok_bad_ok
    assert "already" not in ok_bad_ok
    assert "already falls by more than 1 point at 50% sparsity, the lowest rate studied" in \
        _overall_sentence("nft", [(0.5, 0.02), (0.9, 0.0)])
    gain_then_bad = _overall_sentence("nft", [(0.5, -0.03), (0.9, 0.05)])
    assert "within 1 point" not in gain_then_bad and "rises above it by up to 3.0 points (at 50%)" in gain_then_bad
    assert "stays within 1 point of the dense model at every rate studied, up to 90%" in \
        _overall_sentence("nft", [(0.5, -0.005), (0.9, 0.01)])


def test_a_drop_that_rounds_to_zero_is_not_printed_as_minus_zero():
    from prunefair.report.narrative import _moved
    from prunefair.report.stats import Interval

    assert _moved(Interval(-0.0004, 0.0, -0.0004, -0.0004, 1, 0.95)) == "changed by less than 0.1 points"
    assert _moved(Interval(0.0004, 0.0, 0.0004, 0.0004, 1, 0.95)) == "changed by less than 0.1 points"
    assert _moved(Interval(-0.014, 0.0, -0.014, -0.014, 1, 0.95)).startswith("rose by 1.4 points")


def test_one_rate_studied_is_the_only_rate_not_the_lowest():
    from prunefair.report.narrative import _overall_sentence

    assert _overall_sentence("nft", [(0.95, 0.05)]).endswith("at 95% sparsity, the only rate studied.")
    assert _overall_sentence("nft", [(0.9, 0.03), (0.95, 0.05)]).endswith("the lowest rate studied.")
    # 1.004 points prints as 1.0: judged as printed, so "within 1 point", not "rises above it by up to 1.0"
    assert "stays within 1 point" in _overall_sentence("nft", [(0.5, -0.01004), (0.9, 0.01004)])
