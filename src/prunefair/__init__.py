"""prunefair: measure, explain and mitigate the disparate impact of pruning on groups.

Tran, Fioretto, Kim, Naidu, "Pruning has a disparate impact on model accuracy", NeurIPS 2022.

The package follows the pipeline: data -> models -> prune -> train -> measure -> diagnostics -> mitigate ->
study -> report -> cli; each stage is a subpackage (``prunefair.diagnostics``, ``prunefair.report``, ...), all
importable after ``import prunefair``.
"""

__version__ = "0.1.0"

from prunefair.config import StudyConfig, load_config  # noqa: E402
from prunefair.api import run_study  # noqa: E402

__all__ = ["StudyConfig", "load_config", "run_study", "__version__"]

_STAGES = ("audit", "cli", "data", "diagnostics", "measure", "mitigate", "models", "prune", "report", "study",
           "train")


def __getattr__(name: str):
    """``prunefair.diagnostics`` etc. after a plain ``import prunefair``, imported on first use (the figures'
    matplotlib would add a second to every command's start)."""
    if name in _STAGES:
        import importlib

        return importlib.import_module(f"prunefair.{name}")
    raise AttributeError(f"module 'prunefair' has no attribute {name!r}")
