"""Orchestration: the grid of cells, the result store, running and collecting a study."""

from prunefair.study.cells import DenseCell, PruneCell, plan_cells
from prunefair.study.results import StudyResults
from prunefair.study.runner import StudyRunner, execute_study, load_study_data, resolve_device
from prunefair.study.store import Store

__all__ = ["DenseCell", "PruneCell", "Store", "StudyResults", "StudyRunner", "execute_study", "load_study_data",
           "plan_cells", "resolve_device"]
