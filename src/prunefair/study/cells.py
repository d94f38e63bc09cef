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
            "train": cfg.train.model_dump(mode="json"), "seed": seed, "splits": cfg.eval.splits}


def plan_cells(cfg: StudyConfig) -> tuple[list[DenseCell], list[PruneCell]]:
    dense_cells, prune_cells = [], []
    ft = cfg.finetune.model_dump(mode="json")
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
