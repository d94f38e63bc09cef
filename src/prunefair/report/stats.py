"""Confidence intervals over seeds (Student's t), for the report's tables and sentences."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """Mean, sample standard deviation and a two-sided t confidence interval of values over seeds.

    With fewer than two finite values the std is 0 and the interval is undefined (``lo``/``hi`` NaN).
    """

    mean: float
    std: float
    lo: float
    hi: float
    n: int
    confidence: float = 0.95

    @property
    def has_ci(self) -> bool:
        return bool(np.isfinite(self.lo) and np.isfinite(self.hi))

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2 if self.has_ci else float("nan")

    def excludes_zero(self) -> bool:
        return self.has_ci and (self.lo > 0 or self.hi < 0)


def t_interval(values, *, confidence: float = 0.95) -> Interval:
    """mean ± t_{(1+c)/2, n-1} · s / sqrt(n) over the finite values (NaN skipped)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        nan = float("nan")
        return Interval(nan, nan, nan, nan, 0, confidence)
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, 0.0, float("nan"), float("nan"), 1, confidence)
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * sd / np.sqrt(n)
    return Interval(mean, sd, mean - half, mean + half, n, confidence)


def interval_table(df: pd.DataFrame, by: list[str], columns: list[str], *, confidence: float = 0.95) -> pd.DataFrame:
    """One row per ``by`` key; for each column ``c``: c_mean, c_std, c_lo, c_hi and c_n (its finite values: a seed
    whose value is NaN or infinite, e.g. a normalised accuracy over a dense accuracy of 0, is not counted), and
    ``n`` (the first column's c_n). Same numbers as ``t_interval`` per group, computed vectorised."""
    if df.empty:
        return pd.DataFrame(columns=[*by, "n"])
    finite = df[columns].apply(pd.to_numeric, errors="coerce").replace([np.inf, -np.inf], np.nan)
    g = df[by].join(finite).groupby(by, sort=True, dropna=False)[columns]  # +-inf skipped like NaN, as t_interval
    mean, sd, n = g.mean(), g.std(ddof=1), g.count()
    out = pd.DataFrame(index=mean.index)
    for c in columns:
        k = n[c].to_numpy(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(k >= 2, stats.t.ppf((1 + confidence) / 2, np.maximum(k - 1, 1)), np.nan)
            half = t * sd[c].to_numpy(float) / np.sqrt(k)
        out[f"{c}_mean"] = mean[c].to_numpy(float)
        out[f"{c}_std"] = np.where(k >= 2, sd[c].to_numpy(float), np.where(k == 1, 0.0, np.nan))
        out[f"{c}_lo"] = out[f"{c}_mean"] - half
        out[f"{c}_hi"] = out[f"{c}_mean"] + half
        out[f"{c}_n"] = n[c].to_numpy(int)
    out["n"] = n[columns[0]].to_numpy(int)
    return out.reset_index()
