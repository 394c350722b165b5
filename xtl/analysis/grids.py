"""The dense view of a results table: correctness of every (item, source, target), as the
:class:`Grid` every analysis reads, with the paper's averaging over languages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from jaxtyping import Float

from xtl.errors import XtlError
from xtl.options import AVERAGES as OPTION_AVERAGES
from xtl.options import check_option

__all__ = ["AVERAGES", "Grid", "grid", "dense", "dense_array", "layers_text"]


AVERAGES = OPTION_AVERAGES


def _check_average(average: str) -> str:
    return check_option("average", average, AVERAGES)


def _weighted_mean(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mean over axis 0 of ``x`` with item weights ``w``, NaN entries left out."""
    ok = ~np.isnan(x)
    ww = w.reshape((-1,) + (1,) * (x.ndim - 1)) * ok
    total = ww.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (np.nan_to_num(x) * ww).sum(axis=0) / np.where(total > 0, total, 1), np.nan)


def layers_text(xs: Sequence[int]) -> str:
    xs = list(xs)
    if len(xs) > 2 and xs == list(range(xs[0], xs[-1] + 1)):
        return f"{xs[0]}–{xs[-1]}"
    return ", ".join(map(str, xs)) or "none"


def dense_array(rows: pd.DataFrame, value: str, items: Sequence[str], srcs: Sequence[int],
                tgts: Sequence[int]) -> Float[np.ndarray, "item src tgt"]:
    """The one dense-grid builder: ``value`` of each (item, source, target) row at its place in
    ``[items, srcs, tgts]``, NaN where there is no row (vanilla rows must be left out)."""
    ii, si, ti = ({v: k for k, v in enumerate(xs)} for xs in (items, srcs, tgts))
    out = np.full((len(items), len(srcs), len(tgts)), np.nan)
    sel = rows[rows["item_key"].isin(ii) & rows["src_layer"].isin(si) & rows["tgt_layer"].isin(ti)]
    out[sel["item_key"].map(ii).to_numpy(), sel["src_layer"].map(si).to_numpy(),
        sel["tgt_layer"].map(ti).to_numpy()] = sel[value].astype(float).to_numpy()
    return out


def dense(df: pd.DataFrame, value: str = "correct", n_layers: int | None = None,
          items: Iterable[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Dense ``[item, source layer, target layer]`` array of ``value`` over layers 0..N-1 (NaN
    where missing). Vanilla rows are left out. Returns the array and the item keys in its first axis.
    """
    _need(df, ["item_key", "src_layer", "tgt_layer", "is_vanilla", value])
    rows = df[~df["is_vanilla"]]
    keys = list(items) if items is not None else sorted(rows["item_key"].unique())
    n = n_layers or int(max(rows["src_layer"].max(), rows["tgt_layer"].max()) + 1)
    return dense_array(rows, value, keys, range(n), range(n)), keys


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
        cells = len(self.src_layers) * len(self.tgt_layers)
        run = int((~np.isnan(self.correct).any(axis=0)).sum()) if len(self.items) else 0
        part = f", {run} of these {cells} configurations run for every item" if run < cells else ""
        return (f"sources {layers_text(self.src_layers)} × targets {layers_text(self.tgt_layers)}{depth}{full}"
                f"{part}")

    @property
    def is_full(self) -> bool:
        """Every (source, target) pair of the model's layers was swept for every item."""
        n = self.n_layers
        return (n is not None and self.src_layers == list(range(n)) and self.tgt_layers == list(range(n))
                and not np.isnan(self.correct).any())


def _need(df: pd.DataFrame, cols: Sequence[str]) -> None:
    if not isinstance(df, pd.DataFrame):
        raise XtlError(f"expected a results table (a pandas DataFrame from xtl.sweep, read_store or xtl.evaluate), "
                       f"not {type(df).__name__}")
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
    variant = [c for c in ("alpha", "span", "positions", "sources") if c in df.columns]
    if variant and len(df.loc[~df["is_vanilla"], variant].drop_duplicates()) > 1:
        raise XtlError("the table holds several transplant variants (alpha, span, positions or sources); take "
                       "one: xtl.analysis.select_variant(df, alpha=...) or xtl.analysis.variant_frames(df)")
    twice = df.duplicated(["item_key", "src_layer", "tgt_layer"]) & ~df["is_vanilla"]
    if twice.any():
        first = df[twice].iloc[0]
        raise XtlError(f"{int(twice.sum())} row(s) repeat an (item, source, target) of the table, e.g. "
                       f"{first['item_key']} ({int(first['src_layer'])}, {int(first['tgt_layer'])}); concatenated "
                       "twice? keep one row per configuration (df.drop_duplicates)")
    van = df[df["is_vanilla"]].drop_duplicates("item_key").set_index("item_key")
    rest = df[~df["is_vanilla"]]
    items = sorted(van.index)
    if not items:
        raise XtlError("no vanilla rows in the results; every item needs its vanilla row")
    srcs = sorted(int(x) for x in rest["src_layer"].unique())
    tgts = sorted(int(x) for x in rest["tgt_layer"].unique())
    arr = dense_array(rest, value, items, srcs, tgts)
    langs = [str(van.loc[k, "lang"]) if "lang" in van.columns else "" for k in items]
    groups = [str(van.loc[k, "group"]) if "group" in van.columns else "" for k in items]
    if n_layers is None and "n_layers" in df.columns and df["n_layers"].notna().any():
        n_layers = int(df["n_layers"].max())
    return Grid(arr, van.loc[items, value].astype(float).to_numpy(), items, langs, groups, srcs, tgts,
                n_layers, average)


