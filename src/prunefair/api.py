"""One call from Python: ``prunefair.run_study(config)`` runs a study and writes its outputs."""

from __future__ import annotations

from pathlib import Path

from prunefair.config import StudyConfig, apply_overrides, load_config, validate_config
from prunefair.progress import Progress
from prunefair.study import StudyResults, execute_study


def run_study(
    config: StudyConfig | dict | str | Path | None = None,
    *,
    overrides: list[str] | None = None,
    quiet: bool = True,
) -> StudyResults:
    """Run (or resume) a study and write its tables and figures into ``config.output_dir``.

    ``config`` is a StudyConfig, a dict in the study-file shape, or the path of a TOML study file.
    """
    if isinstance(config, (StudyConfig, dict)) or config is None:
        raw = config.to_dict() if isinstance(config, StudyConfig) else dict(config or {})
        cfg = validate_config(apply_overrides(raw, overrides), source="config")
    else:
        cfg = load_config(config, overrides=overrides)
    with Progress(quiet=quiet) as progress:
        execute_study(cfg, progress=progress)
    results = StudyResults.from_store(cfg.output_dir, cfg)
    write_outputs(results, cfg.output_dir)
    return results


def write_outputs(results: StudyResults, root: str | Path) -> dict[str, Path]:
    """Tables (CSV) and figures (PNG) of a study, from its results."""
    from prunefair.report import write_figures

    paths = results.write_tables(root)
    if not results.by_group.empty:
        paths.update(write_figures(results, root))
    return paths
