"""`prunefair audit`, `prunefair diagnose` and `prunefair presets`: a model of the user's own, and the presets."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from prunefair.cli.common import app, console, fail, flag_overrides, writable

def _model_config(config, preset, model_name, data, set_, device):
    """A StudyConfig from --config/--preset plus the --model-name/--data/--device/--set shortcuts."""
    from prunefair.config import ConfigError, load_config

    overrides = list(set_)
    overrides += flag_overrides(model__name=model_name, data__dataset=data, device=device)
    try:
        return load_config(config, overrides=overrides, preset=preset if (preset or config) else "digits")
    except ConfigError as exc:
        fail(str(exc))


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
    writable(out)
    result = _computed(cfg, audit_pair, cfg, dense, pruned, splits=list(split) or None)
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
    writable(out)
    bad = [r for r in rate if not 0.0 <= r < 1.0]
    if bad:
        fail(f"--rate {bad[0]}: a pruning rate must be in [0, 1)")
    result = _computed(cfg, diagnose_model, cfg, model, rates=list(rate) or None)
    for r in result.rankings:
        console.print(diagnose_table(result, r))
    _write(result, out)


def _computed(cfg, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, its errors said in one line (exit 2) instead of a traceback."""
    try:
        return fn(*args, **kwargs)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        fail(str(exc))
    except RuntimeError as exc:  # e.g. a model too deep for the data's images: torch's words, no traceback
        fail(f"{cfg.model.name} on {cfg.data.dataset}: {exc}")


def _write(result, out: Path) -> None:
    try:
        paths = result.write(out)
    except OSError as exc:  # e.g. the disk filled up while computing: the tables above are the result
        fail(f"--out {out}: could not write the results ({exc}); the tables above are what was computed", 1)
    for p in paths.values():
        console.print(f"wrote {p}")


@app.command()
def presets() -> None:
    """List the study presets shipped with prunefair."""
    from prunefair.config import preset_description, preset_names

    for name in preset_names():
        console.print(f"[bold]{name}[/]: {preset_description(name)}", highlight=False)
