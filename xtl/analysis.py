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

__all__ = ["AVERAGES", "Grid", "grid", "accuracy_table", "format_bound", "win_tie_lose", "gain_matrix", "layerwise_gain",
           "upper_bounds", "bound_by_group", "coarse_config", "config_accuracy", "entropy_select",
           "held_out", "bootstrap_ci", "mcnemar", "adjust_pvalues", "mcnemar_grid", "headline"]


AVERAGES = ("language", "pooled")


def _check_average(average: str) -> str:
    if average not in AVERAGES:
        raise XtlError(f"average must be 'language' (the paper's: mean over languages of each "
                       f"language's score) or 'pooled' (mean over items), not {average!r}")
    return average


def _weighted_mean(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mean over axis 0 of ``x`` with item weights ``w``, NaN entries left out."""
    ok = ~np.isnan(x)
    ww = w.reshape((-1,) + (1,) * (x.ndim - 1)) * ok
    total = ww.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (np.nan_to_num(x) * ww).sum(axis=0) / np.where(total > 0, total, 1), np.nan)


@dataclass(frozen=True)
class Grid:
    """Correctness of every configuration of every item, and of vanilla, for one site.

    Every mean over items is, by default, the paper's: the unweighted mean over languages of
    each language's mean (``average="language"``); ``average="pooled"`` weighs items equally.
    ``n_layers`` (the model's depth) tells which upper bounds the swept grid allows.
    """

    correct: Float[np.ndarray, "item src tgt"]  # 1.0 / 0.0, NaN where not run
    vanilla: Float[np.ndarray, "item"]
    items: list[str]
    langs: list[str]
    groups: list[str]
    src_layers: list[int]
    tgt_layers: list[int]
    n_layers: int | None = None
    average: str = "language"

    def __post_init__(self) -> None:
        _check_average(self.average)
        n = len(self.items)
        if self.correct.shape != (n, len(self.src_layers), len(self.tgt_layers)) or self.vanilla.shape != (n,):
            raise XtlError(f"grid shapes disagree: correct {self.correct.shape}, vanilla "
                           f"{self.vanilla.shape}, {n} items, {len(self.src_layers)} sources, "
                           f"{len(self.tgt_layers)} targets")

    @property
    def weights(self) -> Float[np.ndarray, "item"]:
        """Each item's weight in a mean over items (summing to 1)."""
        n = len(self.items)
        if n == 0:
            return np.zeros(0)
        if self.average == "pooled":
            return np.full(n, 1.0 / n)
        counts: dict[str, int] = {}
        for lang in self.langs:
            counts[lang] = counts.get(lang, 0) + 1
        return np.array([1.0 / (len(counts) * counts[lang]) for lang in self.langs])

    def mean(self, x: np.ndarray) -> np.ndarray:
        """Mean over items (axis 0) of a per-item array, by :attr:`average`; NaN left out."""
        return _weighted_mean(np.asarray(x, float), self.weights)

    @property
    def accuracy(self) -> Float[np.ndarray, "src tgt"]:
        """Accuracy of each configuration over items."""
        return self.mean(self.correct)

    @property
    def vanilla_accuracy(self) -> float:
        return float(self.mean(self.vanilla))

    def subset(self, mask: Sequence[bool]) -> "Grid":
        """The grid restricted to the items where ``mask`` holds (e.g. one language)."""
        m = np.asarray(mask, bool)
        if not m.any():
            raise XtlError("the selection holds no items")
        pick = lambda xs: [x for x, keep in zip(xs, m) if keep]  # noqa: E731
        return Grid(self.correct[m], self.vanilla[m], pick(self.items), pick(self.langs),
                    pick(self.groups), self.src_layers, self.tgt_layers, self.n_layers, self.average)

    def by_lang(self) -> dict[str, "Grid"]:
        return {lang: self.subset([l == lang for l in self.langs]) for lang in sorted(set(self.langs))}

    def describe(self) -> str:
        """The grid a number covers, in words: ``sources 0-17 x targets 0-17 of 18 layers (full)``."""
        depth = f" of {self.n_layers} layers" if self.n_layers else ""
        full = " (full N² grid)" if self.is_full else ""
        return f"sources {_layers_text(self.src_layers)} × targets {_layers_text(self.tgt_layers)}{depth}{full}"

    @property
    def is_full(self) -> bool:
        """Every (source, target) pair of the model's layers was swept for every item."""
        n = self.n_layers
        return (n is not None and self.src_layers == list(range(n)) and self.tgt_layers == list(range(n))
                and not np.isnan(self.correct).any())


def _need(df: pd.DataFrame, cols: Sequence[str]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise XtlError(f"the results table lacks {missing}; run xtl.evaluate(results, task) first")


def grid(df: pd.DataFrame, value: str = "correct", n_layers: int | None = None,
         average: str = "language") -> Grid:
    """Dense correctness grid of an evaluated results table (one site).

    ``n_layers``: the model's depth (default: the table's ``n_layers`` column, which sweeps
    record); ``average``: ``"language"`` (the paper's group means) or ``"pooled"``.
    """
    _check_average(average)
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
    if n_layers is None and "n_layers" in df.columns and df["n_layers"].notna().any():
        n_layers = int(df["n_layers"].max())
    return Grid(arr, van.loc[items, value].astype(float).to_numpy(), items, langs, groups, srcs, tgts,
                n_layers, average)


def _metric_means(sub: pd.DataFrame) -> dict[str, float]:
    """Vanilla / transplanted means of correct, lang_ok and ppl over one set of rows."""
    van, tr = sub[sub["is_vanilla"]], sub[~sub["is_vanilla"]]
    out = {"vanilla": 100 * van["correct"].astype(float).mean() if len(van) else math.nan,
           "transplanted": 100 * tr["correct"].astype(float).mean() if len(tr) else math.nan}
    for col, scale in (("lang_ok", 100.0), ("ppl", 1.0)):
        if col in sub.columns:
            out[f"{col}_vanilla"] = scale * van[col].astype(float).mean() if len(van) else math.nan
            out[f"{col}_transplanted"] = scale * tr[col].astype(float).mean() if len(tr) else math.nan
    return out


def accuracy_table(df: pd.DataFrame, by: Sequence[str] = ("lang",), average: str = "language") -> pd.DataFrame:
    """Vanilla accuracy, transplanted accuracy (mean over configurations) and their difference
    per group, plus an ``all`` row; with one configuration this is that configuration's accuracy.

    Language consistency and perplexity are averaged the same way. With ``average="language"``
    (the paper's Table 3), a row over several languages is the unweighted mean of each
    language's value; ``"pooled"`` averages over the rows' items instead.
    """
    _check_average(average)
    _need(df, ["is_vanilla", "correct", *by])
    keys = list(by)
    per_lang = average == "language" and "lang" in df.columns
    rows = []
    for name, sub in list(df.groupby(keys, sort=True)) + [(("all",) * len(keys), df)]:
        name = name if isinstance(name, tuple) else (name,)
        row = dict(zip(keys, name))
        row["n"] = int(sub["is_vanilla"].sum())
        if per_lang:
            by_lang = pd.DataFrame([_metric_means(part) for _, part in sub.groupby("lang", sort=True)])
            row["langs"] = len(by_lang)
            row.update(by_lang.mean(axis=0, skipna=True).to_dict())
        else:
            row.update(_metric_means(sub))
        row["delta"] = row["transplanted"] - row["vanilla"]
        rows.append(row)
    out = pd.DataFrame(rows)
    order = [*keys, "n"] + (["langs"] if per_lang else []) + ["vanilla", "transplanted", "delta"]
    return out[order + [c for c in out.columns if c not in order]]


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


def _layers_text(xs: Sequence[int]) -> str:
    xs = list(xs)
    if len(xs) > 2 and xs == list(range(xs[0], xs[-1] + 1)):
        return f"{xs[0]}–{xs[-1]}"
    return ", ".join(map(str, xs)) or "none"


def _bound_reasons(g: Grid) -> dict[str, str]:
    """Why each bound cannot be computed on this grid (no entry: it can)."""
    n = g.n_layers
    if n is None:
        why = ("the model's depth is not known (the results lack n_layers; pass grid(..., "
               "n_layers=N))")
        return {"source_last": why, "target_first": why, "oracle": why}
    every = list(range(n))
    missing = np.isnan(g.correct).any(axis=0)  # configuration not run for some item
    src_ok = g.src_layers == every and not missing.any()
    tgt_ok = g.tgt_layers == every and not missing.any()
    have = f"this grid has sources {_layers_text(g.src_layers)} × targets {_layers_text(g.tgt_layers)}"
    out = {}
    if not (n - 1 in g.src_layers and tgt_ok):
        out["source_last"] = (f"SourceLast (eq. 4) needs source layer {n - 1} with every target layer "
                              f"0–{n - 1}; {have}")
    if not (0 in g.tgt_layers and src_ok):
        out["target_first"] = (f"TargetFirst (eq. 5) needs target layer 0 with every source layer "
                               f"0–{n - 1}; {have}")
    if not g.is_full:
        out["oracle"] = f"the N² oracle needs the full {n} × {n} grid for every item; {have}"
    return out


def upper_bounds(g: Grid) -> dict[str, object]:
    """Instance-aware upper bounds, equations (4) and (5), and the full N^2 oracle, in percent.

    Source-wise at layer i: an item counts if any target layer j answers it right with source i
    (defined only where every target layer was swept); target-wise at layer j likewise over
    every source layer. ``source_last`` (eq. 4 at the last layer), ``target_first`` (eq. 5 at
    layer 0) and ``oracle`` are NaN when the grid lacks what they need; ``reasons`` says why and
    ``grid`` names the grid the numbers cover.
    """
    reasons = _bound_reasons(g)
    n = g.n_layers
    c = np.nan_to_num(g.correct, nan=0.0)
    missing = np.isnan(g.correct).any(axis=0)
    full_tgt = n is not None and g.tgt_layers == list(range(n))
    full_src = n is not None and g.src_layers == list(range(n))
    source = np.where(full_tgt & ~missing.any(axis=1), 100 * g.mean(c.max(axis=2)), np.nan)
    target = np.where(full_src & ~missing.any(axis=0), 100 * g.mean(c.max(axis=1)), np.nan)
    source_last = float(source[g.src_layers.index(n - 1)]) if "source_last" not in reasons else math.nan
    target_first = float(target[g.tgt_layers.index(0)]) if "target_first" not in reasons else math.nan
    oracle = 100 * float(g.mean(c.max(axis=(1, 2)))) if "oracle" not in reasons else math.nan
    return {"source": source, "target": target, "source_last": source_last,
            "target_first": target_first, "oracle": oracle, "vanilla": 100 * g.vanilla_accuracy,
            "src_layers": g.src_layers, "tgt_layers": g.tgt_layers, "reasons": reasons,
            "grid": g.describe()}


def format_bound(value: float, name: str, bounds: dict[str, object]) -> str:
    """``61.2%``, or ``not computable on this grid: <reason>`` for a NaN bound."""
    if math.isnan(value):
        return f"not computable on this grid: {bounds['reasons'].get(name, 'no items')}"
    return f"{value:.1f}%"


def _groups(g: Grid) -> list[str]:
    return [x for x in ("high", "mid", "low") if x in g.groups] + sorted(
        {x for x in g.groups if x not in ("high", "mid", "low", "")})


def bound_by_group(g: Grid) -> pd.DataFrame:
    """Table 4: vanilla, SourceLast (source-wise bound at the last layer) and TargetFirst
    (target-wise bound at the first layer) by resource group, each the mean over the group's
    languages (``g.average``); NaN where the grid does not allow a bound."""
    rows = []
    for group in _groups(g) + ["all"]:
        sub = g if group == "all" else g.subset([x == group for x in g.groups])
        ub = upper_bounds(sub)
        rows.append({"group": group, "langs": len(set(sub.langs)), "n": len(sub.items),
                     "vanilla": ub["vanilla"], "SourceLast": ub["source_last"],
                     "TargetFirst": ub["target_first"], "oracle": ub["oracle"]})
    return pd.DataFrame(rows)


def coarse_config(site: str, n_layers: int) -> tuple[int, int]:
    """Table 2's coarse-grained (source, target): attn last -> first (understanding),
    mlp first -> first (generation and culture)."""
    kind = str(site).split(":")[0]
    if kind in ("attn", "attn-authors"):
        return n_layers - 1, 0
    if kind == "mlp":
        return 0, 0
    raise XtlError(f"the coarse-grained strategy is defined for attn and mlp, not {site!r}")


def config_accuracy(g: Grid, src: int, tgt: int) -> float:
    """Accuracy (percent) of one configuration."""
    if src not in g.src_layers or tgt not in g.tgt_layers:
        raise XtlError(f"configuration ({src}, {tgt}) was not swept")
    return 100 * float(g.mean(g.correct[:, g.src_layers.index(src), g.tgt_layers.index(tgt)]))


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
           "oracle": ub["oracle"], "source_last": ub["source_last"],
           "target_first": ub["target_first"], "bound_reasons": ub["reasons"], "grid": ub["grid"],
           "group_average": g.average}
    n = n_layers or g.n_layers or (max(g.src_layers) + 1)
    try:
        src, tgt = coarse_config(site, n)
        out["coarse_config"] = (src, tgt)
        out["coarse"] = config_accuracy(g, src, tgt)
    except XtlError:
        pass
    return out
