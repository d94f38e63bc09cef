"""The command line: parses arguments and calls the Python API, nothing more."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import List, Optional

import typer
from prunefair.progress import make_console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="prunefair: measure, explain and mitigate the disparate impact of pruning on groups "
         "(Tran et al., NeurIPS 2022).",
)
# a terminal's own width; piped, $COLUMNS or 120 (rich's 80 would fold the tables of a log file)
console = make_console()
err_console = make_console(stderr=True)


@app.callback()
def _setup() -> None:
    """Warnings (e.g. a config setting that leaves a check out) as one line on stderr, not Python's file:line."""
    from rich.markup import escape

    def show(message, category, filename, lineno, file=None, line=None):
        err_console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False)

    warnings.showwarning = show


def _fail(message: str, code: int = 2, *, one_line: bool = False) -> None:
    """Print ``message`` (as given: paths and values may hold [brackets]) and exit with ``code``; ``one_line``:
    not folded at the terminal's width (a script reading stderr gets it whole)."""
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=one_line)
    raise typer.Exit(code)


_INTERRUPTED = "interrupted; finished cells are kept: rerun the same command to resume"


def _refuse_a_file(study_dir: Path) -> None:
    """``prunefair status study.toml``: a file where a study folder is wanted; name the study file's folder."""
    if not study_dir.is_file():
        return
    import tomllib

    try:
        out = tomllib.loads(study_dir.read_text(encoding="utf-8")).get("output_dir")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        out = None
    hint = f": this study file's folder is {out}" if isinstance(out, str) else " (its output_dir)"
    _fail(f"{study_dir}: a file, not a study folder; give the folder the study writes{hint}")


def _flag_overrides(**fields) -> list[str]:
    """Dotted-key overrides (``run__workers`` -> ``run.workers``) for the flags that were given, values as TOML."""
    import json

    return [f"{key.replace('__', '.')}={json.dumps(value)}" for key, value in fields.items() if value is not None]


def _csv_override(key: str, text: Optional[str]) -> list[str]:
    return [] if text is None else [f"{key}=[{text}]"]


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
    overrides += _csv_override("seeds", seeds) + _csv_override("prune.rates", rates)
    overrides += _flag_overrides(output_dir=out, device=device, run__executor=executor, run__address=address,
                                 run__workers=workers)
    if config is None and preset is None:
        preset = "digits"
    try:
        cfg = load_config(config, overrides=overrides, preset=preset)
    except ConfigError as exc:
        _fail(str(exc))
    # a folder that cannot be made or written: said now, naming the setting, not after the data has loaded
    _writable(Path(cfg.output_dir), f"output_dir{' (--out)' if out is not None else ''} = {cfg.output_dir}")
    if cfg.run.executor == "local":  # a setting this machine cannot honour: exit 2, as group-size and diagnose do
        from prunefair.study import resolve_device  # (a Ray cluster's workers may have the GPU its head lacks)

        try:
            resolve_device(cfg.device)
        except RuntimeError as exc:
            _fail(str(exc))
    try:
        results = run_study(cfg, quiet=quiet)
    except StudyLocked as exc:  # another run has the folder: nothing of it was touched
        _fail(str(exc), 1)
    except (OSError, ValueError, RuntimeError) as exc:  # a missing data folder, a full disk, a lost worker
        started = (Path(cfg.output_dir) / "cells").is_dir()  # else there is nothing to resume: the setting is wrong
        _fail(_resume_message(exc, started, "cells"), 2 if _refused(exc, started) else 1)
    except KeyboardInterrupt:  # here, not in main(): typer turns it into a bare exit 130 before main sees it
        _fail(_INTERRUPTED, 130)
    if not quiet:
        from prunefair.report import print_group_table

        print_group_table(results, console=console)
        folder = _escape(str(cfg.output_dir))
        console.print(f"study folder: [bold]{folder}[/] (table.csv, measures.csv, summary.csv, group_summary.csv, "
                      f"figures/fig1_group_accuracy.png, report.html)\nnext: open {folder}/report.html in a browser "
                      "(every result on one page); `prunefair report " + folder + "` rebuilds it",
                      highlight=False)
    from prunefair.report.explain import diagnostics_errors

    problems = _cell_problems(results)
    problems += [f"diagnostics of {name} failed: {error}" for name, error in diagnostics_errors(results.cells)]
    _print_problems(problems)
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


def _cell_problems(results) -> list[str]:
    """A line per failed or corrupt cell of ``results`` (a StudyResults), with its error."""
    return [f"{r.get('status', 'failed')} cell {r['name']}: {r.get('error')}" for r in results.failed]


def _print_problems(lines: list[str]) -> None:
    from rich.markup import escape

    for line in lines:
        err_console.print(f"[red]{escape(line)}", highlight=False)


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

    overrides = list(set_) + _csv_override("seeds", seeds) + _csv_override("prune.rates", rates)
    overrides += _flag_overrides(output_dir=out, device=device)
    try:
        values = [float(f) for f in factors.split(",") if f.strip()]
    except ValueError:
        _fail(f"--factors {factors!r}: expected comma-separated numbers, e.g. 1,5,10,20")
    try:
        cfg = load_config(config, overrides=overrides, preset=preset or ("digits" if config is None else None))
    except ConfigError as exc:
        _fail(str(exc))
    _writable(Path(cfg.output_dir), f"output_dir{' (--out)' if out is not None else ''} = {cfg.output_dir}")
    try:
        table = run_group_size(cfg, group=group, factors=values, match_steps=match_steps, quiet=quiet)
    except ConfigError as exc:
        _fail(str(exc))
    except (OSError, ValueError, RuntimeError) as exc:
        started = any(Path(cfg.output_dir).glob("f*/cells"))  # else nothing to resume: the setting is wrong
        _fail(_resume_message(exc, started, "studies"), 2 if _refused(exc, started) or not started else 1)
    except KeyboardInterrupt:
        _fail(_INTERRUPTED, 130)
    means = table.groupby(["factor", "group"]).grad_norm.mean().unstack()
    if not quiet:
        console.print(means.round(4).to_string())
    console.print(f"group-size experiment: {cfg.output_dir}/group_size.csv, "
                  f"{cfg.output_dir}/figures/fig14_group_size.png", highlight=False, soft_wrap=True)


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

    _refuse_a_file(study_dir)
    if not (study_dir / "config.toml").is_file() and (study_dir / "group_size.json").is_file():
        try:  # a group-size experiment's folder: its table and figure, from the studies it names
            write_group_size_outputs(study_dir)
        except (FileNotFoundError, ValueError) as exc:
            _fail(str(exc))
        except OSError as exc:
            _fail(_os_error(exc, study_dir), one_line=True)
        console.print(f"group-size experiment: {study_dir / 'group_size.csv'}, "
                      f"{study_dir / 'figures' / 'fig14_group_size.png'}", highlight=False, soft_wrap=True)
        return
    try:
        results = StudyResults.from_store(study_dir)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    except OSError as exc:  # a folder or file this user cannot read
        _fail(_os_error(exc, study_dir, "read"), one_line=True)
    left_out = results.left_out_notes(study_dir)  # done results of other settings or data: not this config's
    if left_out and not results.cells:  # nothing of config.toml to report: the last report's files stay as they are
        _print_problems(_cell_problems(results) + left_out + [
            f"{study_dir}: no finished result matches config.toml and data.json, so nothing was rewritten (the tables, "
            "figures and report.html are still those of the last report)"])
        raise typer.Exit(1)
    try:
        paths = write_outputs(results, study_dir, group_size_dirs=group_size or None)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    except OSError as exc:  # e.g. a read-only folder: the file that could not be written, no traceback
        _fail(_os_error(exc, study_dir), one_line=True)
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
        err_console.print(f"[yellow]note:[/] {_escape(note)}", highlight=False)
    problems = _cell_problems(results)  # left out of the tables just written: a script must not take them as whole
    if problems:
        empty = ", and are empty" if results.by_group.empty else ""
        problems.append(f"the tables leave out {len(problems)} failed or corrupt cell(s){empty}; rerun the study to "
                        "recompute them (except where a line says to delete a file)")
    if problems or left_out:
        _print_problems(problems + left_out)
        raise typer.Exit(1)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _os_error(exc: OSError, folder: Path, what: str = "write") -> str:
    """One line for an OSError of reading or writing a study folder: the file (our atomic writes name it in their
    message; else the error's filename) and what to do."""
    if exc.filename is not None:
        message = f"{exc.filename}: cannot {what} ({exc.strerror or exc})"
    elif exc.strerror:  # prunefair.io's writes: "PATH: cannot write (REASON); ..."
        message = exc.strerror
    else:
        message = f"{folder}: cannot {what} ({exc})"
    fix = f"check that {folder} and what is in it can be written (no file where a folder belongs, no read-only " \
          "file or file system), or copy the folder and report the copy; files written before this one are new, " \
          "the others as they were" if what == "write" else f"make {folder} readable"
    return f"{message}; {fix}"


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
    from prunefair.study.store import checkpoint_problem

    cfg_path = study_dir / "config.toml"
    if not study_dir.exists():
        _fail(f"{study_dir}: no such folder")
    _refuse_a_file(study_dir)
    if not cfg_path.is_file():
        _fail(f"{study_dir}: no config.toml, so not a study folder, or a study stopped before it wrote one (it is "
              "written once the data has loaded): run the study command to start it")
    try:
        cfg = load_config(cfg_path, stored=True)
    except ConfigError as exc:
        _fail(str(exc))
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
        ckpt = store.cell_dir(c.name) / "model.safetensors"
        if state == "done" and ckpt.is_file() and (problem := checkpoint_problem(ckpt)):
            state, detail = "damaged", f"{ckpt}: {problem}; its result stands, but cells that need this model " \
                                       "fail until the file is deleted (the next run then retrains it)"
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


def _model_config(config, preset, model_name, data, set_, device):
    """A StudyConfig from --config/--preset plus the --model-name/--data/--device/--set shortcuts."""
    from prunefair.config import ConfigError, load_config

    overrides = list(set_)
    overrides += _flag_overrides(model__name=model_name, data__dataset=data, device=device)
    try:
        return load_config(config, overrides=overrides, preset=preset if (preset or config) else "digits")
    except ConfigError as exc:
        _fail(str(exc))


_MODEL_HELP = "Architecture of the checkpoint(s) (overrides model.name; width etc. via --set model.width=...; " \
              "default: the --config's or --preset's, mlp without either)."
_DATA_HELP = "Dataset (overrides data.dataset; its folder via --set data.root=...; default: the --config's or " \
             "--preset's, digits without either)."
_CONFIG_HELP = "Study file whose data, model, eval, prune and diagnostics sections apply."
_CKPT_HELP = "Dense model checkpoint: safetensors, or a torch.save state dict (.pt/.pth)."


@app.command()
def audit(
    dense: Path = typer.Option(..., "--dense", help=_CKPT_HELP),
    pruned: Path = typer.Option(..., "--pruned",
                                help="Pruned model checkpoint, same architecture and formats (zeros = pruned)."),
    model_name: Optional[str] = typer.Option(None, "--model-name", "-m", help=_MODEL_HELP),
    data: Optional[str] = typer.Option(None, "--data", "-d", help=_DATA_HELP),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="A shipped preset as the base configuration."),
    split: List[str] = typer.Option([], "--split", help="Split to compare on: train, val or test (repeatable; "
                                    "default: eval.splits)."),
    out: Path = typer.Option(Path("audit"), "--out", "-o", help="Folder for audit.json and audit_groups_<split>.csv."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda or auto."),
    set_: List[str] = typer.Option([], "--set", "-s", help="Override any study-file field (repeatable)."),
) -> None:
    """Audit your own dense/pruned pair: per-group deltas, every disparity measure, every diagnostic, Theorem 1."""
    from prunefair.audit import audit_pair
    from prunefair.report.audit_tables import audit_diagnostics_table, audit_table, correlation_table

    cfg = _model_config(config, preset, model_name, data, set_, device)
    _writable(out)
    try:
        result = audit_pair(cfg, dense, pruned, splits=list(split) or None)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        _fail(str(exc))
    except RuntimeError as exc:  # e.g. a model too deep for the data's images: torch's words, no traceback
        _fail(f"{cfg.model.name} on {cfg.data.dataset}: {exc}")
    for s in result.impacts:
        console.print(audit_table(result, s))
    console.print(audit_diagnostics_table(result))
    console.print(correlation_table(result))
    _write(result, out)


@app.command()
def diagnose(
    model: Path = typer.Option(..., "--model", help=_CKPT_HELP),
    rate: List[float] = typer.Option([], "--rate", "-r", help="Pruning rate to predict harm at, in [0, 1) "
                                     "(repeatable; default: prune.rates)."),
    model_name: Optional[str] = typer.Option(None, "--model-name", "-m", help=_MODEL_HELP),
    data: Optional[str] = typer.Option(None, "--data", "-d", help=_DATA_HELP),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="A shipped preset as the base configuration."),
    out: Path = typer.Option(Path("diagnose"), "--out", "-o", help="Folder for diagnose.json and diagnose.csv."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda or auto."),
    set_: List[str] = typer.Option([], "--set", "-s", help="Override any study-file field (repeatable)."),
) -> None:
    """Diagnose a dense model before pruning: rank its groups by the harm Theorem 1 predicts at each rate."""
    from prunefair.audit import diagnose_model
    from prunefair.report.audit_tables import diagnose_table

    cfg = _model_config(config, preset, model_name, data, set_, device)
    _writable(out)
    bad = [r for r in rate if not 0.0 <= r < 1.0]
    if bad:
        _fail(f"--rate {bad[0]}: a pruning rate must be in [0, 1)")
    try:
        result = diagnose_model(cfg, model, rates=list(rate) or None)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        _fail(str(exc))
    except RuntimeError as exc:
        _fail(f"{cfg.model.name} on {cfg.data.dataset}: {exc}")
    for r in result.rankings:
        console.print(diagnose_table(result, r))
    _write(result, out)


def _writable(out: Path, name: str | None = None) -> None:
    """Check the output folder before any computing (without creating it): one that cannot be made or written
    fails now (exit 2), not after the work. ``name`` says which setting gave it (default ``--out OUT``)."""
    name = name or f"--out {out}"
    base = out.absolute()
    while not base.exists() and base != base.parent:
        base = base.parent
    if base == out.absolute() and not base.is_dir():
        _fail(f"{name}: is a file, not a folder" if base.is_file() else f"{name}: exists and is not a folder")
    if not base.is_dir():
        _fail(f"{name}: cannot create the folder ({base} is {'a file' if base.is_file() else 'not a folder'})")
    if not os.access(base, os.W_OK):
        _fail(f"{name}: {base} is not writable")


def _write(result, out: Path) -> None:
    try:
        paths = result.write(out)
    except OSError as exc:  # e.g. the disk filled up while computing: the tables above are the result
        _fail(f"--out {out}: could not write the results ({exc}); the tables above are what was computed", 1)
    for p in paths.values():
        console.print(f"wrote {p}")


@app.command()
def presets() -> None:
    """List the study presets shipped with prunefair."""
    from prunefair.config import preset_description, preset_names

    for name in preset_names():
        console.print(f"[bold]{name}[/]: {preset_description(name)}", highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
