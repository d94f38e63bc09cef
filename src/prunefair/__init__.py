"""prunefair: measure, explain and mitigate the disparate impact of pruning on groups.

Tran, Fioretto, Kim, Naidu, "Pruning has a disparate impact on model accuracy", NeurIPS 2022.

The package follows the pipeline: data -> models -> prune -> train -> measure -> study -> report -> cli.
"""

__version__ = "0.1.0"

from prunefair.config import StudyConfig, load_config  # noqa: E402
from prunefair.api import run_study  # noqa: E402

__all__ = ["StudyConfig", "load_config", "run_study", "__version__"]
