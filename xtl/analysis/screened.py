"""How well the gradient screen ranks the grid: its estimate of each cell's change of the gold
margin against the exact change, as rank correlation, recall of the exact best cell and of the
right-answer cells among the K best-estimated ones; and the grids the report draws side by side."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from jaxtyping import Float

from xtl.analysis.grids import dense_array
from xtl.errors import XtlError

__all__ = ["margin_changes", "spearman", "ScreenQuality", "screen_quality", "ScreenPanels", "screen_panels"]


def margin_changes(df: pd.DataFrame) -> pd.DataFrame:
    """The transplanted rows of a results table with ``exact_change``: the row's gold margin minus
    its item's vanilla gold margin (the quantity ``screen_estimate`` estimates), and ``right``:
    the gold option scores highest (gold margin > 0)."""
    need = {"item_key", "is_vanilla", "src_layer", "tgt_layer", "gold_margin"}
    if not need <= set(df.columns):
        raise XtlError(f"the results lack {sorted(need - set(df.columns))}; sweep with candidates (xtl ≥ 0.3)")
    van = df[df["is_vanilla"]].set_index("item_key")["gold_margin"]
    rows = df[~df["is_vanilla"]].copy()
    rows["exact_change"] = rows["gold_margin"].to_numpy(float) - rows["item_key"].map(van).to_numpy(float)
    rows["right"] = rows["gold_margin"].to_numpy(float) > 0
    return rows


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two vectors (average ranks for ties; NaN pairs dropped)."""
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3:
        return float("nan")
    ra = pd.Series(a[keep]).rank().to_numpy()
    rb = pd.Series(b[keep]).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


@dataclass(frozen=True)
class ScreenQuality:
    """The screen against the exact grid, per item and in summary, for the K best-estimated cells."""

    k: int
    spearman: Float[np.ndarray, "item"]  # rank correlation of estimate and exact change, per item
    best_found: Float[np.ndarray, "item"]  # 1.0: the exact best cell is among the K (ties count)
    right_found: Float[np.ndarray, "item"]  # 1.0: a right-answer cell is among the K (NaN: the item has none)
    right_recall: Float[np.ndarray, "item"]  # right cells among the K / min(K, right cells) (NaN: none)

    def summary(self) -> dict[str, float]:
        """Means over items (NaN-skipping): ``spearman``, ``best@K``, ``right@K``, ``right recall@K``."""
        def mean(x: np.ndarray) -> float:
            return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")
        return {"spearman": mean(self.spearman), f"best@{self.k}": mean(self.best_found),
                f"right@{self.k}": mean(self.right_found), f"right recall@{self.k}": mean(self.right_recall)}


def screen_quality(estimate: Float[np.ndarray, "item src tgt"], exact: Float[np.ndarray, "item src tgt"],
                   right: np.ndarray, k: int) -> ScreenQuality:
    """Score the screen's ranking per item: ``estimate`` and ``exact`` margin changes and
    ``right`` (the exact cell answers right) over the same cells; the K best by estimate (ties:
    the first in source-major order) are the cells a screened sweep runs."""
    if estimate.shape != exact.shape or estimate.shape != right.shape:
        raise XtlError(f"estimate {estimate.shape}, exact {exact.shape} and right {right.shape} differ in shape")
    n = estimate.shape[0]
    rho, best, hit, recall = (np.full(n, np.nan) for _ in range(4))
    for m in range(n):
        e, x, r = estimate[m].ravel(), exact[m].ravel(), right[m].ravel().astype(bool)
        ok = np.isfinite(e) & np.isfinite(x)
        if not ok.any():
            continue
        rho[m] = spearman(e, x)
        order = np.flatnonzero(ok)[np.argsort(-e[ok], kind="stable")]
        top = order[:k]
        best[m] = float(np.nanmax(x[top]) >= np.nanmax(x[ok]))
        n_right = int(r[ok].sum())
        if n_right:
            hit[m] = float(r[top].any())
            recall[m] = r[top].sum() / min(k, n_right)
    return ScreenQuality(k, rho, best, hit, recall)


@dataclass(frozen=True)
class ScreenPanels:
    """Mean over items of the screen's estimate and of the exact change, per (source, target)
    cell, over the rows a sweep ran (a screened sweep: each item's K cells)."""

    estimate: Float[np.ndarray, "src tgt"]
    exact: Float[np.ndarray, "src tgt"]
    n: np.ndarray  # items per cell
    src_layers: list[int]
    tgt_layers: list[int]
    spearman: float  # over every (item, cell) row


def screen_panels(df: pd.DataFrame) -> ScreenPanels | None:
    """The screen-estimate and exact-change grids of a results table, or None when it holds no
    screen estimates (a sweep without ``screen=K``)."""
    if "screen_estimate" not in df.columns or not np.isfinite(df["screen_estimate"].to_numpy(float)).any():
        return None
    rows = margin_changes(df)
    rows = rows[np.isfinite(rows["screen_estimate"].to_numpy(float))]
    items = sorted(rows["item_key"].unique())
    srcs, tgts = sorted(rows["src_layer"].unique().tolist()), sorted(rows["tgt_layer"].unique().tolist())
    est = dense_array(rows, "screen_estimate", items, srcs, tgts)
    exact = dense_array(rows, "exact_change", items, srcs, tgts)
    n = np.isfinite(est).sum(0)
    with np.errstate(invalid="ignore"):
        mean_est = np.where(n > 0, np.nansum(est, 0) / np.maximum(n, 1), np.nan)
        mean_exact = np.where(n > 0, np.nansum(exact, 0) / np.maximum(n, 1), np.nan)
    rho = spearman(rows["screen_estimate"].to_numpy(float), rows["exact_change"].to_numpy(float))
    return ScreenPanels(mean_est, mean_exact, n, [int(s) for s in srcs], [int(t) for t in tgts], rho)
