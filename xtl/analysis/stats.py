"""Statistics over items: bootstrap intervals, McNemar tests and p-value adjustment."""

from __future__ import annotations

import math

import numpy as np

from xtl.analysis.grids import Grid
from xtl.errors import XtlError

__all__ = ["bootstrap_ci", "mcnemar", "adjust_pvalues", "mcnemar_grid"]


def bootstrap_ci(values: np.ndarray, baseline: np.ndarray | None = None, n_boot: int = 2000,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean (percent) and percentile bootstrap interval over items; with ``baseline`` the
    paired difference ``values - baseline`` (a gain)."""
    x = np.asarray(values, float)
    if baseline is not None:
        x = x - np.asarray(baseline, float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return 100 * float(x.mean()), 100 * float(lo), 100 * float(hi)


def mcnemar(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sided McNemar p-value of paired binary outcomes ``a`` vs ``b``."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    n01, n10 = int(np.sum(~a & b)), int(np.sum(a & ~b))
    n = n01 + n10
    if n == 0:
        return 1.0
    k = min(n01, n10)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def adjust_pvalues(p: np.ndarray, method: str = "fdr_bh") -> np.ndarray:
    """Benjamini-Hochberg (``fdr_bh``) or Holm (``holm``) adjustment over all entries of ``p``."""
    flat = np.asarray(p, float).ravel()
    ok = ~np.isnan(flat)
    q = np.full_like(flat, np.nan)
    vals = flat[ok]
    m = vals.size
    if m == 0:
        return q.reshape(np.shape(p))
    order = np.argsort(vals)
    ranked = vals[order]
    if method == "fdr_bh":
        adj = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    elif method == "holm":
        adj = np.maximum.accumulate(ranked * (m - np.arange(m)))
    else:
        raise XtlError(f"method must be 'fdr_bh' or 'holm', not {method!r}")
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    q[ok] = out
    return q.reshape(np.shape(p))


def mcnemar_grid(g: Grid, method: str = "fdr_bh") -> tuple[np.ndarray, np.ndarray]:
    """McNemar p-value of every configuration against vanilla, and the adjusted p-values."""
    p = np.full(g.correct.shape[1:], np.nan)
    for i in range(p.shape[0]):
        for j in range(p.shape[1]):
            col = g.correct[:, i, j]
            ok = ~np.isnan(col)
            if ok.any():
                p[i, j] = mcnemar(g.vanilla[ok] > 0.5, col[ok] > 0.5)
    return p, adjust_pvalues(p, method)
