"""The report as a browser shows it: headless Chromium renders report.html (no network) and we check the DOM
and a screenshot. Skipped, with the reason, where Chromium is not installed (.ci/run installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest


CANDIDATES = ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or "")
CHROMIUM = next((p for p in CANDIDATES if p and Path(p).is_file()), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (/usr/bin/chromium absent); "
                                                         "install it with: apt-get install -y chromium")


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report(study) -> Path:
    return study[0] / "report.html"  # written by run_study (api.write_outputs)


def test_chromium_dom_shows_figures_and_tables(report, tmp_path):
    out = _chromium(tmp_path / "profile", "--dump-dom", report.as_uri())
    assert out.returncode == 0, out.stderr[-2000:]
    dom = out.stdout
    assert "What the numbers show" in dom and "Per-group accuracy" in dom and "Settings" in dom
    imgs = re.findall(r'<img[^>]+src="(data:image/png;base64,[^"]+)"', dom)
    assert len(imgs) >= 1 and all(len(src) > 10_000 for src in imgs)
    assert len(re.findall(r"<table", dom)) >= 5
    assert "<td>overall accuracy</td>" in dom and "95% CI" in dom


def test_chromium_screenshot_is_a_real_page(report, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    out = _chromium(tmp_path / "profile", "--hide-scrollbars", "--window-size=1280,2400", f"--screenshot={shot}",
                    report.as_uri())
    assert out.returncode == 0 and shot.is_file(), out.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.shape == (2400, 1280)
    # a blank or error page is almost uniform; the report has text, tables, tinted cells and a figure
    assert img.std() > 20 and (img < 128).mean() > 0.01 and len(np.unique(img)) > 50
