"""Theorem 1: R(a) <= ||g_a|| ||theta_bar - theta*|| + 1/2 lambda(H_a) ||theta_bar - theta*||^2 + O(||.||^3).

The check drops the cubic term: it compares the measured excess loss R(a) with the two-term bound per group
and per pruning rate, and lists every (rate, group) where R(a) exceeds it, and by how much. Failures are
expected at high rates, where ||theta_bar - theta*|| is large and the cubic term no longer negligible.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


def theorem1_terms(grad_norm, hessian_top, distance: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gradient term ||g_a|| d, curvature term 1/2 lambda_a d^2, their sum) for a distance d."""
    g = np.asarray(grad_norm, float)
    lam = np.asarray(hessian_top, float)
    first = g * distance
    second = 0.5 * lam * distance ** 2
    return first, second, first + second


@dataclass(frozen=True)
class BoundCheck:
    """Theorem 1 per (rate, group): both terms, the bound and the measured R(a)."""

    table: pd.DataFrame = field(repr=False)
    unchecked: int = 0  # (rate, group) pairs left out: R(a) or the bound not a number (a group without samples)

    @property
    def failures(self) -> pd.DataFrame:
        return self.table[~self.table.holds].reset_index(drop=True)

    @property
    def holds(self) -> bool:
        """True when the bound holds on every checked pair and at least one pair was checked."""
        return bool(len(self.table)) and bool(self.table.holds.all())

    def summary(self) -> str:
        t, f = self.table, self.failures
        left = f" ({self.unchecked} pair(s) without data not checked)" if self.unchecked else ""
        if t.empty:
            return f"Theorem 1 bound not checked: no (rate, group) pair has data{left}"
        if f.empty:
            return f"Theorem 1 bound (cubic term dropped) holds for all {len(t)} (rate, group) pairs{left}"
        rates = ", ".join(f"{r:g}" for r in sorted(f.rate.unique()))
        worst = f.loc[f.violation.idxmax()]
        return (f"Theorem 1 bound (cubic term dropped) fails for {len(f)} of {len(t)} (rate, group) pairs, "
                f"at rates {rates}; worst: group {worst.group} at rate {worst.rate:g}, "
                f"R(a) = {worst.excess_loss:.4g} exceeds the bound {worst.bound:.4g} by {worst.violation:.4g}{left}")

    def to_dict(self) -> dict:
        return {"holds": self.holds, "summary": self.summary(), "unchecked": self.unchecked,
                "table": self.table.replace({np.nan: None}).to_dict(orient="records")}


def theorem1_check(*, group_names, grad_norm, hessian_top, distances: dict[float, float],
                   excess_loss: dict[float, np.ndarray], atol: float = 0.0) -> BoundCheck:
    """Compare R(a) with the bound at every rate; ``distances`` and ``excess_loss`` are keyed by rate.

    A pair holds when R(a) <= bound + atol. ``violation`` = R(a) - bound (positive where it fails). A pair whose
    R(a) or bound is not a number (a group without samples in the split) is not checked and left out of the table.
    """
    rows, unchecked = [], 0
    for rate in sorted(distances):
        d = float(distances[rate])
        first, second, bound = theorem1_terms(grad_norm, hessian_top, d)
        r = np.asarray(excess_loss[rate], float)
        for a, name in enumerate(group_names):
            if not (np.isfinite(r[a]) and np.isfinite(bound[a])):
                unchecked += 1
                continue
            rows.append({
                "rate": float(rate), "group": str(name), "group_id": a, "distance": d,
                "grad_norm": float(np.asarray(grad_norm)[a]), "hessian_top": float(np.asarray(hessian_top)[a]),
                "gradient_term": float(first[a]), "curvature_term": float(second[a]), "bound": float(bound[a]),
                "excess_loss": float(r[a]), "violation": float(r[a] - bound[a]),
                "holds": bool(r[a] <= bound[a] + atol),
            })
    columns = ["rate", "group", "group_id", "distance", "grad_norm", "hessian_top", "gradient_term", "curvature_term",
               "bound", "excess_loss", "violation", "holds"]
    return BoundCheck(pd.DataFrame(rows, columns=columns), unchecked)
