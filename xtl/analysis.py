"""Analyses of an evaluated results table (sections 4-6 and appendices E-F of the paper).

Everything here is a pure function over a results DataFrame (one row per item x configuration,
with ``correct`` from :func:`xtl.evaluate`) or over the dense ``[item, source, target]``
correctness array that :func:`grid` builds. No plotting is imported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from jaxtyping import Float

from xtl.errors import XtlError

__all__ = ["Grid", "grid", "accuracy_table", "win_tie_lose", "gain_matrix", "layerwise_gain",
           "upper_bounds", "bound_by_group", "coarse_config", "config_accuracy", "entropy_select",
           "held_out", "bootstrap_ci", "mcnemar", "adjust_pvalues", "mcnemar_grid", "headline"]


@dataclass(frozen=True)
class Grid:
    """Correctness of every configuration of every item, and of vanilla, for one site."""

    correct: Float[np.ndarray, "item src tgt"]  # 1.0 / 0.0, NaN where not run
    vanilla: Float[np.ndarray, "item"]
    items: list[str]
    langs: list[str]
    groups: list[str]
    src_layers: list[int]
    tgt_layers: list[int]

    @property
    def accuracy(self) -> Float[np.ndarray, "src tgt"]:
        """Accuracy of each configuration over items."""
        return np.nanmean(self.correct, axis=0)

    @property
    def vanilla_accuracy(self) -> float:
        return float(np.mean(self.vanilla))

    def subset(self, mask: Sequence[bool]) -> "Grid":
        """The grid restricted to the items where ``mask`` holds (e.g. one language)."""
        m = np.asarray(mask, bool)
        if not m.any():
            raise XtlError("the selection holds no items")
        pick = lambda xs: [x for x, keep in zip(xs, m) if keep]  # noqa: E731
        return Grid(self.correct[m], self.vanilla[m], pick(self.items), pick(self.langs),
                    pick(self.groups), self.src_layers, self.tgt_layers)

    def by_lang(self) -> dict[str, "Grid"]:
        return {lang: self.subset([l == lang for l in self.langs]) for lang in sorted(set(self.langs))}


def _need(df: pd.DataFrame, cols: Sequence[str]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise XtlError(f"the results table lacks {missing}; run xtl.evaluate(results, task) first")


def grid(df: pd.DataFrame, value: str = "correct") -> Grid:
    """Dense correctness grid of an evaluated results table (one site)."""
    _need(df, ["item_key", "src_layer", "tgt_layer", "is_vanilla", value])
    if "site" in df.columns and df["site"].nunique() > 1:
        raise XtlError(f"the table mixes sites {sorted(df['site'].unique())}; select one site first")
    van = df[df["is_vanilla"]].drop_duplicates("item_key").set_index("item_key")
    rest = df[~df["is_vanilla"]]
    items = sorted(van.index)
    if not items:
        raise XtlError("no vanilla rows in the results; every item needs its vanilla row")
    srcs = sorted(int(x) for x in rest["src_layer"].unique())
    tgts = sorted(int(x) for x in rest["tgt_layer"].unique())
    si, ti, ii = ({v: k for k, v in enumerate(xs)} for xs in (srcs, tgts, items))
    arr = np.full((len(items), len(srcs), len(tgts)), np.nan)
    rest = rest[rest["item_key"].isin(ii)]
    arr[rest["item_key"].map(ii).to_numpy(), rest["src_layer"].map(si).to_numpy(),
        rest["tgt_layer"].map(ti).to_numpy()] = rest[value].astype(float).to_numpy()
    langs = [str(van.loc[k, "lang"]) if "lang" in van.columns else "" for k in items]
    groups = [str(van.loc[k, "group"]) if "group" in van.columns else "" for k in items]
    return Grid(arr, van.loc[items, value].astype(float).to_numpy(), items, langs, groups, srcs, tgts)


def accuracy_table(df: pd.DataFrame, by: Sequence[str] = ("lang",)) -> pd.DataFrame:
    """Vanilla accuracy, transplanted accuracy (mean over configurations) and their difference
    per group, plus an ``all`` row; with one configuration this is that configuration's accuracy."""
    _need(df, ["is_vanilla", "correct", *by])
    rows = []
    keys = list(by)
    for name, sub in list(df.groupby(keys, sort=True)) + [(("all",) * len(keys), df)]:
        name = name if isinstance(name, tuple) else (name,)
        van = sub[sub["is_vanilla"]]["correct"].astype(float)
        tr = sub[~sub["is_vanilla"]]["correct"].astype(float)
        row = dict(zip(keys, name))
        row.update(n=int(len(van)), vanilla=100 * van.mean() if len(van) else math.nan,
                   transplanted=100 * tr.mean() if len(tr) else math.nan)
        row["delta"] = row["transplanted"] - row["vanilla"]
        for col in ("lang_ok", "ppl"):
            if col in sub.columns:
                f = (lambda s: 100 * s.astype(float).mean()) if col == "lang_ok" else (lambda s: s.astype(float).mean())
                row[f"{col}_vanilla"] = f(sub[sub["is_vanilla"]][col])
                row[f"{col}_transplanted"] = f(sub[~sub["is_vanilla"]][col]) if len(tr) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def win_tie_lose(g: Grid, atol: float = 1e-12) -> dict[str, float]:
    """Configurations whose accuracy is above / equal to / below vanilla (Figure 2), and the
    average accuracy over all configurations."""
    acc = g.accuracy
    v = g.vanilla_accuracy
    ran = ~np.isnan(acc)
    win = int(np.sum(acc[ran] > v + atol))
    lose = int(np.sum(acc[ran] < v - atol))
    return {"win": win, "tie": int(ran.sum()) - win - lose, "lose": lose,
            "n_configs": int(ran.sum()), "vanilla": 100 * v, "average": 100 * float(np.nanmean(acc))}


def gain_matrix(g: Grid) -> Float[np.ndarray, "src tgt"]:
    """Accuracy gain over vanilla of every configuration, in points."""
    return 100 * (g.accuracy - g.vanilla_accuracy)


def layerwise_gain(g: Grid) -> tuple[Float[np.ndarray, "src"], Float[np.ndarray, "tgt"]]:
    """Mean gain by source layer (over targets) and by target layer (over sources) (Figure 3)."""
    gain = gain_matrix(g)
    return np.nanmean(gain, axis=1), np.nanmean(gain, axis=0)


def upper_bounds(g: Grid) -> dict[str, object]:
    """Instance-aware upper bounds, equations (4) and (5), and the full N^2 oracle, in percent.

    Source-wise at layer i: an item counts if any target layer j answers it right with source i.
    Target-wise at layer j: an item counts if any source layer i answers it right into j.
    """
    c = np.nan_to_num(g.correct, nan=0.0)
    return {"source": 100 * c.max(axis=2).mean(axis=0), "target": 100 * c.max(axis=1).mean(axis=0),
            "oracle": 100 * float(c.max(axis=(1, 2)).mean()), "vanilla": 100 * g.vanilla_accuracy,
            "src_layers": g.src_layers, "tgt_layers": g.tgt_layers}


def bound_by_group(g: Grid) -> pd.DataFrame:
    """Table 4: vanilla, SourceLast (source-wise bound at the last layer) and TargetFirst
    (target-wise bound at the first layer) by resource group."""
    rows = []
    for group in [x for x in ("high", "mid", "low") if x in g.groups] + ["all"]:
        sub = g if group == "all" else g.subset([x == group for x in g.groups])
        ub = upper_bounds(sub)
        rows.append({"group": group, "n": len(sub.items), "vanilla": ub["vanilla"],
                     "SourceLast": float(ub["source"][-1]), "TargetFirst": float(ub["target"][0]),
                     "oracle": ub["oracle"]})
    return pd.DataFrame(rows)


def coarse_config(site: str, n_layers: int) -> tuple[int, int]:
    """Table 2's coarse-grained (source, target): attn last -> first (understanding),
    mlp first -> first (generation and culture)."""
    kind = str(site).split(":")[0]
    if kind == "attn":
        return n_layers - 1, 0
    if kind == "mlp":
        return 0, 0
    raise XtlError(f"the coarse-grained strategy is defined for attn and mlp, not {site!r}")


def config_accuracy(g: Grid, src: int, tgt: int) -> float:
    """Accuracy (percent) of one configuration."""
    if src not in g.src_layers or tgt not in g.tgt_layers:
        raise XtlError(f"configuration ({src}, {tgt}) was not swept")
    return 100 * float(np.nanmean(g.correct[:, g.src_layers.index(src), g.tgt_layers.index(tgt)]))


def entropy_select(df: pd.DataFrame, n_layers: int) -> pd.DataFrame:
    """Section F's entropy-based choice: target = first layer, source in {first, last}; keep
    per item the configuration whose first-token entropy is lower. One row per item."""
    _need(df, ["item_key", "src_layer", "tgt_layer", "entropy", "correct"])
    cand = df[(~df["is_vanilla"]) & (df["tgt_layer"] == 0) & df["src_layer"].isin([0, n_layers - 1])]
    if cand.empty:
        raise XtlError("entropy selection needs configurations (0, 0) and (N-1, 0) in the results")
    return cand.sort_values(["item_key", "entropy", "src_layer"]).drop_duplicates("item_key")


def held_out(pilot: Grid, unseen: Grid) -> dict[str, object]:
    """Pick the best configuration on the PilotSet and score it on unseen items: an honest
    gain to set beside the (optimistic) oracle."""
    acc = np.where(np.isnan(pilot.accuracy), -np.inf, pilot.accuracy)
    si, ti = np.unravel_index(int(np.argmax(acc)), acc.shape)
    src, tgt = pilot.src_layers[si], pilot.tgt_layers[ti]
    score = config_accuracy(unseen, src, tgt)
    return {"src_layer": src, "tgt_layer": tgt, "pilot_accuracy": 100 * float(acc[si, ti]),
            "pilot_vanilla": 100 * pilot.vanilla_accuracy, "unseen_accuracy": score,
            "unseen_vanilla": 100 * unseen.vanilla_accuracy,
            "unseen_gain": score - 100 * unseen.vanilla_accuracy}


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


def headline(g: Grid, site: str = "", n_layers: int | None = None) -> dict[str, object]:
    """The numbers a report leads with: vanilla, average, best configuration, bounds, win/tie/lose."""
    wtl = win_tie_lose(g)
    ub = upper_bounds(g)
    acc = np.where(np.isnan(g.accuracy), -np.inf, g.accuracy)
    si, ti = np.unravel_index(int(np.argmax(acc)), acc.shape)
    out = {"items": len(g.items), "languages": len(set(g.langs)), "vanilla": wtl["vanilla"],
           "average": wtl["average"], "win": wtl["win"], "tie": wtl["tie"], "lose": wtl["lose"],
           "best_config": (g.src_layers[si], g.tgt_layers[ti]), "best": 100 * float(acc[si, ti]),
           "oracle": ub["oracle"], "source_last": float(ub["source"][-1]),
           "target_first": float(ub["target"][0])}
    n = n_layers or (max(g.src_layers) + 1)
    try:
        src, tgt = coarse_config(site, n)
        out["coarse_config"] = (src, tgt)
        out["coarse"] = config_accuracy(g, src, tgt)
    except XtlError:
        pass
    return out
