"""Rank correlation (Spearman) across groups between a diagnostic and the harm of pruning.

With several seeds, rho is computed per seed and summarised by its mean with a t confidence interval over
seeds. With one seed there is no interval: a bootstrap over 3-10 groups is far too narrow (a perfect ranking of
3 groups, which chance gives 1 time in 6, would get [1, 1]). Either way, ``p_value`` is a permutation test of
"no association": the groups' outcomes are shuffled within each seed and the mean rho recomputed, exactly over
all orders for one seed and up to 8 groups, else from ``n_perm`` seeded shuffles (p = (hits + 1) / (n_perm + 1)).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

EXACT_GROUPS = 8  # one seed with at most this many groups: every order enumerated (8! = 40,320)


@dataclass(frozen=True)
class RankCorrelation:
    rho: float
    low: float
    high: float
    confidence: float
    n_groups: int  # groups that entered: both values finite in a seed with a defined rho
    n_seeds: int  # seeds that entered: those with a defined rho (the interval's degrees of freedom + 1)
    interval: str  # "seeds-t" or "none"
    per_seed: tuple[float, ...]
    p_value: float = float("nan")  # two-sided permutation test of no association (mean rho over seeds)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["per_seed"] = list(self.per_seed)
        return d


def _snap(a: np.ndarray, digits: int = 12) -> np.ndarray:
    """Each row rounded to ``digits`` significant digits of its largest magnitude, so that values equal up to
    float rounding (0.3 and 0.30000000000000004) rank as ties and a series constant up to rounding is constant."""
    out = np.array(a, float, copy=True)
    for row in out:
        ok = np.isfinite(row)
        top = np.max(np.abs(row[ok]), initial=0.0)
        if top > 0:
            scale = 10.0 ** (math.floor(math.log10(top)) - digits + 1)
            row[ok] = np.round(row[ok] / scale) * scale
    return out


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


def _permutation_p(x: np.ndarray, y: np.ndarray, seeds: np.ndarray, observed: float, n_perm: int,
                   seed: int) -> float:
    """Two-sided p of the mean rho over ``seeds`` (rows with a defined rho) under shuffled outcomes."""
    rows = []
    for s in seeds:
        ok = np.isfinite(x[s]) & np.isfinite(y[s])
        rows.append((x[s, ok], y[s, ok]))
    exact = len(rows) == 1 and rows[0][0].size <= EXACT_GROUPS
    if exact:
        xs, ys = rows[0]
        orders = np.array(list(itertools.permutations(range(ys.size))))
        null = _spearman_rows(np.broadcast_to(xs, orders.shape), ys[orders])
        return float(np.mean(np.abs(null) >= abs(observed) - 1e-12))
    rng = np.random.default_rng(seed)
    total = np.zeros(n_perm)
    for xs, ys in rows:
        orders = rng.permuted(np.broadcast_to(np.arange(ys.size), (n_perm, ys.size)), axis=1)
        total += _spearman_rows(np.broadcast_to(xs, orders.shape), ys[orders])
    hits = int(np.sum(np.abs(total / len(rows)) >= abs(observed) - 1e-12))
    return (hits + 1) / (n_perm + 1)


def spearman_across_groups(diagnostic, target, *, confidence: float = 0.95, n_perm: int = 2000,
                           seed: int = 0) -> RankCorrelation:
    """Spearman rho across groups; arrays are (groups,) or (seeds, groups). Values equal to 12 significant
    digits (of their seed's largest) are ties, so float rounding neither breaks a tie nor makes a constant
    series look ranked."""
    x = np.atleast_2d(np.asarray(diagnostic, float))
    y = np.atleast_2d(np.asarray(target, float))
    if x.shape != y.shape:
        raise ValueError(f"diagnostic and target must have the same shape, got {x.shape} and {y.shape}")
    x, y = _snap(x), _snap(y)
    return _across_groups(x.tobytes(), y.tobytes(), x.shape, float(confidence), int(n_perm), int(seed))


@functools.lru_cache(maxsize=4096)
def _across_groups(xb: bytes, yb: bytes, shape: tuple[int, int], confidence: float, n_perm: int,
                   seed: int) -> RankCorrelation:
    """The computation, memoised on the data: a report asks for the same correlation several times (its CSV, its
    tables, and one-shot models that every method shares), each a 2,000-shuffle permutation test."""
    x = np.frombuffer(xb, dtype=float).reshape(shape)
    y = np.frombuffer(yb, dtype=float).reshape(shape)
    S = x.shape[0]
    per_seed = np.array([_spearman(x[s], y[s]) for s in range(S)])
    defined = np.flatnonzero(np.isfinite(per_seed))
    # what entered the calculation: seeds with a defined rho, and groups with both values in one of them (where no
    # seed has a rho, the groups with both values in any seed: e.g. 2, which is why there is none)
    both = np.isfinite(x) & np.isfinite(y)
    n_groups = int(both[defined].any(axis=0).sum()) if defined.size else int(both.any(axis=0).sum())
    if defined.size == 0:
        return RankCorrelation(math.nan, math.nan, math.nan, confidence, n_groups, 0, "none", tuple(per_seed))
    good = per_seed[defined]
    rho = float(good.mean())
    low = high = math.nan
    how = "none"
    if good.size >= 2:
        half = stats.t.ppf(0.5 + confidence / 2, good.size - 1) * good.std(ddof=1) / np.sqrt(good.size)
        low, high, how = max(-1.0, rho - half), min(1.0, rho + half), "seeds-t"
    p = _permutation_p(x, y, defined, rho, n_perm, seed)
    return RankCorrelation(rho, float(low), float(high), confidence, n_groups, int(defined.size), how,
                           tuple(float(v) for v in per_seed), float(p))
