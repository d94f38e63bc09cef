"""`prunefair report` and `prunefair status`: read a study folder, rebuild its outputs, say each cell's state."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from prunefair.cli.common import (
    app, cell_problems, console, err_console, escape, fail, os_error, print_problems, refuse_a_file,
)

@app.command(short_help="Rebuild the tables, figures and self-contained report.html of a study folder from its "
                        "stored results.")
def report(
    study_dir: Path = typer.Argument(..., metavar="STUDY_DIR", help="A study folder written by `prunefair study`."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the report's path."),
    group_size: List[Path] = typer.Option([], "--group-size", help="Study folders of a group-size experiment "
                                          "(one per data.resample.factor; repeatable): adds Figures 14-15."),
) -> None:
    """Rebuild the tables, figures and the self-contained HTML report (STUDY_DIR/report.html) of a study folder
    from its stored results; prints the report's path.

    Exits with 1 when a cell failed or is corrupt, or holds a result of other settings than config.toml or of
    other data than data.json (each is named on stderr, and left out of the tables written; when no stored result
    matches, nothing is rewritten), 2 when the folder cannot be read or written.
    """
    from prunefair.api import write_group_size_outputs, write_outputs
    from prunefair.study import StudyResults

    refuse_a_file(study_dir)
    if not (study_dir / "config.toml").is_file() and (study_dir / "group_size.json").is_file():
        try:  # a group-size experiment's folder: its table and figure, from the studies it names
            write_group_size_outputs(study_dir)
        except (FileNotFoundError, ValueError) as exc:
            fail(str(exc))
        except OSError as exc:
            fail(os_error(exc, study_dir), one_line=True)
        console.print(f"group-size experiment: {study_dir / 'group_size.csv'}, "
                      f"{study_dir / 'figures' / 'fig14_group_size.png'}", highlight=False, soft_wrap=True)
        return
    try:
        results = StudyResults.from_store(study_dir)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:  # a folder or file this user cannot read
        fail(os_error(exc, study_dir, "read"), one_line=True)
    left_out = results.left_out_notes(study_dir)  # done results of other settings or data: not this config's
    if left_out and not results.cells:  # nothing of config.toml to report: the last report's files stay as they are
        print_problems(cell_problems(results) + left_out + [
            f"{study_dir}: no finished result matches config.toml and data.json, so nothing was rewritten (the tables, "
            "figures and report.html are still those of the last report)"])
        raise typer.Exit(1)
    try:
        paths = write_outputs(results, study_dir, group_size_dirs=group_size or None)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:  # e.g. a read-only folder: the file that could not be written, no traceback
        fail(os_error(exc, study_dir), one_line=True)
    if not quiet:
        from prunefair.report import print_group_table

        if not results.by_group.empty:
            print_group_table(results, console=console)
        for k, p in paths.items():
            if k != "report":
                console.print(f"wrote {p}")
    console.print(f"report: {paths['report']}", highlight=False, soft_wrap=True)
    unexplained = set(results.pending) - set(results.other_settings) - set(results.other_data)  # those: below
    if unexplained and (note := results.pending_note(study_dir)):  # not an error (a study may run), not in tables
        err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    problems = cell_problems(results)  # left out of the tables just written: a script must not take them as whole
    if problems:
        empty = ", and are empty" if results.by_group.empty else ""
        problems.append(f"the tables leave out {len(problems)} failed or corrupt cell(s){empty}; rerun the study to "
                        "recompute them (except where a line says to delete a file)")
    if problems or left_out:
        print_problems(problems + left_out)
        raise typer.Exit(1)


@app.command(short_help="Show which cells of a study are done, running, queued or running, stale, failed, corrupt, "
                        "damaged, outdated or pending.")
def status(study_dir: Path = typer.Argument(..., metavar="STUDY_DIR", help="A study folder.")) -> None:
    """Show which cells of a study are done, running (a done dense cell too, while its diagnostics compute), queued
    or running (submitted to Ray), stale (their process is gone), failed, corrupt (a damaged result.json, recomputed
    by the next run), damaged (done, but its checkpoint is truncated or damaged), outdated (done on data that has
    changed since: recomputed by the next run) or pending (a last line counts those holding a result of other
    settings than config.toml).

    Exits with 1 when some cell failed, is corrupt or damaged.
    """
    from rich.markup import escape
    from rich.table import Table

    from prunefair.config import ConfigError, load_config
    from prunefair.study import Store, plan_cells
    from prunefair.study.cells import DenseCell, diagnostics_key

    cfg_path = study_dir / "config.toml"
    if not study_dir.exists():
        fail(f"{study_dir}: no such folder")
    refuse_a_file(study_dir)
    if not cfg_path.is_file():
        fail(f"{study_dir}: no config.toml, so not a study folder, or a study stopped before it wrote one (it is "
              "written once the data has loaded): run the study command to start it")
    try:
        cfg = load_config(cfg_path, stored=True)
    except ConfigError as exc:
        fail(str(exc))
    store = Store(study_dir)
    dense, prune = plan_cells(cfg)
    table = Table(title=f"{cfg.name}: {study_dir}")
    for col in ("cell", "state", "detail"):
        table.add_column(col)
    counts: dict[str, int] = {}
    data = store.data_fingerprint()
    other_settings = []
    for c in [*dense, *prune]:
        wanted = diagnostics_key(cfg, c) if isinstance(c, DenseCell) and cfg.diagnostics.enabled else None
        state, detail = store.cell_state(c.name, c.key, data, diagnostics=wanted)
        if state == "pending" and store.other_settings(c.name, c.key):
            other_settings.append(c.name)
        if state == "done" and (damaged := store.damaged_model(c.name)):
            state, detail = "damaged", damaged
        counts[state] = counts.get(state, 0) + 1
        table.add_row(c.name, state, escape(detail))
    console.print(table)
    order = ["done", "outdated", "running", "queued or running", "stale", "failed", "corrupt", "damaged", "pending"]
    console.print(", ".join(f"{counts.get(k, 0)} {k}" for k in order
                            if counts.get(k) or k not in ("outdated", "queued or running", "stale", "corrupt",
                                                          "damaged")))
    where = escape(str(study_dir))
    if counts.get("outdated"):
        console.print(f"{counts['outdated']} stored result(s) were computed on other data than {where}/data.json "
                      "records (outdated): `prunefair study` recomputes them, `prunefair report` leaves them out",
                      highlight=False, soft_wrap=True)
    if other_settings:
        console.print(f"{len(other_settings)} of the pending cells hold a stored result of other settings than "
                      f"{where}/config.toml (edited after they ran, or copied from another study?): `prunefair "
                      "study` recomputes them; restore config.toml to use them", highlight=False, soft_wrap=True)
    if counts.get("failed") or counts.get("corrupt") or counts.get("damaged"):
        raise typer.Exit(1)
