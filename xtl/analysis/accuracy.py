"""Accuracy tables, win/tie/lose and gains over vanilla (Table 3, Figures 2 and 3)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from jaxtyping import Float

from xtl.analysis.grids import Grid, _check_average, _need
from xtl.analysis.records import _Record
from xtl.errors import XtlError

__all__ = ["accuracy_table", "WinTieLose", "win_tie_lose", "gain_matrix", "layerwise_gain", "config_accuracy"]


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


@dataclass(frozen=True)
class WinTieLose(_Record):
    """Configurations above / equal to / below vanilla, and the mean over configurations (%)."""

    win: int
    tie: int
    lose: int
    n_configs: int
    vanilla: float
    average: float


def win_tie_lose(g: Grid, atol: float = 1e-12) -> WinTieLose:
    """Configurations whose accuracy is above / equal to / below vanilla (Figure 2), and the
    average accuracy over all configurations."""
    acc = g.accuracy
    v = g.vanilla_accuracy
    ran = ~np.isnan(acc)
    win = int(np.sum(acc[ran] > v + atol))
    lose = int(np.sum(acc[ran] < v - atol))
    return WinTieLose(win, int(ran.sum()) - win - lose, lose, int(ran.sum()), 100 * v,
                      100 * float(np.nanmean(acc)))


def gain_matrix(g: Grid) -> Float[np.ndarray, "src tgt"]:
    """Accuracy gain over vanilla of every configuration, in points."""
    return 100 * (g.accuracy - g.vanilla_accuracy)


def layerwise_gain(g: Grid) -> tuple[Float[np.ndarray, "src"], Float[np.ndarray, "tgt"]]:
    """Mean gain by source layer (over targets) and by target layer (over sources) (Figure 3)."""
    gain = gain_matrix(g)
    return np.nanmean(gain, axis=1), np.nanmean(gain, axis=0)


def config_accuracy(g: Grid, src: int, tgt: int) -> float:
    """Accuracy (percent) of one configuration."""
    if src not in g.src_layers or tgt not in g.tgt_layers:
        raise XtlError(f"configuration ({src}, {tgt}) was not swept")
    return 100 * float(g.mean(g.correct[:, g.src_layers.index(src), g.tgt_layers.index(tgt)]))
