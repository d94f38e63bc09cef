"""Run the cells of a study: train (or reload) each dense model, prune, fine-tune, evaluate, store.

A failing cell (a non-finite loss, say) is recorded as failed with its message; the others go on.
"""

from __future__ import annotations

import copy
import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.markup import escape
from torch import nn

from prunefair.config import StudyConfig
from prunefair.data import DataRefused, DatasetSplits, load_dataset
from prunefair.measure import evaluate_groups
from prunefair.mitigate import objective_for
from prunefair.models import build_model, count_parameters
from prunefair.progress import NULL_PROGRESS, Progress
from prunefair.prune import parameter_distance, pruning_function, recalibrate_batch_norm
from prunefair.study.cells import (
    DenseCell, PruneCell, cell_fields, dense_failure, diagnostics_current, diagnostics_key, plan_cells,
)
from prunefair.study.store import Store, atomic_write_json, atomic_write_text, load_model_state, save_checkpoint
from prunefair.train import TrainSettings, finetune_pruned, fit


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device = 'cuda' but no CUDA device is available; use device = 'cpu' or 'auto'")
    return torch.device(name)


def load_study_data(cfg: StudyConfig) -> DatasetSplits:
    """The study's data. A ValueError of the loader (one class left, an unreadable image, a resampled split too
    large) comes back as ``DataRefused``, with its message, so that callers can tell it from a failed cell."""
    d = cfg.data
    options = {k: getattr(d, k) for k in ("age_bins", "drop_duplicates", "skip_unreadable", "limit", "csv",
                                          "svhn_extra", "cache_dir", "workers")}
    try:
        return load_dataset(d.dataset, root=d.root, target=d.target, group=d.group, image_size=d.image_size,
                            val_fraction=d.val_fraction, test_fraction=d.test_fraction, split_seed=d.split_seed,
                            options=options, resample=d.resample.model_dump() if d.resample else None)
    except DataRefused:
        raise
    except ValueError as exc:
        raise DataRefused(str(exc)) from exc


def build_study_model(cfg: StudyConfig, data: DatasetSplits) -> nn.Module:
    return build_model(cfg.model.name, num_classes=data.train.num_classes, input_shape=data.train.input_shape,
                       width=cfg.model.width, batch_norm=cfg.model.batch_norm)


def _settings(section, model_cfg) -> TrainSettings:
    return TrainSettings(epochs=section.epochs, batch_size=section.batch_size, lr=section.lr,
                         momentum=section.momentum, weight_decay=section.weight_decay, schedule=section.schedule,
                         crop_padding=section.crop_padding, flip=section.flip, crop_fill=section.crop_fill,
                         precision=model_cfg.precision, compile=model_cfg.compile)


@dataclass
class StudyRunner:
    cfg: StudyConfig
    store: Store
    data: DatasetSplits
    device: torch.device
    progress: Progress = NULL_PROGRESS

    def __post_init__(self) -> None:
        self.fingerprint = self.data.fingerprint()  # recorded in every result: changed data is recomputed
        if self.device.type != "cpu":  # keep the (uint8) data on the accelerator: no input pipeline to starve
            self.data = self.data.to(self.device)

    def _model_to_device(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        if self.cfg.model.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def evaluate(self, model: nn.Module) -> dict:
        return {s: evaluate_groups(model, self.data.split(s), batch_size=self.cfg.eval.batch_size,
                                   device=self.device, channels_last=self.cfg.model.channels_last).to_dict()
                for s in self.cfg.eval.splits}

    # -- dense ---------------------------------------------------------------------------------
    def dense_model(self, cell: DenseCell) -> tuple[nn.Module, dict]:
        """The trained dense model of a seed: from its checkpoint if the cell is done, else trained now."""
        torch.manual_seed(cell.seed)
        model = self._model_to_device(build_study_model(self.cfg, self.data))
        ckpt = self.store.cell_dir(cell.name) / "model.safetensors"
        if self.store.is_done(cell.name, cell.key, self.fingerprint) and self.store.has_model(cell.name, cell.key):
            load_model_state(model, ckpt)
            model.eval()
            return model, self.store.read_result(cell.name)
        t0 = time.perf_counter()
        history = fit(model, self.data.train, _settings(self.cfg.train, self.cfg.model), seed=cell.seed, device=self.device,
                      channels_last=self.cfg.model.channels_last, progress=self.progress,
                      description=f"seed {cell.seed}: dense training")
        t1 = time.perf_counter()
        metrics = self.evaluate(model)
        t2 = time.perf_counter()
        weights = save_checkpoint(ckpt, model.state_dict(), metadata={"cell": cell.name, "key": cell.key})
        result = {
            "kind": "dense", "name": cell.name, "key": cell.key, "status": "done", "data": self.fingerprint,
            "seed": cell.seed, "weights": weights,
            "method": "dense", "rate": 0.0, "achieved_sparsity": 0.0, "parameters": count_parameters(model),
            "metrics": metrics, "history": history.epochs,
            "timing": {"train_s": t1 - t0, "eval_s": t2 - t1},
        }
        self.store.write_result(cell.name, result)
        return model, result

    # -- pruned --------------------------------------------------------------------------------
    def prune_cell(self, cell: PruneCell, dense: nn.Module) -> dict:
        t0 = time.perf_counter()
        model, p = copy.deepcopy(dense), self.cfg.prune
        prune = pruning_function(scope=p.scope, criterion=p.criterion, keep_first_last=p.keep_first_last,
                                 allow_layer_removal=p.allow_layer_removal, seed=cell.seed)
        masks = prune(model, cell.rate)
        masks.bind(model).apply()
        bn_samples = {"oneshot": self._recalibrate(model, cell.seed)} if p.bn_recalibrate else {}
        oneshot = self.evaluate(model)  # one-shot at the final rate, before any fine-tuning, whatever the schedule
        oneshot_distance = parameter_distance(model, dense)
        if p.schedule != "oneshot":
            model = copy.deepcopy(dense)  # gradual and iterative pruning start from the dense weights
        t1 = time.perf_counter()
        objective = objective_for(cell.method, dense_model=dense, data=self.data, options=self.cfg.mitigate,
                                  device=self.device, eval_batch_size=self.cfg.eval.batch_size,
                                  channels_last=self.cfg.model.channels_last)
        run = finetune_pruned(model, self.data.train, _settings(self.cfg.finetune, self.cfg.model), rate=cell.rate,
                              prune=prune, schedule=p.schedule, masks=masks if p.schedule == "oneshot" else None,
                              gradual_start_epoch=p.gradual_start_epoch, gradual_end_epoch=p.gradual_end_epoch,
                              gradual_initial=p.gradual_initial, rounds=p.iterative_rounds, seed=cell.seed,
                              device=self.device, objective=objective, channels_last=self.cfg.model.channels_last,
                              progress=self.progress,
                              description=f"seed {cell.seed}: prune {cell.rate:g} + {cell.method}")
        masks, history = run.masks, run.history
        mitigation = objective.finish(model)  # loads the epoch selected on validation (mitigate.selection)
        if p.bn_recalibrate_finetuned:
            bn_samples["finetuned"] = self._recalibrate(model, cell.seed)
        t2 = time.perf_counter()
        metrics = self.evaluate(model)
        t3 = time.perf_counter()
        if self.cfg.run.save_pruned:  # pruned weights are exact zeros: `prunefair audit` reads the mask back
            save_checkpoint(self.store.cell_dir(cell.name) / "model.safetensors", model.state_dict(),
                            metadata={"cell": cell.name, "key": cell.key, "sparsity": f"{masks.sparsity:.6f}"})
        weights = (self.store.read_result(cell.dense.name) or {}).get("weights")  # the dense model's digest
        return {
            "kind": "prune", "name": cell.name, "key": cell.key, "status": "done", "data": self.fingerprint,
            "seed": cell.seed, **({"dense_weights": weights} if weights else {}),
            "method": cell.method, "rate": cell.rate, "dense": cell.dense.name,
            "achieved_sparsity": masks.sparsity, "layer_sparsity": masks.layer_sparsity(),
            "distance": parameter_distance(model, dense), "distance_oneshot": oneshot_distance,
            "oneshot": oneshot, "metrics": metrics, "history": history.epochs, "mitigation": mitigation,
            "prune_steps": run.steps, "bn_recalibration_samples": bn_samples,
            "timing": {"prune_eval_s": t1 - t0, "finetune_s": t2 - t1, "eval_s": t3 - t2},
        }

    def _recalibrate(self, model: nn.Module, seed: int) -> int:
        """Batch-norm statistics re-estimated on training data (prune.bn_batches batches); samples used."""
        return recalibrate_batch_norm(model, self.data.train, batch_size=self.cfg.eval.batch_size,
                                      max_batches=self.cfg.prune.bn_batches, seed=seed, device=self.device,
                                      channels_last=self.cfg.model.channels_last)

    # -- the whole grid ------------------------------------------------------------------------
    def run(self) -> list[dict]:
        dense_cells, prune_cells = plan_cells(self.cfg)
        self.store.note_other_data([*dense_cells, *prune_cells], self.fingerprint, self.progress.log)
        atomic_write_text(self.store.root / "config.toml", self.cfg.to_toml())
        atomic_write_json(self.store.root / "data.json", self.data.describe())  # sizes, groups, skipped files
        for d in dense_cells:
            self.run_seed(d, [c for c in prune_cells if c.dense == d])
        return self.store.results()

    # -- entry points for executors (one cell, marked running, failures recorded) ---------------
    def run_seed(self, d: DenseCell, prune_cells: list[PruneCell]) -> None:
        """The dense cell of a seed (trained once, or reloaded) and its unfinished pruning cells."""
        def todo() -> list[PruneCell]:
            return [c for c in prune_cells if not self.store.is_done(c.name, c.key, self.fingerprint)]

        if not todo() and self.store.is_done(d.name, d.key, self.fingerprint) and not self.diagnostics_missing(d):
            return
        dense, error = self.run_dense_cell(d)
        for c in todo():  # after the dense cell: one retrained to other weights makes its pruning cells to run
            if dense is None:
                self.progress.log(f"[red]cell {c.name} failed: dense model {d.name}: {escape(error)}")
                self.store.write_result(c.name, dense_failure(c, error))
            else:
                self.run_prune_cell(c, dense)

    def run_dense_cell(self, d: DenseCell) -> tuple[nn.Module | None, str]:
        """(model, "") or (None, error). A stored dense result is never overwritten by a failure to reload it."""
        was_done = self.store.is_done(d.name, d.key, self.fingerprint)
        if not was_done:
            self.store.mark_running(d.name, d.key)
        try:
            dense, _ = self.dense_model(d)
            self.ensure_diagnostics(d, dense)
            return dense, ""
        except Exception as exc:  # record and go on with other seeds
            if was_done:  # an unreadable or foreign checkpoint: keep the stored result, say which file
                ckpt = self.store.cell_dir(d.name) / "model.safetensors"
                error = f"{type(exc).__name__}: {exc} (delete {ckpt} to retrain it)"
                if self.diagnostics_missing(d):  # asked for, not computable: stored as their failure, not left stale
                    self._store_diagnostics(d, {"key": diagnostics_key(self.cfg, d),
                                                "error": f"the dense model could not be reloaded: {error}"})
                return None, error
            self._fail(d.name, d.key, exc, cell_fields(d))
            return None, f"{type(exc).__name__}: {exc}"

    # -- diagnostics of the dense model (Sections 4-5), stored in its result under "diagnostics" -----
    def diagnostics_missing(self, d: DenseCell) -> bool:
        return not diagnostics_current(self.cfg, d, self.store.read_result(d.name))

    def _store_diagnostics(self, d: DenseCell, entry: dict) -> None:
        result = self.store.read_result(d.name)
        if result is not None and result.get("key") == d.key:
            self.store.write_result(d.name, {**result, "diagnostics": entry})

    def ensure_diagnostics(self, d: DenseCell, dense: nn.Module) -> None:
        """Compute the dense model's per-group diagnostics once (kept while the [diagnostics] section is unchanged);
        a failure is recorded under "diagnostics" and never fails the dense cell."""
        if not self.diagnostics_missing(d):
            return
        key = diagnostics_key(self.cfg, d)
        # `prunefair status` shows the done cell as running while they compute (stale if this process dies)
        self.store.mark_running(d.name, d.key, stage="diagnostics", diagnostics=key)
        try:
            diag = diagnose_dense(self.cfg, dense, self.data, self.device)
            entry = {"key": key, **diag.to_dict()}
        except Exception as exc:
            self.progress.log(f"[red]diagnostics of {d.name} failed: {exc}")
            entry = {"key": key, "error": f"{type(exc).__name__}: {exc}"}
        self._store_diagnostics(d, entry)  # writing the result clears the marker
        self.store.clear_running(d.name)  # also where there was no result to write them into

    def run_prune_cell(self, c: PruneCell, dense: nn.Module) -> dict:
        self.store.mark_running(c.name, c.key)
        try:
            result = self.prune_cell(c, dense)
        except Exception as exc:
            return self._fail(c.name, c.key, exc, cell_fields(c))
        self.store.write_result(c.name, result)
        return result

    def _fail(self, name: str, key: str, exc: BaseException, extra: dict) -> dict:
        self.progress.log(f"[red]cell {name} failed: {exc}")
        result = {"name": name, "key": key, "status": "failed", **extra, "error": f"{type(exc).__name__}: {exc}",
                  "traceback": "".join(traceback.format_exception(exc, limit=5))}
        self.store.write_result(name, result)
        return result


def diagnose_dense(cfg: StudyConfig, model: nn.Module, data: DatasetSplits, device):
    """The [diagnostics] section's per-group diagnostics of a dense model (a study's, audit's and diagnose's)."""
    from prunefair.diagnostics import diagnose_groups

    c = cfg.diagnostics
    return diagnose_groups(model, data.split(c.split), batch_size=c.batch_size,
                           max_samples=None if c.max_samples == "all" else c.max_samples,
                           eigen_method=c.eigen_method, hvp=c.hvp, max_iter=c.iterations, tol=c.tol,
                           criterion=c.criterion, trace_samples=c.trace_samples, seed=c.seed, device=device,
                           channels_last=cfg.model.channels_last, split=c.split)


def execute_study(cfg: StudyConfig, *, progress: Progress = NULL_PROGRESS) -> list[dict]:
    """Run every unfinished cell of ``cfg`` into its output folder with the executor of ``cfg.run``."""
    from prunefair.study.executors import make_executor
    from prunefair.study.lock import study_lock

    with study_lock(cfg.output_dir):  # one study process per folder (StudyLocked names the other one)
        from rich.markup import escape

        for line in resume_notes(cfg, summary=False):  # what is kept: once the data is loaded (note_other_data)
            progress.log(escape(line))  # plain text: paths and values may hold [brackets]
        return make_executor(cfg.run).run(cfg, progress=progress)


UNREADABLE = "(config.toml)"


def _result_settings(toml_text: str) -> dict:
    """A config.toml's settings that decide results: not the folder's path (spelt other ways) nor [run]."""
    import tomllib

    try:
        d = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as exc:
        return {UNREADABLE: f"not readable as TOML: {exc}"}  # said as such, not as every setting 'not set'
    d.pop("output_dir", None)
    d.pop("run", None)
    return d


def _changed_settings(old: dict, new: dict, *, most: int = 4) -> str:
    """'finetune.lr: 0.01 -> 0.02; seeds: [0, 1] -> [0]' for the settings whose stored and new values differ."""
    def flat(d: dict, pre: str = "") -> dict:
        return {k2: v2 for k, v in d.items() for k2, v2 in
                (flat(v, f"{pre}{k}.") if isinstance(v, dict) else {f"{pre}{k}": v}).items()}

    a, b = flat(old), flat(new)
    keys = [k for k in dict.fromkeys([*b, *a]) if a.get(k, "not set") != b.get(k, "not set")]
    text = lambda v: v if v == "not set" else json.dumps(v)  # noqa: E731
    return "; ".join(f"{k}: {text(a.get(k, 'not set'))} -> {text(b.get(k, 'not set'))}" for k in keys[:most]) + \
        (f"; and {len(keys) - most} more" if len(keys) > most else "")


def resume_notes(cfg: StudyConfig, data: str | None = None, *, summary: bool = True) -> list[str]:
    """What a rerun into an existing folder keeps: a changed config.toml, done cells (with ``summary``; cells done
    on other data than ``data``, the fingerprint of the data at hand, are counted as to run; without ``data``, the
    data.json of the last run stands in for it), cells of other settings. ``execute_study`` says what is kept once
    the data is loaded (``Store.note_other_data``), so it asks for the rest alone."""
    store = Store(cfg.output_dir)
    if not store.cells_dir.is_dir():
        return []
    dense, prune = plan_cells(cfg)
    cells = [*dense, *prune]
    notes = []
    stored = Path(cfg.output_dir) / "config.toml"
    if stored.is_file() and (changed := (old := _result_settings(stored.read_text())).get(UNREADABLE) or
                             _changed_settings(old, _result_settings(cfg.to_toml()))):
        notes.append(f"{stored} differs from this run's settings ({changed}): cells whose settings changed are "
                     "recomputed, the others kept; config.toml is rewritten")
    if summary and (line := store.resume_summary(cells, data if data is not None else store.data_fingerprint())):
        notes.append(line)
    for d in dense:  # a damaged checkpoint of a done dense cell: the run does not retrain it (see `status`)
        if store.is_done(d.name, d.key) and (damaged := store.damaged_model(d.name)):
            notes.append(damaged)
    planned = {c.name for c in cells}
    other = sorted(p.name for p in store.cells_dir.iterdir() if p.is_dir() and p.name not in planned)
    if other:
        notes.append(f"{len(other)} stored cell(s) belong to other seeds, rates or methods and are left as they are "
                     f"(not in this run's tables): {', '.join(other[:4])}{' ...' if len(other) > 4 else ''}")
    return notes
