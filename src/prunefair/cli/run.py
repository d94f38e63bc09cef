"""`prunefair study` and `prunefair group-size`: run a study (or one a factor), resume it, say what failed."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import List, Optional

import typer

from prunefair.cli.common import (
    INTERRUPTED, app, cell_problems, console, csv_override, escape, fail, flag_overrides, print_problems, writable,
)

@app.command()
def study(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Study file (TOML). See docs/study-file.md."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="A shipped preset (see `prunefair presets`)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Output folder (overrides output_dir; default: the "
                                      "study file's or preset's, e.g. runs/digits for the digits preset)."),
    seeds: Optional[str] = typer.Option(None, help="Comma-separated seeds, e.g. 0,1,2 (overrides seeds; default: the "
                                        "study file's or preset's)."),
    rates: Optional[str] = typer.Option(None, help="Comma-separated pruning rates, e.g. 0.5,0.9 (overrides "
                                        "prune.rates; default: the study file's or preset's)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda or auto (overrides device)."),
    set_: List[str] = typer.Option([], "--set", "-s", help="Override any field: --set train.epochs=5 (repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or table; for scripts."),
    executor: Optional[str] = typer.Option(None, help="local (default) or ray (overrides run.executor)."),
    address: Optional[str] = typer.Option(None, help="Ray cluster address, e.g. ray://head:10001 or auto "
                                                     "(overrides run.address)."),
    workers: Optional[int] = typer.Option(None, help="Local worker processes (overrides run.workers)."),
) -> None:
    """Train (or reuse) dense models, prune at every rate, fine-tune, measure every group, write the study folder.

    Without --config or --preset it runs the digits preset. Rerunning the same command resumes: finished cells are
    kept, failed or missing ones are run. Exits with 1 when a cell failed (the others are kept) or a file could not
    be read or written (a missing data folder, a full disk: named on stderr), 2 on a bad setting or data the
    settings cannot use.
    """
    from prunefair.api import CellsFailed, run_study
    from prunefair.config import ConfigError, load_config
    from prunefair.study.lock import StudyLocked

    # failed cells are listed below with their errors; set before any warning is shown (changing the filters later
    # makes Python forget which warnings it has shown, and the config's would show twice)
    warnings.filterwarnings("ignore", category=CellsFailed)
    overrides = list(set_)
    overrides += csv_override("seeds", seeds) + csv_override("prune.rates", rates)
    overrides += flag_overrides(output_dir=out, device=device, run__executor=executor, run__address=address,
                                 run__workers=workers)
    if config is None and preset is None:
        preset = "digits"
    try:
        cfg = load_config(config, overrides=overrides, preset=preset)
    except ConfigError as exc:
        fail(str(exc))
    # a folder that cannot be made or written: said now, naming the setting, not after the data has loaded
    writable(Path(cfg.output_dir), f"output_dir{' (--out)' if out is not None else ''} = {cfg.output_dir}")
    if cfg.run.executor == "local":  # a setting this machine cannot honour: exit 2, as group-size and diagnose do
        from prunefair.study import resolve_device  # (a Ray cluster's workers may have the GPU its head lacks)

        try:
            resolve_device(cfg.device)
        except RuntimeError as exc:
            fail(str(exc))
    try:
        results = run_study(cfg, quiet=quiet)
    except StudyLocked as exc:  # another run has the folder: nothing of it was touched
        fail(str(exc), 1)
    except (OSError, ValueError, RuntimeError) as exc:  # a missing data folder, a full disk, a lost worker
        started = (Path(cfg.output_dir) / "cells").is_dir()  # else there is nothing to resume: the setting is wrong
        fail(_resume_message(exc, started, "cells"), 2 if _refused(exc, started) else 1)
    except KeyboardInterrupt:  # here, not in main(): typer turns it into a bare exit 130 before main sees it
        fail(INTERRUPTED, 130)
    if not quiet:
        from prunefair.report import print_group_table

        print_group_table(results, console=console)
        folder = escape(str(cfg.output_dir))
        console.print(f"study folder: [bold]{folder}[/] (table.csv, measures.csv, summary.csv, group_summary.csv, "
                      f"figures/fig1_group_accuracy.png, report.html)\nnext: open {folder}/report.html in a browser "
                      "(every result on one page); `prunefair report " + folder + "` rebuilds it",
                      highlight=False, soft_wrap=True)  # a path is not folded mid-name
    from prunefair.report.explain import diagnostics_errors

    problems = cell_problems(results)
    problems += [f"diagnostics of {name} failed: {error}" for name, error in diagnostics_errors(results.cells)]
    print_problems(problems)
    if problems:
        raise typer.Exit(1)


def _refused(exc: BaseException, started: bool) -> bool:
    """A setting or the data refused (exit 2): any ValueError before the first cell, and the data at any time
    (rerunning as is would refuse it again)."""
    from prunefair.data import DataRefused

    return isinstance(exc, DataRefused) or (isinstance(exc, ValueError) and not started)


def _resume_message(exc: BaseException, started: bool, what: str) -> str:
    from prunefair.data import DataRefused

    if not started or "rerun the same command to resume" in str(exc):  # (a lost worker's message says it already)
        return str(exc)
    if isinstance(exc, DataRefused):
        return f"{exc}\n(the data was refused before anything ran on it; finished {what} are kept)"
    return f"{exc}\n(finished {what} are kept; rerun the same command to resume)"


@app.command("group-size", short_help="E3 (Figures 14-15): one study per upsampling factor of a group, then every "
                                       "group's gradient norm against the factor. Rerunning resumes.")
def group_size(
    group: str = typer.Option(..., "--group", "-g", help="The group to upsample, by name (e.g. female, 0-2)."),
    factors: str = typer.Option("1,5,10,20", help="Comma-separated upsampling factors; 1 is the plain study."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Study file (TOML)."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="A shipped preset (see `prunefair presets`)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Output folder: OUT/f<factor> per study, "
                                      "OUT/group_size.csv, OUT/group_size.json (the plan) and "
                                      "OUT/figures/fig14_group_size.png."),
    seeds: Optional[str] = typer.Option(None, help="Comma-separated seeds (overrides seeds)."),
    rates: Optional[str] = typer.Option(None, help="Comma-separated pruning rates (overrides prune.rates)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda or auto (overrides device)."),
    set_: List[str] = typer.Option([], "--set", "-s", help="Override any field (repeatable)."),
    match_steps: bool = typer.Option(True, "--match-steps/--same-epochs", help="Scale the dense epochs so every "
                                     "factor trains about as many steps as factor 1 (default), or keep train.epochs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or tables: print only the output "
                               "paths (as report --quiet)."),
) -> None:
    """E3 (Figures 14-15, Proposition 1): one study per upsampling factor of one group, then every group's dense
    gradient norm against the factor. Rerunning resumes."""
    from prunefair.api import run_group_size
    from prunefair.config import ConfigError, load_config

    overrides = list(set_) + csv_override("seeds", seeds) + csv_override("prune.rates", rates)
    overrides += flag_overrides(output_dir=out, device=device)
    try:
        values = [float(f) for f in factors.split(",") if f.strip()]
    except ValueError:
        fail(f"--factors {factors!r}: expected comma-separated numbers, e.g. 1,5,10,20")
    try:
        cfg = load_config(config, overrides=overrides, preset=preset or ("digits" if config is None else None))
    except ConfigError as exc:
        fail(str(exc))
    writable(Path(cfg.output_dir), f"output_dir{' (--out)' if out is not None else ''} = {cfg.output_dir}")
    try:
        table = run_group_size(cfg, group=group, factors=values, match_steps=match_steps, quiet=quiet)
    except ConfigError as exc:
        fail(str(exc))
    except (OSError, ValueError, RuntimeError) as exc:
        started = any(Path(cfg.output_dir).glob("f*/cells"))  # else nothing to resume: the setting is wrong
        fail(_resume_message(exc, started, "studies"), 2 if _refused(exc, started) or not started else 1)
    except KeyboardInterrupt:
        fail(INTERRUPTED, 130)
    means = table.groupby(["factor", "group"]).grad_norm.mean().unstack()
    if not quiet:
        console.print(means.round(4).to_string())
    console.print(f"group-size experiment: {cfg.output_dir}/group_size.csv, "
                  f"{cfg.output_dir}/figures/fig14_group_size.png", highlight=False, soft_wrap=True)
