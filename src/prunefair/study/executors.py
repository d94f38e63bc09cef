"""Executors: where the cells of a study run. The store and the cell keys are the same for all of them.

- ``LocalExecutor(workers=1)`` (the default): every cell in this process, one seed after another.
- ``LocalExecutor(workers=N)``: N spawned worker processes; the dense cells first (one per seed), each
  seed's pruning cells submitted as soon as its dense model is stored. Workers write to the store directly.
- ``RayExecutor`` (study/ray_executor.py): cells as Ray tasks; the driver writes what they return.

Workers get the configuration as a dict and rebuild the data themselves (cached per process).
"""

from __future__ import annotations

import multiprocessing
import os
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import torch

from prunefair.config import ConfigError, RunConfig, StudyConfig, config_hash, validate_config
from prunefair.progress import NULL_PROGRESS, Progress
from prunefair.study.cells import DenseCell, PruneCell, dense_failure, diagnostics_current, plan_cells
from prunefair.study.store import Store, atomic_write_json, atomic_write_text

_CACHE: dict = {}  # per worker process: the data of a study (by data-section hash)


def worker_runner(cfg_dict: dict, store_root, *, threads: int | None = None, progress: Progress = NULL_PROGRESS):
    """A StudyRunner built in this process from a config dict (data loaded once per process)."""
    from prunefair.study.runner import StudyRunner, load_study_data, resolve_device

    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with warnings.catch_warnings():  # the config's warnings were said by the driver, for the study
            warnings.simplefilter("ignore", UserWarning)
            cfg = validate_config(cfg_dict, source="worker config")
    except ConfigError as exc:
        from prunefair.models import model_names

        if cfg_dict.get("model", {}).get("name") not in model_names():
            raise ConfigError(f"{exc}\n(a model registered with register_model exists only in the process that "
                              "registered it: register it when a module the workers import is imported, or run "
                              "with run.workers = 1 and the local executor)") from None
        raise
    key = config_hash(cfg.data.model_dump(mode="json"))
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = load_study_data(cfg)
    return StudyRunner(cfg, Store(store_root), _CACHE[key], resolve_device(cfg.device), progress)


def check_workers_see_the_data(cfg: StudyConfig, where: str) -> None:
    """Arrays registered with ``register_arrays`` live in this process only: a worker process cannot load them."""
    from prunefair.data.registry import dataset_info

    if dataset_info(cfg.data.dataset).in_memory:
        raise ValueError(f"data.dataset = {cfg.data.dataset!r} holds arrays registered in this process "
                         f"(register_arrays), which {where} cannot see: run it with run.workers = 1 and the local "
                         "executor (images can also be saved as files and read by the 'folder' dataset)")


def find_cell(cfg: StudyConfig, name: str) -> DenseCell | PruneCell:
    dense, prune = plan_cells(cfg)
    for c in [*dense, *prune]:
        if c.name == name:
            return c
    raise KeyError(f"no cell named {name!r} in this study")


def run_prune_in(runner, c: PruneCell) -> dict:
    """Reload the (stored) dense model of ``c`` and run ``c``; a dense model that cannot be reloaded fails ``c``."""
    dense, error = runner.run_dense_cell(c.dense)
    if dense is None:
        result = dense_failure(c, error)
        runner.store.write_result(c.name, result)
        return result
    return runner.run_prune_cell(c, dense)


# -- functions run in worker processes (module level, so that spawn can import them) --------------
def die_with_parent(parent: int) -> None:
    """Worker initializer: on Linux, ask for SIGTERM when the study's process dies (a ``kill -9`` of it left the
    workers running); elsewhere nothing. A parent already gone ends the worker at once."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)


def data_fingerprint(cfg_dict: dict, store_root: str, threads: int | None = None) -> str:
    """The fingerprint of the study's data, loaded where the cells run (a worker process, a Ray task): the driver,
    which does not load the data, plans with it, so that results computed on other data are recomputed."""
    return worker_runner(cfg_dict, store_root, threads=threads).fingerprint


def _local_dense(cfg_dict: dict, store_root: str, seed: int, threads: int) -> str:
    runner = worker_runner(cfg_dict, store_root, threads=threads)
    atomic_write_json(runner.store.root / "data.json", runner.data.describe())  # as the sequential run does
    d = find_cell(runner.cfg, f"s{seed}_dense")
    _, error = runner.run_dense_cell(d)
    return error


def _local_prune(cfg_dict: dict, store_root: str, name: str, threads: int) -> str:
    runner = worker_runner(cfg_dict, store_root, threads=threads)
    return run_prune_in(runner, find_cell(runner.cfg, name))["status"]


@dataclass
class LocalExecutor:
    workers: int = 1

    def run(self, cfg: StudyConfig, *, progress: Progress = NULL_PROGRESS) -> list[dict]:
        store = Store(cfg.output_dir)
        if self.workers <= 1:
            from prunefair.study.runner import StudyRunner, load_study_data, resolve_device

            runner = StudyRunner(cfg, store, load_study_data(cfg), resolve_device(cfg.device), progress)
            return runner.run()
        check_workers_see_the_data(cfg, f"{self.workers} worker processes")
        dense_cells, prune_cells = plan_cells(cfg)
        cfg_dict, root, threads = cfg.to_dict(), str(store.root), torch.get_num_threads()
        ctx, since = multiprocessing.get_context("spawn"), time.time()
        running: dict[Future, DenseCell | PruneCell] = {}
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=die_with_parent,
                                   initargs=(os.getpid(),))
        try:
            fp = pool.submit(data_fingerprint, cfg_dict, root, threads).result()
            atomic_write_text(store.root / "config.toml", cfg.to_toml())  # once the data loads, as workers = 1 does
            store.note_other_data([*dense_cells, *prune_cells], fp, progress.log)
            for d in dense_cells:
                todo = [c for c in prune_cells if c.dense == d and not store.is_done(c.name, c.key, fp)]
                if store.is_done(d.name, d.key, fp) and store.has_model(d.name, d.key) \
                        and diagnostics_current(cfg, d, store.read_result(d.name)):
                    for c in todo:
                        running[pool.submit(_local_prune, cfg_dict, root, c.name, threads)] = c
                else:
                    running[pool.submit(_local_dense, cfg_dict, root, d.seed, threads)] = d
            while running:
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in finished:
                    outcome = fut.result()  # BrokenProcessPool here: the cell stays listed as running
                    cell = running.pop(fut)
                    progress.log(f"cell {cell.name}: {outcome or 'done'}")
                    if isinstance(cell, DenseCell):
                        todo = [c for c in prune_cells if c.dense == cell and not store.is_done(c.name, c.key, fp)]
                        for c in todo:
                            if outcome:  # the dense model failed: so do its pruning cells
                                store.write_result(c.name, dense_failure(c, outcome))
                            else:
                                running[pool.submit(_local_prune, cfg_dict, root, c.name, threads)] = c
        except BrokenProcessPool as exc:
            raise RuntimeError(_lost_message(store, list(running.values()), since)) from exc
        except KeyboardInterrupt:  # Ctrl-C: stop now; a worker would catch its own and go on with queued cells
            _stop_workers(pool)
            raise
        finally:
            pool.shutdown(wait=True)
        return store.results()


def _lost_message(store: Store, cells: list, since: float) -> str:
    """Why a study with worker processes stopped when one of them died: the pool then ends the others too, so every
    cell a worker had started is lost (a worker marked it after ``since``); the queued ones had not started."""
    def started(c) -> bool:
        m = store.read_running(c.name)
        return m is not None and m.get("key") == c.key and m.get("started", 0) >= since

    lost = sorted(c.name for c in cells if started(c))
    queued = sorted(c.name for c in cells if not started(c))
    return (f"a worker process died (killed, or out of memory?); the cells the workers were running are lost: "
            f"{', '.join(lost) or 'none'}" + (f"; not started: {', '.join(queued)}" if queued else "") +
            "; rerun the same command to resume (finished cells are kept)")


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel the queued cells and end the workers (their running cells stay marked running: stale, rerun them)."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def make_executor(run: RunConfig):
    """The executor a study's [run] section asks for."""
    if run.executor == "ray":
        from prunefair.study.ray_executor import RayExecutor

        return RayExecutor(address=run.address, cpus_per_cell=run.cpus_per_cell, gpus_per_cell=run.gpus_per_cell,
                           max_retries=run.max_retries)
    return LocalExecutor(workers=run.workers)
