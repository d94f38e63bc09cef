"""Rank correlation (Spearman) across groups between a diagnostic and the harm of pruning.

With several seeds, rho is computed per seed and summarised by its mean with a t confidence interval over
seeds; with one seed, the interval is a percentile bootstrap over groups (resampled with replacement).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class RankCorrelation:
    rho: float
    low: float
    high: float
    confidence: float
    n_groups: int
    n_seeds: int
    interval: str  # "seeds-t" or "bootstrap-groups" or "none"
    per_seed: tuple[float, ...]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["per_seed"] = list(self.per_seed)
        return d


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan")
    return float(stats.spearmanr(x[ok], y[ok]).statistic)


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho of each row pair of (B, G) arrays at once (average ranks for ties); NaN if constant."""
    rx = stats.rankdata(x, axis=1)
    ry = stats.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rx * ry).sum(axis=1) / den
    rho[(den == 0) | (x.shape[1] < 3)] = np.nan
    return rho


def spearman_across_groups(diagnostic, target, *, confidence: float = 0.95, n_boot: int = 2000,
                           seed: int = 0) -> RankCorrelation:
    """Spearman rho across groups; arrays are (groups,) or (seeds, groups)."""
    x = np.atleast_2d(np.asarray(diagnostic, float))
    y = np.atleast_2d(np.asarray(target, float))
    if x.shape != y.shape:
        raise ValueError(f"diagnostic and target must have the same shape, got {x.shape} and {y.shape}")
    S, G = x.shape
    per_seed = np.array([_spearman(x[s], y[s]) for s in range(S)])
    good = per_seed[np.isfinite(per_seed)]
    if good.size == 0:
        return RankCorrelation(float("nan"), float("nan"), float("nan"), confidence, G, S, "none", tuple(per_seed))
    rho = float(good.mean())
    if good.size >= 2:
        half = stats.t.ppf(0.5 + confidence / 2, good.size - 1) * good.std(ddof=1) / np.sqrt(good.size)
        low, high, how = max(-1.0, rho - half), min(1.0, rho + half), "seeds-t"
    else:
        rng = np.random.default_rng(seed)
        s = int(np.flatnonzero(np.isfinite(per_seed))[0])
        ok = np.isfinite(x[s]) & np.isfinite(y[s])
        xs, ys = x[s, ok], y[s, ok]
        idx = rng.integers(0, xs.size, (n_boot, xs.size))
        boots = _spearman_rows(xs[idx], ys[idx])
        boots = boots[np.isfinite(boots)]
        if boots.size:
            low, high = (float(v) for v in np.quantile(boots, [0.5 - confidence / 2, 0.5 + confidence / 2]))
            how = "bootstrap-groups"
        else:
            low, high, how = float("nan"), float("nan"), "none"
    return RankCorrelation(rho, float(low), float(high), confidence, G, S, how, tuple(float(v) for v in per_seed))
