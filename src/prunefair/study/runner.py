"""Run the cells of a study: train (or reload) each dense model, prune, fine-tune, evaluate, store.

A failing cell (a non-finite loss, say) is recorded as failed with its message; the others go on.
"""

from __future__ import annotations

import copy
import time
import traceback
from dataclasses import dataclass

import torch
from torch import nn

from prunefair.config import StudyConfig
from prunefair.data import DatasetSplits, load_dataset
from prunefair.measure import evaluate_groups
from prunefair.models import build_model, count_parameters
from prunefair.progress import NULL_PROGRESS, Progress
from prunefair.prune import make_masks, parameter_distance
from prunefair.study.cells import DenseCell, PruneCell, plan_cells
from prunefair.study.store import Store, atomic_write_text, load_model_state, save_checkpoint
from prunefair.train import TrainSettings, fit


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device = 'cuda' but no CUDA device is available; use device = 'cpu' or 'auto'")
    return torch.device(name)


def load_study_data(cfg: StudyConfig) -> DatasetSplits:
    d = cfg.data
    return load_dataset(d.dataset, root=d.root, target=d.target, group=d.group, image_size=d.image_size,
                        val_fraction=d.val_fraction, test_fraction=d.test_fraction, split_seed=d.split_seed)


def build_study_model(cfg: StudyConfig, data: DatasetSplits) -> nn.Module:
    return build_model(cfg.model.name, num_classes=data.train.num_classes, input_shape=data.train.input_shape,
                       width=cfg.model.width, batch_norm=cfg.model.batch_norm)


def _settings(section) -> TrainSettings:
    return TrainSettings(epochs=section.epochs, batch_size=section.batch_size, lr=section.lr,
                         momentum=section.momentum, weight_decay=section.weight_decay, schedule=section.schedule,
                         crop_padding=section.crop_padding, flip=section.flip)


@dataclass
class StudyRunner:
    cfg: StudyConfig
    store: Store
    data: DatasetSplits
    device: torch.device
    progress: Progress = NULL_PROGRESS

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
        if self.store.is_done(cell.name, cell.key) and ckpt.is_file():
            load_model_state(model, ckpt)
            model.eval()
            return model, self.store.read_result(cell.name)
        t0 = time.perf_counter()
        history = fit(model, self.data.train, _settings(self.cfg.train), seed=cell.seed, device=self.device,
                      channels_last=self.cfg.model.channels_last, progress=self.progress,
                      description=f"seed {cell.seed}: dense training")
        t1 = time.perf_counter()
        metrics = self.evaluate(model)
        t2 = time.perf_counter()
        save_checkpoint(ckpt, model.state_dict(), metadata={"cell": cell.name, "key": cell.key})
        result = {
            "kind": "dense", "name": cell.name, "key": cell.key, "status": "done", "seed": cell.seed,
            "method": "dense", "rate": 0.0, "achieved_sparsity": 0.0, "parameters": count_parameters(model),
            "metrics": metrics, "history": history.epochs,
            "timing": {"train_s": t1 - t0, "eval_s": t2 - t1},
        }
        self.store.write_result(cell.name, result)
        return model, result

    # -- pruned --------------------------------------------------------------------------------
    def prune_cell(self, cell: PruneCell, dense: nn.Module) -> dict:
        t0 = time.perf_counter()
        model = copy.deepcopy(dense)
        masks = make_masks(model, cell.rate, scope=self.cfg.prune.scope, method=self.cfg.prune.method)
        masks.bind(model).apply()
        oneshot = self.evaluate(model)
        oneshot_distance = parameter_distance(model, dense)
        t1 = time.perf_counter()
        history = fit(model, self.data.train, _settings(self.cfg.finetune), seed=cell.seed, device=self.device,
                      masks=masks, channels_last=self.cfg.model.channels_last, progress=self.progress,
                      description=f"seed {cell.seed}: prune {cell.rate:g} + {cell.method}")
        t2 = time.perf_counter()
        metrics = self.evaluate(model)
        t3 = time.perf_counter()
        return {
            "kind": "prune", "name": cell.name, "key": cell.key, "status": "done", "seed": cell.seed,
            "method": cell.method, "rate": cell.rate, "dense": cell.dense.name,
            "achieved_sparsity": masks.sparsity, "layer_sparsity": masks.layer_sparsity(),
            "distance": parameter_distance(model, dense), "distance_oneshot": oneshot_distance,
            "oneshot": oneshot, "metrics": metrics, "history": history.epochs,
            "timing": {"prune_eval_s": t1 - t0, "finetune_s": t2 - t1, "eval_s": t3 - t2},
        }

    # -- the whole grid ------------------------------------------------------------------------
    def run(self) -> list[dict]:
        dense_cells, prune_cells = plan_cells(self.cfg)
        atomic_write_text(self.store.root / "config.toml", self.cfg.to_toml())
        for d in dense_cells:
            todo = [c for c in prune_cells if c.dense == d and not self.store.is_done(c.name, c.key)]
            try:
                dense, _ = self.dense_model(d)
            except Exception as exc:  # record and go on with other seeds
                self._fail(d.name, d.key, exc, {"kind": "dense", "seed": d.seed, "method": "dense", "rate": 0.0})
                for c in todo:
                    self._fail(c.name, c.key, RuntimeError(f"dense model {d.name} failed"),
                               {"kind": "prune", "seed": c.seed, "method": c.method, "rate": c.rate})
                continue
            for c in todo:
                try:
                    self.store.write_result(c.name, self.prune_cell(c, dense))
                except Exception as exc:
                    self._fail(c.name, c.key, exc, {"kind": "prune", "seed": c.seed, "method": c.method,
                                                    "rate": c.rate})
        return self.store.results()

    def _fail(self, name: str, key: str, exc: BaseException, extra: dict) -> None:
        self.progress.log(f"[red]cell {name} failed: {exc}")
        self.store.write_result(name, {"name": name, "key": key, "status": "failed", **extra,
                                       "error": f"{type(exc).__name__}: {exc}",
                                       "traceback": traceback.format_exc(limit=5)})


def execute_study(cfg: StudyConfig, *, progress: Progress = NULL_PROGRESS) -> list[dict]:
    """Run every unfinished cell of ``cfg`` into its output folder; return all stored results."""
    device = resolve_device(cfg.device)
    data = load_study_data(cfg)
    runner = StudyRunner(cfg, Store(cfg.output_dir), data, device, progress)
    return runner.run()
