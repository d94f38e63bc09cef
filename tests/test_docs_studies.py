"""The scripts under docs/studies/ that docs/results.md and docs/mitigation.md quote numbers from, on hand-made
study folders whose answers are known (no training: each cell is a result.json written here)."""

import json
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ["a", "b", "c", "d"]


def _metrics(acc, loss, n=100):
    return {"group_names": GROUPS, "count": [n] * len(GROUPS), "correct": [round(a * n) for a in acc],
            "loss_sum": [x * n for x in loss]}


def _write(folder: Path, cell: dict) -> None:
    d = folder / "cells" / cell["name"]
    d.mkdir(parents=True, exist_ok=True)
    (d / "result.json").write_text(json.dumps({"status": "done", **cell}))


def _dense(folder, seed, grad, lam):
    _write(folder, {"kind": "dense", "name": f"s{seed}_dense", "seed": seed, "method": "dense", "rate": 0.0,
                    "metrics": {"test": _metrics([0.9, 0.9, 0.9, 0.9], [0.3] * 4)},
                    "diagnostics": {"group_names": GROUPS, "grad_norm": grad, "hessian_top_eigenvalue": lam}})


def _pruned(folder, seed, rate, method, acc, loss, distance=10.0):
    _write(folder, {"kind": "prune", "name": f"s{seed}_p{rate}_{method}", "seed": seed, "method": method,
                    "rate": rate, "dense": f"s{seed}_dense", "distance_oneshot": distance,
                    "metrics": {"test": _metrics(acc, loss)}, "oneshot": {"test": _metrics(acc, loss)}})


def _run(script, *args, capsys, monkeypatch):
    """Run the script in this process (as `python docs/studies/SCRIPT ARGS`), returning what it printed."""
    monkeypatch.setattr(sys, "argv", [script, *map(str, args)])
    runpy.run_path(str(ROOT / "docs" / "studies" / script), run_name="__main__")
    return capsys.readouterr().out


def test_diagnose_quality_ranks_by_the_bound_not_the_gradient_norm(tmp_path, capsys, monkeypatch):
    # gradient norm increasing a < b < c < d, curvature decreasing: at d = 10 the bound's order is lambda's.
    for seed in (0, 1):
        _dense(tmp_path, seed, grad=[1.0, 2.0, 3.0, 4.0], lam=[40.0, 30.0, 20.0, 10.0])
        # accuracy drops 0.1, 0.2, 0.3, 0.4: exactly the gradient norm's order, the reverse of the bound's
        _pruned(tmp_path, seed, 0.9, "nft", [0.8, 0.7, 0.6, 0.5], [0.4, 0.5, 0.6, 0.7])
    out = _run("diagnose_quality.py", tmp_path, capsys=capsys, monkeypatch=monkeypatch)
    assert "0.9: bound~drop -1.00, |g|~drop +1.00, lambda~drop -1.00, bound~R -1.00, |g|~R +1.00" in out
    assert "the group ranked first lost most on 0 of 2 seeds" in out
    row = next(line for line in out.splitlines() if line.startswith("0.9 "))
    assert " a " in f" {row} " and " d " in f" {row} "  # ranked first: a (largest lambda); lost most: d
    # curvature share: 0.5*lambda*d^2 / (g d + 0.5 lambda d^2), smallest for d (lambda 10, g 4): 500/540
    assert f">= {500 / 540:.3f}" in row


def test_diagnose_quality_counts_a_tie_for_most_lost_as_a_hit(tmp_path, capsys, monkeypatch):
    _dense(tmp_path, 0, grad=[1.0, 2.0, 3.0, 4.0], lam=[40.0, 30.0, 20.0, 10.0])
    _pruned(tmp_path, 0, 0.5, "nft", [0.5, 0.9, 0.9, 0.5], [0.3] * 4)  # a and d both lose 0.4
    assert "lost most on 1 of 1 seeds" in _run("diagnose_quality.py", tmp_path, capsys=capsys, monkeypatch=monkeypatch)


def test_diagnose_quality_refuses_a_folder_without_diagnostics(tmp_path, capsys, monkeypatch):
    _write(tmp_path, {"kind": "dense", "name": "s0_dense", "seed": 0, "metrics": {"test": _metrics([0.9] * 4, [0.3] * 4)}})
    _pruned(tmp_path, 0, 0.9, "nft", [0.8] * 4, [0.4] * 4)
    with pytest.raises(SystemExit, match="no nft cell whose dense cell has diagnostics"):
        _run("diagnose_quality.py", tmp_path, capsys=capsys, monkeypatch=monkeypatch)


def test_paired_differences_mean_and_t_interval(tmp_path, capsys, monkeypatch):
    for seed, (nft_acc, el_acc) in enumerate([(0.80, 0.82), (0.80, 0.84), (0.80, 0.83)]):
        _dense(tmp_path, seed, grad=[1.0] * 4, lam=[1.0] * 4)
        _pruned(tmp_path, seed, 0.9, "nft", [nft_acc] * 4, [0.4] * 4)
        _pruned(tmp_path, seed, 0.9, "el", [el_acc] * 4, [0.4] * 4)
    out = _run("paired_differences.py", tmp_path, capsys=capsys, monkeypatch=monkeypatch)
    # el - nft accuracy: +2, +4, +3 points; mean 3, sd 1, half-width t(0.975, 2) * 1 / sqrt(3) = 2.48 < 3
    assert "test 0.9 el - nft: accuracy +3.00 ± 2.48 (beyond seed noise; per seed +2.00, +4.00, +3.00)" in out
    assert "max psi identical on every seed" in out
