"""A study's results as tidy tables, built from the store alone.

- ``by_group``: a row per (seed, method, sparsity, stage, split, group), dense rows at sparsity 0;
- ``measures``: a row per (seed, method, sparsity, stage, split) with every disparity measure;
- ``summary()``: measures as mean and standard deviation over seeds; ``group_summary()`` the same per group;
- ``layer_sparsity()``: the achieved sparsity of every pruned layer, per pruning cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from prunefair.config import StudyConfig, load_config
from prunefair.measure import GroupStats, pruning_impact
from prunefair.study.cells import DenseCell, diagnostics_current, failure_record, plan_cells
from prunefair.study.store import CorruptResult, Store, atomic_write_text, on_other_data

KEYS = ["seed", "method", "sparsity", "stage", "split"]


@dataclass
class StudyResults:
    config: StudyConfig
    by_group: pd.DataFrame
    measures: pd.DataFrame
    cells: list[dict] = field(repr=False)
    failed: list[dict] = field(default_factory=list)
    # planned cells with no usable result (none stored, or only one of other settings or data), by name; of them,
    # those whose stored done result has another key (config.toml edited after it ran, or a copied result.json)
    # and those computed on other data than data.json records: `prunefair study` recomputes both
    pending: list[str] = field(default_factory=list)
    other_settings: list[str] = field(default_factory=list)
    other_data: list[str] = field(default_factory=list)
    planned: int = 0

    def __repr__(self) -> str:
        seeds = sorted({int(r["seed"]) for r in self.cells if "seed" in r})
        return (f"StudyResults({self.config.name!r}, {self.config.output_dir!r}: {len(self.cells)} cells done, "
                f"{len(self.failed)} failed, seeds {seeds}, {self.by_group.group.nunique() if len(self.by_group) else 0}"
                f" groups; .by_group, .measures, .summary(), .group_summary())")

    @classmethod
    def from_store(cls, root: str | Path, config: StudyConfig | None = None) -> "StudyResults":
        store = Store(root)
        if config is None:
            cfg_path = store.root / "config.toml"
            if not cfg_path.is_file():
                raise FileNotFoundError(f"{cfg_path}: not a study folder (no config.toml)")
            config = load_config(cfg_path, stored=True)
        dense_cells, prune_cells = plan_cells(config)
        cells, failed, pending, other_settings, other_data = [], [], [], [], []
        data = store.data_fingerprint()  # of the data the last run loaded
        for cell in [*dense_cells, *prune_cells]:
            try:
                r = store.read_result(cell.name)
            except CorruptResult as exc:  # listed with the failed cells, by file, instead of stopping the report
                failed.append(failure_record(cell, str(exc), status="corrupt"))
                continue
            if r is None or r.get("key") != cell.key:
                pending.append(cell.name)
                if r is not None and r.get("status") == "done":  # config.toml edited since, or a copied file
                    other_settings.append(cell.name)
                continue
            if on_other_data(r, data):  # the next run recomputes it (status says "outdated")
                pending.append(cell.name)
                other_data.append(cell.name)
                continue
            if isinstance(cell, DenseCell) and r.get("diagnostics") and \
                    (not config.diagnostics.enabled or not diagnostics_current(config, cell, r)):
                r = {k: v for k, v in r.items() if k != "diagnostics"}  # turned off, or under another [diagnostics]
            if r.get("name") != cell.name:  # the folder names the cell (tables and messages use the name)
                r = {**r, "name": cell.name}
            (cells if r.get("status") == "done" else failed).append(r)
        by_group, measures, unusable = _tables(cells, store)
        if unusable:  # results that cannot be compared with their dense cell's: listed by file, the rest kept
            named = {c.name: c for c in [*dense_cells, *prune_cells]}
            cells = [r for r in cells if r["name"] not in unusable]
            failed += [failure_record(named[name], message, status="corrupt") for name, message in unusable.items()]
        return cls(config, by_group, measures, cells, failed, pending, other_settings, other_data,
                   planned=len(dense_cells) + len(prune_cells))

    def left_out_notes(self, root: str | Path | None = None) -> list[str]:
        """A line per kind of stored result that the tables leave out though its cell is planned: results of other
        settings than config.toml, and results computed on other data than data.json records, naming up to five
        cells and what to do; [] if none."""
        where = Path(root if root is not None else self.config.output_dir)
        out = []
        if n := len(self.other_settings):
            out.append(f"{where}: {n} stored result(s) are of other settings than config.toml (edited after they "
                       f"ran, or copied from another study?): {_names(self.other_settings)}; `prunefair study` "
                       "recomputes them; restore config.toml to report them")
        if n := len(self.other_data):
            out.append(f"{where}: {n} stored result(s) were computed on other data than data.json records (the data "
                       f"changed, or a rerun on changed data was interrupted): {_names(self.other_data)}; "
                       "`prunefair study` recomputes them on the data as it is now")
        return out

    def pending_note(self, root: str | Path | None = None) -> str | None:
        """'N of M planned cells are pending (names)', None if none is: cells without a usable result (not run yet,
        running, killed, or holding a result of other settings or data), left out of the tables."""
        if not self.pending:
            return None
        where = Path(root if root is not None else self.config.output_dir)
        n = len(self.pending)
        one = n == 1
        return f"{where}: {n} of {self.planned} planned cells {'is' if one else 'are'} pending " \
               f"({_names(self.pending)}), not in the tables: `prunefair status {where}` says whether " \
               f"{'it runs' if one else 'they run'}, `prunefair study` finishes {'it' if one else 'them'}"

    def summary(self) -> pd.DataFrame:
        """Every measure, mean and std (ddof 1) over seeds, per (method, sparsity, stage, split); the std is NaN
        (empty in the CSV) with one seed, where it is undefined, never 0."""
        if self.measures.empty:
            return pd.DataFrame(columns=["method", "sparsity", "stage", "split", "seeds"])
        value_cols = [c for c in self.measures.columns if c not in KEYS]
        g = self.measures.groupby(["method", "sparsity", "stage", "split"], sort=True)[value_cols]
        mean, std = g.mean(), g.std(ddof=1)
        out = mean.add_suffix("_mean").join(std.add_suffix("_std"))
        out["seeds"] = g.size()
        return out.reset_index()

    def group_summary(self) -> pd.DataFrame:
        """Per-group accuracy, loss, drop, excess loss and psi: mean and std (ddof 1; NaN with one seed) over seeds,
        per (method, sparsity, stage, split, group), with the number of seeds."""
        cols = ["acc_dense", "acc_pruned", "loss_dense", "loss_pruned", "accuracy_drop", "excess_loss", "psi"]
        if self.by_group.empty:
            return pd.DataFrame(columns=["method", "sparsity", "stage", "split", "group"])
        g = self.by_group.groupby(["method", "sparsity", "stage", "split", "group"], sort=False)[cols]
        out = g.mean().add_suffix("_mean").join(g.std(ddof=1).add_suffix("_std"))
        out["seeds"] = g.size()
        return out.reset_index()

    def layer_sparsity(self) -> pd.DataFrame:
        """A row per (seed, method, sparsity, layer): the fraction of the layer's weights that the final mask of
        the pruning cell zeroes (its ``layer_sparsity``), layers in the model's order."""
        rows = [{"seed": r["seed"], "method": r["method"], "sparsity": float(r["rate"]), "layer": layer,
                 "achieved": float(v)}
                for r in self.cells if r.get("kind") == "prune" and isinstance(r.get("layer_sparsity"), dict)
                for layer, v in r["layer_sparsity"].items()]
        return pd.DataFrame(rows, columns=["seed", "method", "sparsity", "layer", "achieved"])

    def write_tables(self, root: str | Path) -> dict[str, Path]:
        root = Path(root)
        paths = {"by_group": root / "table.csv", "measures": root / "measures.csv", "summary": root / "summary.csv",
                 "group_summary": root / "group_summary.csv"}
        atomic_write_text(paths["by_group"], self.by_group.to_csv(index=False))
        atomic_write_text(paths["measures"], self.measures.to_csv(index=False))
        atomic_write_text(paths["summary"], self.summary().to_csv(index=False))
        atomic_write_text(paths["group_summary"], self.group_summary().to_csv(index=False))
        layers = self.layer_sparsity()
        if not layers.empty:
            paths["layer_sparsity"] = root / "layer_sparsity.csv"
            atomic_write_text(paths["layer_sparsity"], layers.to_csv(index=False))
        return paths


def _names(names: list[str], most: int = 5) -> str:
    """Up to ``most`` names, then how many more."""
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _empty(stats) -> bool:
    """Whether a stored split's statistics count no sample at all (then every number of it would be NaN)."""
    count = stats.get("count") if isinstance(stats, dict) else None
    return isinstance(count, list) and all(isinstance(c, (int, float)) and c == 0 for c in count)


def _cell_rows(r: dict, d: dict) -> tuple[list[pd.DataFrame], list[dict]]:
    """The by-group and measure rows of the done result ``r`` against ``d``, its seed's dense result."""
    group_rows, measure_rows = [], []
    stages = [("dense", r["metrics"])] if r["kind"] == "dense" else [("oneshot", r["oneshot"]),
                                                                      ("finetuned", r["metrics"])]
    for stage, metrics in stages:
        for split, stats in metrics.items():
            if split not in d["metrics"] or _empty(stats):  # a split without samples (data.val_fraction = 0)
                continue
            impact = pruning_impact(GroupStats.from_dict(d["metrics"][split]), GroupStats.from_dict(stats))
            keys = {"seed": r["seed"], "method": r.get("method", "dense"), "sparsity": float(r.get("rate", 0.0)),
                    "stage": stage, "split": split}
            extra = {"achieved_sparsity": r.get("achieved_sparsity", 0.0),
                     "distance": r.get("distance_oneshot" if stage == "oneshot" else "distance", 0.0)}
            bg = impact.by_group.copy()
            bg["group_id"] = np.arange(len(bg))
            for k, v in reversed(keys.items()):
                bg.insert(0, k, v)
            group_rows.append(bg)
            measure_rows.append({**keys, **extra, **impact.measures})
    return group_rows, measure_rows


def _tables(cells: list[dict], store: Store) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """(by_group, measures, unusable): ``unusable`` maps the cells whose results cannot be compared with their
    seed's dense result (other groups or sample counts: edited by hand) to why, naming the files; their rows are
    left out and the other cells' kept."""
    dense = {r["seed"]: r for r in cells if r.get("kind") == "dense"}
    group_rows, measure_rows, unusable = [], [], {}
    for r in cells:
        d = dense.get(r["seed"])
        if d is None:
            continue
        try:
            g, m = _cell_rows(r, d)
        except (KeyError, TypeError, ValueError) as exc:
            path, dense_path = store.result_path(r["name"]), store.result_path(d["name"])
            detail = f"{type(exc).__name__}: {exc}" if isinstance(exc, KeyError) else str(exc)
            unusable[r["name"]] = f"{path}: {detail}" + (f" (against {dense_path})" if r is not d else "") + \
                "; a rerun keeps it: delete the file (or the dense cell's, if that one is wrong) to recompute it"
            continue
        group_rows += g
        measure_rows += m
    if not measure_rows:  # no comparable cell (every one failed, or none ran): empty, with the key columns
        return pd.DataFrame(columns=KEYS + ["group"]), pd.DataFrame(columns=KEYS), unusable
    by_group = pd.concat(group_rows, ignore_index=True).sort_values(KEYS + ["group_id"], kind="stable")
    measures = pd.DataFrame(measure_rows).sort_values(KEYS, kind="stable")
    return by_group.reset_index(drop=True), measures.reset_index(drop=True), unusable
