"""Run the cells of a study as Ray tasks (a local Ray instance or a cluster at ``address``).

Each cell is one task with ``num_cpus`` and a (fractional) ``num_gpus`` request, so several small cells
share one device. A task runs its cell in a private temporary folder and returns the files of that cell
(result.json, checkpoint, ...) as bytes; the driver writes them into the study folder as the tasks finish
(``ray.wait``), the result last. Workers therefore need no shared file system. A worker lost mid-cell is a
system failure that Ray retries (``max_retries``); a cell that raises (a NaN loss, say) returns a failed
result, which is stored and not retried.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from typing import Callable

from prunefair.progress import NULL_PROGRESS, Progress
from prunefair.study.cells import (
    DenseCell, PruneCell, dense_failure, diagnostics_current, diagnostics_key, failure_record, plan_cells,
)
from prunefair.study.executors import (
    check_workers_see_the_data, data_fingerprint, find_cell, run_prune_in, worker_runner,
)
from prunefair.study.store import Store, atomic_write_bytes, atomic_write_text

RESULT = "result.json"
DATA_JSON = "../../data.json"  # the study's data description, returned by dense tasks


def _cell_files(store: Store, name: str) -> dict[str, bytes]:
    folder = store.cell_dir(name)
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != "running.json"
            and not p.name.startswith(".")}


def _task_files(store: Store, name: str, cfg_dict: dict) -> dict[str, bytes]:
    """A task's cell files, its result naming the study's folder where it names the task's temporary one (an
    error about a checkpoint should name the file the user has)."""
    files = _cell_files(store, name)
    if RESULT in files:
        files[RESULT] = files[RESULT].replace(json.dumps(str(store.root))[1:-1].encode(),
                                              json.dumps(str(cfg_dict["output_dir"]))[1:-1].encode())
    return files


def _stage(store: Store, name: str, files: dict[str, bytes]) -> None:
    folder = store.cell_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    for fname, blob in files.items():
        (folder / fname).write_bytes(blob)


def _threads(cfg_dict: dict) -> int:
    """Torch threads in a task: the CPUs it asked for (Ray sets OMP_NUM_THREADS=1 otherwise)."""
    return max(1, int(cfg_dict.get("run", {}).get("cpus_per_cell", 1)))


def ray_dense_task(cfg_dict: dict, name: str, stored: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """Train the dense cell ``name`` in a temporary store, or, given its ``stored`` files (a done cell whose
    diagnostics are wanted anew), reload it and compute only the diagnostics; return its files."""
    with tempfile.TemporaryDirectory(prefix="prunefair-") as tmp:
        runner = worker_runner(cfg_dict, tmp, threads=_threads(cfg_dict))
        if stored:
            _stage(runner.store, name, stored)
        runner.run_dense_cell(find_cell(runner.cfg, name))
        return {**_task_files(runner.store, name, cfg_dict),
                DATA_JSON: json.dumps(runner.data.describe(), indent=1).encode()}


def ray_fingerprint_task(cfg_dict: dict) -> str:
    """The fingerprint of the study's data, loaded on a worker (the driver may not see data.root)."""
    with tempfile.TemporaryDirectory(prefix="prunefair-") as tmp:
        return data_fingerprint(cfg_dict, tmp, threads=_threads(cfg_dict))


def ray_prune_task(cfg_dict: dict, name: str, dense_files: dict[str, bytes]) -> dict[str, bytes]:
    """Run the pruning cell ``name`` on the dense model given as files; return its files."""
    with tempfile.TemporaryDirectory(prefix="prunefair-") as tmp:
        runner = worker_runner(cfg_dict, tmp, threads=_threads(cfg_dict))
        cell = find_cell(runner.cfg, name)
        _stage(runner.store, cell.dense.name, dense_files)
        run_prune_in(runner, cell)
        return _task_files(runner.store, name, cfg_dict)


def store_cell_files(store: Store, name: str, files: dict[str, bytes]) -> None:
    """Write a finished cell's files into the study folder, result.json last (it marks the cell done)."""
    if RESULT not in files:
        raise RuntimeError(f"cell {name}: the task returned no {RESULT}")
    for fname, blob in files.items():
        if fname == DATA_JSON:
            atomic_write_bytes(store.root / "data.json", blob)
        elif fname != RESULT and "/" not in fname:
            atomic_write_bytes(store.cell_dir(name) / fname, blob)
    atomic_write_bytes(store.result_path(name), files[RESULT])
    store.clear_running(name)


def _answers(host: str, port: int, timeout_s: float = 5.0) -> str | None:
    """None if something accepts a TCP connection at host:port, else why not."""
    import socket

    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
        return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def cluster_address(address: str | None, log=lambda line: None) -> str | None:
    """The address to give ``ray.init``, once a cluster answers there. Ray itself retries a cluster that does not
    answer (a wrong --address, a head node killed or stopped) for a quarter of an hour before it gives up, and
    an omitted address joins the cluster the last ``ray start`` recorded, dead or alive. So: a dead one named by
    ``address`` (or RAY_ADDRESS) is a ConnectionError naming it, now; a dead one only recorded (address omitted)
    is said and a local instance started instead, as the documentation promises."""
    import os

    try:
        from ray._private.services import canonicalize_bootstrap_address, parse_address
    except ImportError:  # another Ray: leave the address to Ray
        return address
    where = f"run.address (--address) = {address!r}" if address else None
    if address and address.startswith("ray://"):  # the Ray client: a head node's client port
        parsed = parse_address(address[len("ray://"):])
        target = f"{parsed[0]}:{parsed[1]}" if parsed else None
    else:
        try:
            target = canonicalize_bootstrap_address(address)
        except ConnectionError as exc:  # "auto" and no cluster recorded or running here
            raise ConnectionError(f"{where}: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        parsed = parse_address(target) if target else None
    if parsed is None:  # start a local instance (or an address form left to Ray)
        return address
    why = _answers(parsed[0], int(parsed[1]))
    if why is None:
        return address
    if address is None and not os.environ.get("RAY_ADDRESS"):
        log(f"[yellow]the Ray cluster last started on this machine ({target}) does not answer ({why}): starting a "
            "local Ray instance (`ray stop --force` forgets that cluster)")
        return "local"
    source = where or f"RAY_ADDRESS = {os.environ.get('RAY_ADDRESS')!r}"
    recorded = " (the cluster last started on this machine; `ray stop --force` forgets it)" if address == "auto" \
        and not os.environ.get("RAY_ADDRESS") else ""
    raise ConnectionError(f"{source}: no Ray cluster answers at {target}{recorded} ({why}); start it (`ray start "
                          "--head`), give the address `ray start` printed, or omit the address to start a local Ray "
                          "instance")


@dataclass
class RayExecutor:
    address: str | None = None
    cpus_per_cell: float = 1.0
    gpus_per_cell: float = 0.0
    max_retries: int = 3
    dense_task: Callable = field(default=ray_dense_task, repr=False)
    prune_task: Callable = field(default=ray_prune_task, repr=False)
    fingerprint_task: Callable = field(default=ray_fingerprint_task, repr=False)

    def run(self, cfg, *, progress: Progress = NULL_PROGRESS) -> list[dict]:
        check_workers_see_the_data(cfg, "Ray tasks")
        try:
            import ray
        except ImportError:
            raise RuntimeError("executor = 'ray' needs Ray: pip install 'prunefair[ray]'") from None
        own = not ray.is_initialized()
        if own:
            import logging

            address = cluster_address(self.address, progress.log)  # a cluster that does not answer: said now
            # Ray's own INFO lines ("Started a local Ray instance") never; its warnings unless the run is quiet
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR if progress.quiet else logging.WARNING)
        try:
            return self._run(ray, cfg, progress)
        finally:
            if own:
                ray.shutdown()

    def _check_resources(self, ray) -> None:
        """A cell asking for more CPUs or GPUs than the whole cluster has would wait forever (Ray only logs it)."""
        have = ray.cluster_resources()
        for kind, want in (("CPU", self.cpus_per_cell), ("GPU", self.gpus_per_cell)):
            if want > have.get(kind, 0.0):
                raise RuntimeError(f"run.{kind.lower()}s_per_cell = {want:g}, but the Ray cluster has "
                                   f"{have.get(kind, 0.0):g} {kind}(s) in all: no cell could ever start")

    def _check_device(self, ray, cfg, progress: Progress) -> None:
        """Ray hides every GPU from a task that asks for none (CUDA_VISIBLE_DEVICES=""): device = 'cuda' with
        run.gpus_per_cell = 0 failed in every task with "no CUDA device is available", and 'auto' ran on the CPU."""
        if self.gpus_per_cell > 0:
            return
        advice = "set run.gpus_per_cell (--set run.gpus_per_cell=0.25: four cells share a GPU)"
        if cfg.device == "cuda":
            raise RuntimeError(f"device = 'cuda' but run.gpus_per_cell = 0: Ray hides the GPUs from a task that asks "
                               f"for none, so no cell would see one; {advice}")
        if cfg.device == "auto" and ray.cluster_resources().get("GPU", 0.0) > 0:
            progress.log(f"[yellow]device = 'auto' with run.gpus_per_cell = 0: the cells run on the CPU (Ray hides the "
                         f"GPUs from a task that asks for none); {advice} to use them")

    def _run(self, ray, cfg, progress: Progress) -> list[dict]:
        self._check_resources(ray)
        self._check_device(ray, cfg, progress)
        store = Store(cfg.output_dir)
        opts = {"num_cpus": self.cpus_per_cell, "num_gpus": self.gpus_per_cell, "max_retries": self.max_retries}
        dense_remote = ray.remote(**opts)(self.dense_task)
        prune_remote = ray.remote(**opts)(self.prune_task)
        cfg_dict = cfg.to_dict()
        cfg_dict["run"]["cpus_per_cell"] = self.cpus_per_cell  # tasks use this many torch threads
        dense_cells, prune_cells = plan_cells(cfg)
        pending: dict = {}
        try:  # the data, loaded on a worker: a missing folder or refused data is said as a local run says it
            fp = ray.get(ray.remote(**opts)(self.fingerprint_task).remote(cfg_dict))
        except ray.exceptions.RayTaskError as exc:
            if isinstance(getattr(exc, "cause", None), Exception):  # not Ray's page of the worker's traceback
                raise exc.cause from None
            raise
        atomic_write_text(store.root / "config.toml", cfg.to_toml())  # once the data is loaded, as a local run does
        store.note_other_data([*dense_cells, *prune_cells], fp, progress.log)

        def submit_prunes(d: DenseCell, files_ref) -> None:
            for c in prune_cells:
                if c.dense == d and not store.is_done(c.name, c.key, fp):
                    store.mark_running(c.name, c.key, executor="ray")
                    pending[prune_remote.remote(cfg_dict, c.name, files_ref)] = c

        for d in dense_cells:
            stored = store.is_done(d.name, d.key, fp) and store.has_model(d.name, d.key)
            if stored and diagnostics_current(cfg, d, store.read_result(d.name)):
                if any(c.dense == d and not store.is_done(c.name, c.key, fp) for c in prune_cells):
                    submit_prunes(d, ray.put(_cell_files(store, d.name)))
            else:  # to train, or (stored) to reload and compute the diagnostics of the current section
                diagnostics = {"stage": "diagnostics", "diagnostics": diagnostics_key(cfg, d)} if stored else {}
                store.mark_running(d.name, d.key, executor="ray", **diagnostics)  # status: "queued or running"
                pending[dense_remote.remote(cfg_dict, d.name, _cell_files(store, d.name) if stored else None)] = d
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            cell: DenseCell | PruneCell = pending.pop(ready[0])
            try:
                files = ray.get(ready[0])
            except ray.exceptions.RayError as exc:
                files = None
                if isinstance(exc, ray.exceptions.RayTaskError):  # the task itself raised (not the cell)
                    error = f"Ray task raised {type(exc.cause).__name__}: {exc.cause}"
                else:  # retries spent: the worker kept dying, or Ray lost the task
                    error = f"Ray task failed after {self.max_retries} retries: {type(exc).__name__}: {exc}"
                done = store.read_result(cell.name) if store.is_done(cell.name, cell.key, fp) else None
                if isinstance(cell, DenseCell) and done is not None:
                    # a done dense cell sent to compute new diagnostics: its model and result stay; the failure
                    # is stored as the diagnostics' (the next run tries them again), as a local run does
                    diagnostics = {"key": diagnostics_key(cfg, cell), "error": error[:2000]}
                    store.write_result(cell.name, {**done, "diagnostics": diagnostics})
                    progress.log(f"[red]diagnostics of {cell.name} failed: {error[:200]}")
                else:
                    store.write_result(cell.name, failure_record(cell, error[:2000]))
            if files is not None:
                store_cell_files(store, cell.name, files)
            ok = store.is_done(cell.name, cell.key)
            progress.log(f"cell {cell.name}: {'done' if ok else 'failed'}")
            if isinstance(cell, DenseCell):
                if ok:
                    submit_prunes(cell, ray.put(_cell_files(store, cell.name)))
                else:
                    err = (store.read_result(cell.name) or {}).get("error", "failed")
                    for c in prune_cells:
                        if c.dense == cell and not store.is_done(c.name, c.key, fp):
                            store.write_result(c.name, dense_failure(c, err))
        return store.results()
