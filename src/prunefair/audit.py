"""Audit a user's own dense/pruned pair, or diagnose a dense model before pruning (the ``audit`` and ``diagnose``
commands call these). Models are named by the study file's [model] section plus a checkpoint (safetensors, or a
state dict saved with torch.save; see ``prune.checkpoint_files``), data by its [data] section; everything else
comes from the library below. The study file may be a StudyConfig, a dict in its shape or a TOML path."""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from prunefair.config import StudyConfig, resolve_config
from prunefair.data import DatasetSplits
from prunefair.diagnostics import BoundCheck, GroupDiagnostics, theorem1_check
from prunefair.diagnostics.correlation import spearman_across_groups
from prunefair.diagnostics.diagnose import HARM_DETAILS
from prunefair.diagnostics.eigen import NotFiniteError
from prunefair.measure import GroupStats, PruningImpact, evaluate_groups, pruning_impact
from prunefair.prune import MaskSet, parameter_distance, pruning_function
from prunefair.models import build_model
from prunefair.prune.interop import ArchitectureMismatch, load_pruned
from prunefair.study.runner import build_study_model, diagnose_dense, load_study_data, resolve_device
from prunefair.study.store import atomic_write_json, atomic_write_text

log = logging.getLogger("prunefair.audit")

# a "dense" checkpoint with more of its prunable weights exactly zero than this looks pruned already
DENSE_ZERO_WARNING = 0.5


def strict_json(obj):
    """``obj`` with every NaN or infinite float as None, at any depth: audit.json and diagnose.json are read by
    other tools, and bare NaN is not JSON (a Spearman rho over constant outcomes is NaN, inside lists)."""
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


def load_model(cfg: StudyConfig, data: DatasetSplits, checkpoint: str | Path, device: torch.device) -> nn.Module:
    """The [model] architecture of ``cfg`` with the weights of a dense checkpoint, in eval mode; a warning when
    most of its prunable weights are exactly zero (it looks pruned already)."""
    model, masks = load_model_and_masks(cfg, data, checkpoint, device)
    if masks.masks and masks.sparsity > DENSE_ZERO_WARNING:
        log.warning("%s: %.1f%% of the prunable weights are exactly zero: this 'dense' model looks pruned "
                    "already (give the model before pruning)", checkpoint, 100 * masks.sparsity)
    return model


def load_model_and_masks(cfg: StudyConfig, data: DatasetSplits, checkpoint: str | Path,
                         device: torch.device, *, dense: str | Path | None = None) -> tuple[nn.Module, MaskSet]:
    """As ``load_model``, and its masks: a checkpoint of ours (``save_pruned``: its masks applied), one in
    torch.nn.utils.prune form (``weight_orig``/``weight_mask``) or a plain one (its exact zeros are the mask).
    A checkpoint of another width says which ``model.width`` it fits; ``dense``: the dense checkpoint, which fits
    this configuration (a pruned one of other shapes had its channels removed, not zeroed)."""
    model = build_study_model(cfg, data).to(device)
    try:
        masks = load_pruned(checkpoint, model)
    except ArchitectureMismatch as exc:
        hint = _slimmed_hint(cfg, dense, exc) if dense is not None else _architecture_hint(cfg, data, exc)
        raise ArchitectureMismatch(f"{exc}{hint}", missing=exc.missing, unexpected=exc.unexpected,
                                   shapes=exc.shapes) from None
    return model.eval(), masks


def _slimmed_hint(cfg: StudyConfig, dense: str | Path, exc: ArchitectureMismatch) -> str:
    """Why a pruned checkpoint misfits when its dense one fits: no ``model.width`` would serve both."""
    if exc.shapes and not exc.missing and not exc.unexpected and all(
            all(c <= d for c, d in zip(cs, ds)) for cs, ds in exc.shapes.values()):
        return (f"\n  the dense checkpoint {dense} fits model {cfg.model.name!r} (width {cfg.model.width:g}) but this "
                "one has fewer channels or units: they were removed from the tensors (a slimmed model), not zeroed. "
                "audit compares two models of one architecture: give the pruned model with its pruned channels set "
                "to zero in tensors of the dense shapes (torch.nn.utils.prune.ln_structured does so)")
    return f"\n  the dense checkpoint {dense} fits this configuration; the two checkpoints are not of one architecture"


def _architecture_hint(cfg: StudyConfig, data: DatasetSplits, exc: ArchitectureMismatch) -> str:
    """A line on what would fit: another ``model.width`` (tried by building it), or another model altogether."""
    m = cfg.model
    built = _built_like(cfg, data)
    if not exc.shapes and len(exc.missing) == len(built.state_dict()):
        return (f"\n  none of the checkpoint's tensors is one of model {m.name!r}: is model.name right? (your own "
                "architecture: register it with prunefair.models.register_model, see docs/datasets.md)")
    if exc.missing or exc.unexpected:
        return _batch_norm_hint(cfg, data, exc, built)
    ratios = [c / d for c_shape, d_shape in exc.shapes.values() for c, d in zip(c_shape, d_shape) if c != d and d]
    if not ratios:
        return ""
    guess = m.width * float(np.median(ratios))
    for w in dict.fromkeys([round(guess * k) / k for k in (8, 4, 16, 100)] + [round(guess, 4)]):
        if w <= 0 or not math.isfinite(w) or w == m.width:
            continue
        other = _built_like(cfg, data, width=w).state_dict()
        if all(tuple(other[k].shape) == c for k, (c, _) in exc.shapes.items() if k in other):
            return f"\n  the shapes fit model.width = {w:g} (this study file has {m.width:g}): --set model.width={w:g}"
    return ""


def _built_like(cfg: StudyConfig, data: DatasetSplits, **change) -> nn.Module:
    """The study's model (``build_study_model``) with ``width`` or ``batch_norm`` changed: what a checkpoint fits."""
    m = cfg.model
    return build_model(m.name, num_classes=data.train.num_classes, input_shape=data.train.input_shape,
                       **{"width": m.width, "batch_norm": m.batch_norm, **change})


def _batch_norm_hint(cfg: StudyConfig, data: DatasetSplits, exc: ArchitectureMismatch, model: nn.Module) -> str:
    """A line naming ``model.batch_norm`` when the model built with the other setting has the checkpoint's keys
    (a checkpoint with batch norm read as a model without, or the reverse: running_mean among the keys);
    ``model``: the study's model as built."""
    m = cfg.model
    built = model.state_dict()
    keys = (set(built) - set(exc.missing)) | set(exc.unexpected)  # the checkpoint's keys
    has_bn = any(isinstance(mod, nn.modules.batchnorm._BatchNorm) for mod in model.modules())
    try:
        other = _built_like(cfg, data, batch_norm=not has_bn).state_dict()
    except Exception:  # noqa: BLE001 (a builder of the user's own that cannot build the other setting: no hint)
        return ""
    if set(other) != keys or set(other) == set(built):
        return ""
    return (f"\n  the checkpoint's tensors are those of model {m.name!r} {'without' if has_bn else 'with'} batch norm: "
            f"--set model.batch_norm={'false' if has_bn else 'true'}")


def _finite_losses(stats: GroupStats, which: str, split: str) -> GroupStats:
    """``stats`` if every group with samples has a finite mean loss; else a ValueError naming the model, split and
    group (NaN inputs or overflowing weights), instead of NaN measures and numpy's "Eigenvalues did not converge"."""
    loss = np.asarray(stats.loss, float)
    for a in np.flatnonzero((stats.count > 0) & ~np.isfinite(loss)):
        raise NotFiniteError(f"{which} model, group {stats.group_names[a]!r} on {split}: the mean loss is not finite "
                             f"({loss[a]}): NaN inputs, or weights so large that the logits overflow", index=int(a))
    return stats


# the dense model's diagnostics beside each split's per-group deltas in audit_groups_<split>.csv (f_one_minus_f:
# NaN unless the task is binary, so that the columns are the same for every task)
# audit_groups_<split>.csv: these after the deltas, then the bound columns, then DIAGNOSTIC_DETAILS (added later, at
# the end, so that the columns of earlier versions keep their places)
DIAGNOSTIC_COLUMNS = ("grad_norm", "hessian_top_eigenvalue", "hessian_trace", "gini", "margin")
DIAGNOSTIC_DETAILS = ("hessian_iterations", "hessian_residual", "hessian_samples", "hessian_trace_se",
                      "f_one_minus_f")
CORRELATED = ("grad_norm", "hessian_top_eigenvalue", "hessian_trace", "gini", "f_one_minus_f", "margin", "loss")


@dataclass
class AuditResult:
    """Per-group deltas and disparity measures per split, the dense model's diagnostics and the Theorem 1 check."""

    impacts: dict[str, PruningImpact]
    diagnostics: GroupDiagnostics
    bound: BoundCheck
    correlations: pd.DataFrame
    distance: float
    sparsity: float
    layer_sparsity: dict[str, float] = field(default_factory=dict)

    def group_table(self, split: str) -> pd.DataFrame:
        t = self.impacts[split].by_group.copy()
        d = self.diagnostics.frame()
        for c in DIAGNOSTIC_COLUMNS:
            t[c] = d[c].to_numpy()
        b = self.bound.table.set_index("group_id").reindex(range(len(t)))  # unchecked groups (no data): NaN
        if split == self.diagnostics.split:
            t["bound"], t["bound_holds"] = b.bound.to_numpy(), b.holds.to_numpy()
        else:  # Theorem 1 bounds R(a) on the diagnostics' split: beside this split's R(a) it holds nothing
            t[f"bound_{self.diagnostics.split}"] = b.bound.to_numpy()
        for c in DIAGNOSTIC_DETAILS:
            t[c] = d[c].array  # hessian_iterations stays an integer column where a group has no samples
        return t

    def to_dict(self) -> dict:
        return {
            "distance": self.distance, "sparsity": self.sparsity, "layer_sparsity": self.layer_sparsity,
            "splits": {s: {"measures": i.measures, "by_group": i.by_group.replace({np.nan: None}).to_dict("records")}
                       for s, i in self.impacts.items()},
            "diagnostics": self.diagnostics.to_dict(), "theorem1": self.bound.to_dict(),
            "correlations": self.correlations.replace({np.nan: None}).to_dict("records"),
        }

    def write(self, out: str | Path) -> dict[str, Path]:
        out = Path(out)
        paths = {"json": out / "audit.json"}
        atomic_write_json(paths["json"], strict_json(self.to_dict()))
        for s in self.impacts:
            paths[f"csv_{s}"] = out / f"audit_groups_{s}.csv"
            atomic_write_text(paths[f"csv_{s}"], self.group_table(s).to_csv(index=False))
        for old in [out / f"audit_groups_{s}.csv" for s in ("train", "val", "test") if s not in self.impacts]:
            # an earlier audit's split, whose audit.json was just replaced: it would pass for one of this audit (only
            # these names: another file of the folder, audit_groups_test_v1.csv say, is the user's)
            if not old.is_file():
                continue
            old.unlink()
            log.warning("removed %s: an earlier audit's (this audit.json has splits %s)", old, ", ".join(self.impacts))
        return paths


def _check_path(name: str, value) -> None:
    if not isinstance(value, (str, Path)):
        raise TypeError(f"{name}: the path of a checkpoint file, got a {type(value).__name__}; for a model in memory, "
                        "save it first (prunefair.prune.save_pruned or torch.save of its state_dict) or call "
                        "prunefair.diagnostics.diagnose_groups(model, data) directly")


def _splits_with_samples(cfg: StudyConfig, data: DatasetSplits, asked: list[str] | None) -> list[str]:
    """The splits to compare on: ``asked`` (each must hold samples: a ValueError naming an empty one), else those
    of eval.splits that hold samples (an empty one, 'val' with data.val_fraction = 0, is left out with a warning)
    instead of a table of NaN."""
    splits = list(dict.fromkeys(cfg.eval.splits if asked is None else asked))
    empty = [s for s in splits if len(data.split(s)) == 0]  # data.split names an unknown split
    why = {"val": " (data.val_fraction = 0)"}
    if empty and (asked is not None or len(empty) == len(splits)):
        given = "--split/splits" if asked is not None else "eval.splits"
        raise ValueError(f"{given}: split {empty[0]!r} has no samples{why.get(empty[0], '')}; compare on a split with "
                         f"samples ({', '.join(s for s in ('train', 'val', 'test') if len(data.split(s)))})")
    for s in empty:
        log.warning("eval.splits: split %r has no samples%s; left out of the audit", s, why.get(s, ""))
    return [s for s in splits if s not in empty]


def audit_pair(cfg: StudyConfig | dict | str | Path, dense_path: str | Path, pruned_path: str | Path, *,
               splits: list[str] | None = None) -> AuditResult:
    """Compare a dense and a pruned checkpoint of the same architecture on the configured data. ``cfg`` is a
    StudyConfig, a dict in the study-file shape (as ``run_study`` takes) or the path of a TOML study file."""
    _check_path("dense_path", dense_path)
    _check_path("pruned_path", pruned_path)
    if isinstance(splits, str) or splits is not None and not isinstance(splits, (list, tuple)):
        raise TypeError(f"splits: a list of split names such as ['test'], got {splits!r}")
    if splits is not None and not splits:
        raise ValueError("splits is empty; give split names such as ['test'], or None for the config's eval.splits")
    cfg = cfg if isinstance(cfg, StudyConfig) else resolve_config(cfg)
    device = resolve_device(cfg.device)
    data = load_study_data(cfg)
    dense = load_model(cfg, data, dense_path, device)
    pruned, masks = load_model_and_masks(cfg, data, pruned_path, device, dense=dense_path)
    splits = _splits_with_samples(cfg, data, splits)
    impacts = {}
    for s in splits:
        kw = dict(batch_size=cfg.eval.batch_size, device=device)
        impacts[s] = pruning_impact(_finite_losses(evaluate_groups(dense, data.split(s), **kw), "dense", s),
                                    _finite_losses(evaluate_groups(pruned, data.split(s), **kw), "pruned", s))
    diag = diagnose_dense(cfg, dense, data, device)
    distance = parameter_distance(pruned, dense)
    on = diag.split
    r = impacts[on].by_group.excess_loss.to_numpy() if on in impacts else pruning_impact(
        evaluate_groups(dense, data.split(on), device=device), evaluate_groups(pruned, data.split(on), device=device)
    ).by_group.excess_loss.to_numpy()
    bound = theorem1_check(group_names=diag.group_names, grad_norm=diag.grad_norm,
                           hessian_top=diag.hessian_top_eigenvalue, distances={masks.sparsity: distance},
                           excess_loss={masks.sparsity: r})
    rows = []
    for s, imp in impacts.items():
        for name in CORRELATED:
            x = np.asarray(getattr(diag, name), float)
            if not np.isfinite(x).any():
                continue
            for outcome in ("accuracy_drop", "excess_loss"):
                c = spearman_across_groups(x, imp.by_group[outcome].to_numpy(float), seed=cfg.diagnostics.seed)
                rows.append({"split": s, "diagnostic": name, "outcome": outcome, **c.to_dict()})
    return AuditResult(impacts, diag, bound, pd.DataFrame(rows), distance, masks.sparsity, masks.layer_sparsity())


@dataclass
class DiagnoseResult:
    """The dense model's diagnostics and, per pruning rate, the groups ranked by the Theorem 1 bound."""

    diagnostics: GroupDiagnostics
    distances: dict[float, float]  # rate -> one-shot ||theta_bar - theta*|| of magnitude pruning at that rate
    rankings: dict[float, pd.DataFrame]

    def to_dict(self) -> dict:
        return {"diagnostics": self.diagnostics.to_dict(),
                "predicted_harm": [{"rate": r, "distance": self.distances[r],
                                    "groups": t.replace({np.nan: None}).to_dict("records")}
                                   for r, t in self.rankings.items()]}

    def write(self, out: str | Path) -> dict[str, Path]:
        out = Path(out)
        paths = {"json": out / "diagnose.json", "csv": out / "diagnose.csv"}
        atomic_write_json(paths["json"], strict_json(self.to_dict()))
        table = pd.concat([t.assign(rate=r, distance=self.distances[r]) for r, t in self.rankings.items()])
        table = table[[c for c in table.columns if c not in HARM_DETAILS] + list(HARM_DETAILS)]  # older columns first
        atomic_write_text(paths["csv"], table.to_csv(index=False))
        return paths


def diagnose_model(cfg: StudyConfig | dict | str | Path, model_path: str | Path, *,
                   rates: list[float] | None = None) -> DiagnoseResult:
    """Diagnose a dense checkpoint and rank its groups by predicted harm at each rate, before any pruning.
    ``cfg`` is a StudyConfig, a dict in the study-file shape or the path of a TOML study file.

    The distance at a rate is that of one-shot pruning with the configured criterion and scope (the norm of the
    weights it would remove), so it is known before pruning.
    """
    _check_path("model_path", model_path)
    rates = None if rates is None else list(rates)  # a generator is read once
    if rates is not None and not rates:
        raise ValueError("rates is empty; give pruning rates such as [0.9], or None for the config's prune.rates")
    cfg = cfg if isinstance(cfg, StudyConfig) else resolve_config(cfg)
    device = resolve_device(cfg.device)
    data = load_study_data(cfg)
    model = load_model(cfg, data, model_path, device)
    diag = diagnose_dense(cfg, model, data, device)
    p = cfg.prune
    prune = pruning_function(scope=p.scope, criterion=p.criterion, keep_first_last=p.keep_first_last,
                             allow_layer_removal=p.allow_layer_removal, seed=cfg.diagnostics.seed)
    distances, rankings = {}, {}
    for rate in list(cfg.prune.rates) if rates is None else rates:
        pruned = copy.deepcopy(model)
        prune(pruned, rate).bind(pruned).apply()
        distances[rate] = parameter_distance(pruned, model)
        rankings[rate] = diag.predicted_harm(distances[rate])
    return DiagnoseResult(diag, distances, rankings)
