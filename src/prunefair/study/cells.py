"""The grid of a study: one dense cell per seed, one pruning cell per (seed, rate, method).

Each cell's key hashes everything that determines its result, so a changed field reruns only the
cells it touches and a finished cell is never recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass

from prunefair.config import StudyConfig, config_hash
from prunefair.mitigate.registry import method_options


@dataclass(frozen=True)
class DenseCell:
    seed: int
    key: str

    @property
    def name(self) -> str:
        return f"s{self.seed}_dense"


@dataclass(frozen=True)
class PruneCell:
    seed: int
    rate: float
    method: str
    key: str
    dense: DenseCell

    @property
    def name(self) -> str:
        return f"s{self.seed}_p{self.rate:g}_{self.method}"


def dense_spec(cfg: StudyConfig, seed: int) -> dict:
    data = cfg.data.model_dump(mode="json", exclude={"cache_dir", "workers"})  # these never change results
    return {"data": data, "model": cfg.model.model_dump(mode="json"),
            "train": cfg.train.key_spec(), "seed": seed, "splits": cfg.eval.splits}


def plan_cells(cfg: StudyConfig) -> tuple[list[DenseCell], list[PruneCell]]:
    dense_cells, prune_cells = [], []
    ft = cfg.finetune.key_spec()
    ft.pop("methods")
    prune = cfg.prune.key_spec()  # default fields left out, so keys of older studies hold
    for seed in cfg.seeds:
        d = DenseCell(seed, config_hash(dense_spec(cfg, seed)))
        dense_cells.append(d)
        for rate in cfg.prune.rates:
            for method in cfg.finetune.methods:
                spec = {"dense": d.key, "prune": prune, "rate": rate, "finetune": ft, "method": method}
                options = method_options(method, cfg.mitigate)  # None for plain NFT: keys of old studies hold
                if options:
                    spec["mitigate"] = options
                key = config_hash(spec)
                prune_cells.append(PruneCell(seed, rate, method, key, d))
    return dense_cells, prune_cells


def cell_fields(cell: DenseCell | PruneCell) -> dict:
    """What a result record says about its cell besides the key: kind, seed, method and rate."""
    if isinstance(cell, DenseCell):
        return {"kind": "dense", "seed": cell.seed, "method": "dense", "rate": 0.0}
    return {"kind": "prune", "seed": cell.seed, "method": cell.method, "rate": cell.rate}


def failure_record(cell: DenseCell | PruneCell, message: str, status: str = "failed") -> dict:
    return {"name": cell.name, "key": cell.key, "status": status, **cell_fields(cell), "error": message}


def dense_failure(cell: PruneCell, error: str) -> dict:
    """The record of a pruning cell that could not run because its dense model failed or could not be reloaded."""
    return failure_record(cell, f"dense model {cell.dense.name}: {error}")


def diagnostics_key(cfg: StudyConfig, d: DenseCell) -> str:
    """The key of a dense model's diagnostics: its cell's key and the [diagnostics] section."""
    return config_hash({"dense": d.key, "diagnostics": cfg.diagnostics.key_spec()})


def diagnostics_current(cfg: StudyConfig, d: DenseCell, result: dict | None) -> bool:
    """True when no diagnostics are wanted, or ``result`` (the dense cell's) holds those of the current section."""
    d_stored = (result or {}).get("diagnostics")
    stored = d_stored.get("key") if isinstance(d_stored, dict) else None  # a hand-edited value is not current
    return not cfg.diagnostics.enabled or stored == diagnostics_key(cfg, d)
