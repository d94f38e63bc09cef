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


def write_outputs(results: StudyResults, root: str | Path, *,
                  group_size_dirs: list[str | Path] | None = None) -> dict[str, Path]:
    """Tables (CSV), figures (PNG) and the self-contained report (report.html) of a study, from its results."""
    from prunefair.report import write_figures
    from prunefair.report.html import write_report
    from prunefair.report.mitigation import write_mitigation_outputs

    paths = results.write_tables(root)
    figures = write_figures(results, root) if not results.by_group.empty else {}
    paths.update(figures)
    mitigation = write_mitigation_outputs(results, root)
    paths.update(mitigation)
    from prunefair.report.diagnostics_figures import write_diagnostics_outputs

    diagnostics = write_diagnostics_outputs(results, root)  # Figures 12-13, diagnostics/theorem1/correlations.csv
    paths.update(diagnostics)
    embedded = {**figures, **{k: p for k, p in {**mitigation, **diagnostics}.items() if Path(p).suffix == ".png"}}
    paths["report"] = write_report(results, root, figures=embedded, group_size_dirs=group_size_dirs)
    return paths
