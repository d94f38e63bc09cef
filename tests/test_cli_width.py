"""Piped output (a log file, CI) is 120 columns wide (or $COLUMNS) on stdout and stderr alike: the progress log's
"resuming ..." and "config.toml differs ..." lines once wrapped at rich's default 80 mid-path."""

import os
import subprocess
import sys


def test_a_resumed_studys_log_line_is_not_folded_at_80_columns_when_piped(tmp_path):
    out = tmp_path / "a_folder_name_long_enough_to_push_the_line_past_eighty_columns"
    cmd = [sys.executable, "-m", "prunefair.cli", "study", "--out", str(out), "--seeds", "0", "--rates", "0.5",
           "--set", "train.epochs=1", "--set", "finetune.epochs=1", "--set", "diagnostics.enabled=false",
           "--set", "model.width=0.25"]
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    line = next(ln for ln in again.stderr.splitlines() if "resuming" in ln)
    assert str(out) in line and len(line) > 80  # the whole path on the line, not folded onto the next


def test_a_piped_log_line_renders_its_markup_and_keeps_its_brackets():
    """The log-file form of Progress.log renders a message's own markup ([red] ...), as console.log does on a
    terminal, and keeps literal brackets and the time."""
    import io
    import re

    from prunefair.progress import Progress

    with Progress() as progress:
        progress._rich.console.file = io.StringIO()
        progress.log("[red]cell s0_p0.9_nft failed: rates [0.5, 0.9]")
        out = progress._rich.console.file.getvalue()
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] cell s0_p0.9_nft failed: rates \[0.5, 0.9\]\n", out), out
