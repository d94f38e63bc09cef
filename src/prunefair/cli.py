"""The command line: parses arguments and calls the Python API, nothing more."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="prunefair: measure, explain and mitigate the disparate impact of pruning on groups "
         "(Tran et al., NeurIPS 2022).",
)
console = Console() if Console().is_terminal else Console(width=120)
err_console = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def _csv_override(key: str, text: Optional[str]) -> list[str]:
    return [] if text is None else [f"{key}=[{text}]"]


@app.command()
def study(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Study file (TOML). See docs/study-file.md."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="A shipped preset (see `prunefair presets`)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Output folder (overrides output_dir)."),
    seeds: Optional[str] = typer.Option(None, help="Comma-separated seeds, e.g. 0,1,2 (overrides seeds)."),
    rates: Optional[str] = typer.Option(None, help="Comma-separated pruning rates, e.g. 0.5,0.9 (overrides prune.rates)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda or auto (overrides device)."),
    set_: List[str] = typer.Option([], "--set", "-s", help="Override any field: --set train.epochs=5 (repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or table; for scripts."),
) -> None:
    """Train (or reuse) dense models, prune at every rate, fine-tune, measure every group, write the study folder.

    Rerunning the same command resumes: finished cells are kept, failed or missing ones are run.
    """
    from prunefair.api import run_study
    from prunefair.config import ConfigError, load_config

    overrides = list(set_)
    overrides += _csv_override("seeds", seeds) + _csv_override("prune.rates", rates)
    if out is not None:
        overrides.append(f'output_dir="{out}"')
    if device is not None:
        overrides.append(f'device="{device}"')
    if config is None and preset is None:
        preset = "digits"
    try:
        cfg = load_config(config, overrides=overrides, preset=preset)
    except ConfigError as exc:
        _fail(str(exc))
    results = run_study(cfg, quiet=quiet)
    if not quiet:
        from prunefair.report import print_group_table

        print_group_table(results, console=console)
        console.print(f"study folder: [bold]{cfg.output_dir}[/] (table.csv, measures.csv, summary.csv, "
                      f"figures/fig1_group_accuracy.png)")
    if results.failed:
        for r in results.failed:
            err_console.print(f"[red]failed cell {r['name']}: {r.get('error')}")
        raise typer.Exit(1)


@app.command()
def report(
    study_dir: Path = typer.Argument(..., help="A study folder written by `prunefair study`."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Rebuild the tables and figures of a study folder from its stored results."""
    from prunefair.api import write_outputs
    from prunefair.study import StudyResults

    try:
        results = StudyResults.from_store(study_dir)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    paths = write_outputs(results, study_dir)
    if not quiet:
        from prunefair.report import print_group_table

        if not results.by_group.empty:
            print_group_table(results, console=console)
        for p in paths.values():
            console.print(f"wrote {p}")


@app.command()
def status(study_dir: Path = typer.Argument(..., help="A study folder.")) -> None:
    """Show which cells of a study are done, failed or pending."""
    from rich.table import Table

    from prunefair.config import load_config
    from prunefair.study import Store, plan_cells

    cfg_path = study_dir / "config.toml"
    if not cfg_path.is_file():
        _fail(f"{cfg_path}: not a study folder (no config.toml)")
    cfg = load_config(cfg_path)
    store = Store(study_dir)
    dense, prune = plan_cells(cfg)
    table = Table(title=f"{cfg.name}: {study_dir}")
    for col in ("cell", "state", "detail"):
        table.add_column(col)
    counts: dict[str, int] = {}
    for c in [*dense, *prune]:
        r = store.read_result(c.name)
        if r is None or r.get("key") != c.key:
            state, detail = "pending", ""
        else:
            state, detail = r.get("status", "?"), r.get("error", "")
        counts[state] = counts.get(state, 0) + 1
        table.add_row(c.name, state, detail)
    console.print(table)
    console.print(", ".join(f"{v} {k}" for k, v in sorted(counts.items())))


@app.command()
def presets() -> None:
    """List the study presets shipped with prunefair."""
    from prunefair.config import preset_names, read_preset

    for name in preset_names():
        console.print(f"[bold]{name}[/]: {read_preset(name).get('name', name)}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted; rerun the same command to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
