"""One call from Python: ``prunefair.run_study(config)`` runs a study and writes its outputs."""

from __future__ import annotations

import warnings
from pathlib import Path

from prunefair.config import ConfigError, StudyConfig, apply_overrides, load_config, validate_config
from prunefair.progress import Progress
from prunefair.study import StudyResults, execute_study


def run_study(
    config: StudyConfig | dict | str | Path | None = None,
    *,
    overrides: list[str] | None = None,
    quiet: bool = True,
) -> StudyResults:
    """Run (or resume) a study and write its tables and figures into ``config.output_dir``.

    ``config`` is a StudyConfig, a dict in the study-file shape, or the path of a TOML study file. Failed cells
    (a NaN loss, say) do not raise: they are listed in ``results.failed`` and a ``CellsFailed`` warning names them.
    """
    from prunefair.study.lock import study_lock

    cfg = _resolve(config, overrides)
    with study_lock(cfg.output_dir), Progress(quiet=quiet) as progress:  # the outputs too: no other study writes them
        execute_study(cfg, progress=progress)
        results = StudyResults.from_store(cfg.output_dir, cfg)
        write_outputs(results, cfg.output_dir)
    if results.failed:
        names = ", ".join(r["name"] for r in results.failed[:5]) + (" ..." if len(results.failed) > 5 else "")
        warnings.warn(CellsFailed(f"{len(results.failed)} of {len(results.failed) + len(results.cells)} cells failed "
                                  f"({names}); their errors are in results.failed and the report"), stacklevel=2)
    return results


class CellsFailed(UserWarning):
    """Some cells of a study failed (their errors are in ``StudyResults.failed``)."""


class LeftOutResults(UserWarning):
    """``write_outputs`` found no finished result matching the study's config.toml and data.json."""


def _resolve(config, overrides) -> StudyConfig:
    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides or []):
        raise TypeError(f"overrides must be a list of 'key=value' strings, e.g. ['train.epochs=5'], got {overrides!r}")
    if config is not None and not isinstance(config, (StudyConfig, dict, str, Path)):
        raise TypeError("config must be a StudyConfig, a dict in the study-file shape or the path of a TOML study "
                        f"file, got {type(config).__name__}")
    if isinstance(config, str) and not Path(config).exists():
        from prunefair.config.load import preset_names

        if config in preset_names():  # run_study("digits"): a preset's name, read as a missing file's
            raise ConfigError(f"{config!r}: no such study file; {config!r} is a preset: "
                              f"prunefair.run_study(prunefair.load_config(preset={config!r}), overrides=[...])")
    if isinstance(config, StudyConfig) and not overrides:
        return config  # validated already (validating it again would repeat its warnings)
    if isinstance(config, (StudyConfig, dict)) or config is None:
        raw = config.to_dict() if isinstance(config, StudyConfig) else dict(config or {})
        return validate_config(apply_overrides(raw, overrides), source="config")
    return load_config(config, overrides=overrides)


def run_group_size(
    config: StudyConfig | dict | str | Path | None = None,
    *,
    group: str,
    factors: list[float],
    out: str | Path | None = None,
    match_steps: bool = True,
    overrides: list[str] | None = None,
    quiet: bool = True,
):
    """The group-size experiment (Figures 14-15): one study per upsampling factor of ``group`` in ``OUT/f<factor>``
    (resumable like any study), then ``OUT/group_size.csv`` (every group's dense gradient norm per factor and
    seed), ``OUT/group_size.json`` (the plan) and ``OUT/figures/fig14_group_size.png``. Returns the table.
    ``match_steps`` scales the dense epochs so every factor trains for about the same number of steps."""
    import json

    from prunefair.data.resample import check_factor, check_resampled_size
    from prunefair.io import atomic_write_text
    from prunefair.study.group_size import plan_group_size
    from prunefair.study.runner import load_study_data

    if isinstance(factors, (str, bytes)) or not hasattr(factors, "__iter__"):
        raise TypeError(f"factors: a list of upsampling factors such as [1, 5, 10, 20], got {factors!r}")
    factors = list(factors)
    for f in factors:  # inf or nan: refused before the data load (inf once ended in an OverflowError)
        try:
            check_factor(f, key="factors")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    group = str(group)  # a class given as the integer 8 is the group named "8"
    cfg = _resolve(config, overrides)
    train = load_study_data(cfg).train
    if group not in train.group_names:
        raise ValueError(f"group {group!r}: not a group of {cfg.data.dataset} with data.group = {cfg.data.group!r}; "
                         f"allowed: {', '.join(train.group_names)}")
    count = int(train.group_counts()[train.group_names.index(group)])
    for f in factors:  # a factor that would blow the training split up (over MAX_GROWTH x): refused before any study
        check_resampled_size(len(train), count, f, group=group, key="factors")
    with warnings.catch_warnings():  # said once for the config given; the experiment needs only gradient norms
        warnings.filterwarnings("ignore", message="diagnostics.split = .* is not among eval.splits")
        warnings.filterwarnings("ignore", message=r"mitigate\.\w+ = .* has no effect")  # said for the config given
        plans = plan_group_size(cfg, group=group, factors=factors, train_size=len(train), group_count=count,
                                out=out, match_steps=match_steps)
        for p in plans:
            run_study(p.config, quiet=quiet)
    root = Path(out if out is not None else cfg.output_dir)
    atomic_write_text(root / "group_size.json", json.dumps(
        {"group": group, "group_count": count, "train_size": len(train), "match_steps": match_steps,
         "dataset": cfg.data.dataset,
         "studies": [{"factor": p.factor, "epochs": p.epochs, "train_size": p.train_size,
                      "folder": p.config.output_dir} for p in plans]}, indent=1))
    return write_group_size_outputs(root)


def write_group_size_outputs(root: str | Path):
    """``root/group_size.csv`` and ``root/figures/fig14_group_size.png`` of a group-size experiment, rebuilt from
    its plan (``group_size.json``) and the studies it names (their stored diagnostics): what ``prunefair report
    OUT`` runs on a group-size folder. A study folder is looked for under ``root`` first (the folder may have been
    copied or moved), then where the plan says. Returns the table."""
    import json

    from prunefair.io import atomic_write_text
    from prunefair.report.group_size import figure_group_size, group_size_table

    root = Path(root)
    plan_path = root / "group_size.json"
    try:
        plan = json.loads(plan_path.read_text())
        studies = [Path(s["folder"]) for s in plan["studies"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{plan_path}: not a readable group-size plan ({exc})") from None
    dirs = [root / s.name if (root / s.name / "config.toml").is_file() else s for s in studies]
    table = group_size_table(dirs)
    atomic_write_text(root / "group_size.csv", table.to_csv(index=False))
    dataset = plan.get("dataset") or _dataset_of(dirs)  # plans written before the key was added lack it
    figure_group_size(table, root / "figures" / "fig14_group_size.png",
                      title=f"{dataset}: {plan.get('group')} upsampled; every group's gradient norm (Figures 14-15)")
    return table


def _dataset_of(dirs: list[Path]) -> str:
    for d in dirs:
        try:
            return load_config(Path(d) / "config.toml", stored=True).data.dataset
        except (OSError, ValueError):
            continue
    return "data"


def write_outputs(results: StudyResults, root: str | Path, *,
                  group_size_dirs: list[str | Path] | None = None) -> dict[str, Path]:
    """Tables (CSV), figures (PNG) and the self-contained report (report.html) of a study, from its results.

    Stored results of other settings or data are left out (``results.left_out_notes()``); when no finished result
    matches, nothing is written (the last report's files stay, as ``prunefair report`` keeps them), a
    ``LeftOutResults`` warning says why, and the result is {}."""
    from prunefair.report import write_figures

    if not results.cells and (notes := results.left_out_notes(root)):
        warnings.warn(LeftOutResults("no finished result matches config.toml and data.json, so nothing was rewritten: "
                                     + "; ".join(notes)), stacklevel=2)
        return {}
    from prunefair.report.diagnostics_figures import write_diagnostics_outputs
    from prunefair.report.html import write_report
    from prunefair.report.mitigation import write_mitigation_outputs

    paths = results.write_tables(root)
    figures = write_figures(results, root) if not results.by_group.empty else {}
    paths.update(figures)
    kept: list[str] = []  # output families whose stored data could not be read: their earlier files stay
    mitigation = _optional_outputs(write_mitigation_outputs, results, root, kept, "mitigation")
    paths.update(mitigation)
    diagnostics = _optional_outputs(write_diagnostics_outputs, results, root, kept, "diagnostics")  # Figures 12-13
    paths.update(diagnostics)
    embedded = {**figures, **{k: p for k, p in {**mitigation, **diagnostics}.items() if Path(p).suffix == ".png"}}
    drawn: dict[str, Path] = {}
    paths["report"] = write_report(results, root, figures=embedded, group_size_dirs=group_size_dirs, drawn=drawn)
    paths.update(drawn)  # figures the report drew itself are outputs too (not stale)
    _remove_stale_outputs(Path(root), paths, kept)
    return paths


def _optional_outputs(write, results: StudyResults, root, kept: list[str], what: str) -> dict:
    """The tables and figures of an optional section; when its stored data has a shape they cannot read (a
    hand-edited or damaged result.json), a warning instead, the files an earlier run wrote are kept, and the
    report still comes (its section shows the error)."""
    try:
        return write(results, root)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        warnings.warn(f"{root}: {what} tables and figures not rewritten, their stored data could not be read "
                      f"({type(exc).__name__}: {exc}); earlier files kept", stacklevel=3)
        kept.extend(_OPTIONAL[what])
        return {}


# what write_outputs may write, besides the tables and the report it always writes (figures of Figures 14-15 are
# left alone: they come from other folders)
_OPTIONAL = {"mitigation": ("mitigation.csv", "mitigation_paired.csv", "figures/mitigation_duals_p*.png"),
             "diagnostics": ("diagnostics.csv", "theorem1.csv", "correlations.csv", "figures/fig12_*.png",
                             "figures/fig13_*.png")}
_GENERATED = ("layer_sparsity.csv", "figures/fig1_*.png", *_OPTIONAL["mitigation"], *_OPTIONAL["diagnostics"])


def _remove_stale_outputs(root: Path, written: dict, kept: list[str] = ()) -> None:
    """Outputs of an earlier run that this one did not write (e.g. mitigation.csv after the mitigation methods
    were taken out of the config) would contradict the report: removed, except the ``kept`` patterns."""
    keep = {Path(p).resolve() for p in written.values()}
    for pattern in _GENERATED:
        if pattern in kept:
            continue
        for p in root.glob(pattern):
            if p.resolve() not in keep:
                p.unlink()
