"""Run a study's cells and read its results, without writing tables, figures and the HTML report."""

from prunefair.config import validate_config
from prunefair.study import StudyResults, execute_study


def run_cells(cfg: dict) -> StudyResults:
    config = validate_config(cfg)
    execute_study(config)
    return StudyResults.from_store(config.output_dir, config)
