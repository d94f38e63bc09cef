"""The mitigation outputs read from stored cells: the dual history and its figure under every pruning schedule."""

from types import SimpleNamespace

import pandas as pd

import prunefair.report.mitigation as mit


def _iterative_cell(seed: int = 0) -> dict:
    """A pruned cell of an iterative schedule: 2 rounds of 2 epochs, each round's epochs numbered from 1 again
    (train/pruned.py), the multipliers growing over the 4 epochs."""
    history = [{"epoch": e, "round": r, "loss": 1.0, "multipliers": [0.1 * (2 * (r - 1) + e), 0.0],
                "violations": [0.5, None]} for r in (1, 2) for e in (1, 2)]
    return {"kind": "prune", "seed": seed, "method": "el", "rate": 0.9, "history": history,
            "mitigation": {"method": "el", "selection": "last", "selected_epoch": 4}}


def test_dual_history_runs_on_across_the_rounds_of_an_iterative_schedule():
    """Each epoch of the cell is its own point, numbered by its position in the history (as selected_epoch is): the
    rounds' epochs 1, 2, 1, 2 used to be merged, so the figure averaged round 1's multipliers with round 2's."""
    h = mit.dual_history(SimpleNamespace(cells=[_iterative_cell()]))
    g0 = h[h.group_id == 0].sort_values("epoch")
    assert g0.epoch.tolist() == [1, 2, 3, 4]
    assert g0.multiplier.tolist() == [0.1, 0.2, 0.30000000000000004, 0.4]
    assert h[h.group_id == 1].violation.isna().all()


def test_dual_figure_plots_every_epoch_of_an_iterative_schedule(monkeypatch, tmp_path):
    results = SimpleNamespace(cells=[_iterative_cell(0), _iterative_cell(1)],
                              by_group=pd.DataFrame({"group_id": [0, 1], "group": ["a", "b"]}),
                              config=SimpleNamespace(name="iterative"))
    shown = {}

    def capture(fig, path, **kw):
        line = fig.axes[0].get_lines()[0]
        shown["x"], shown["y"] = list(line.get_xdata()), list(line.get_ydata())
        return path

    monkeypatch.setattr(mit, "save_figure", capture)
    mit.figure_duals(results, tmp_path / "d.png", sparsity=0.9)
    assert shown["x"] == [1, 2, 3, 4]
    assert [round(v, 12) for v in shown["y"]] == [0.1, 0.2, 0.3, 0.4]
