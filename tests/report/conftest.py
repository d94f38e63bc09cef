"""One tiny digits study (2 seeds, rates 0.5 and 0.9), run once and shared by the report tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunefair import run_study
from prunefair.study import StudyResults
from tests.conftest import tiny_study


@pytest.fixture(scope="session")
def study(tmp_path_factory) -> tuple[Path, StudyResults]:
    """(study folder, results); tests that modify the folder copy it first."""
    tmp = tmp_path_factory.mktemp("report")
    results = run_study(tiny_study(tmp, seeds=[0, 1]))
    return tmp / "study", results
