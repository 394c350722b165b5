"""What the figures show, computed here so that figures only draw: gain panels per language,
gains by layer and language, and one example response per configuration."""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd
from jaxtyping import Float

from xtl.analysis.accuracy import gain_matrix, layerwise_gain
from xtl.analysis.grids import Grid

__all__ = ["GainPanel", "gain_panels", "LayerGains", "layer_gains", "examples_grid", "CaseGrid"]


@dataclass(frozen=True)
class GainPanel:
    """One panel of the gain heatmap: a language (or ``all``) over the swept layers."""

    name: str
    gain: Float[np.ndarray, "src tgt"]  # points over vanilla
    accuracy: Float[np.ndarray, "src tgt"]  # percent
    n: np.ndarray  # items per configuration
    vanilla: float  # percent
    src_layers: list[int]
    tgt_layers: list[int]
    examples: np.ndarray | None = None  # [src, tgt] of str


def gain_panels(g: Grid, examples: dict[str, np.ndarray] | None = None, per_lang: bool = True) -> list[GainPanel]:
    """``all`` and (with several languages and ``per_lang``) one panel per language."""
    grids = {"all": g, **(g.by_lang() if per_lang and len(set(g.langs)) > 1 else {})}
    return [GainPanel(name, gain_matrix(sub), 100 * sub.accuracy, np.sum(~np.isnan(sub.correct), axis=0),
                      100 * sub.vanilla_accuracy, sub.src_layers, sub.tgt_layers, (examples or {}).get(name))
            for name, sub in grids.items()]


@dataclass(frozen=True)
class LayerGains:
    """Mean gain by source (or target) layer, one row per language (Figure 3)."""

    axis: str  # "source" or "target"
    langs: list[str]
    layers: list[int]
    gain: Float[np.ndarray, "lang layer"]


def layer_gains(g: Grid, axis: str = "source") -> LayerGains:
    """Per language, the mean gain by source layer (over targets) or by target layer."""
    langs = g.by_lang()
    rows = [layerwise_gain(sub)[0 if axis == "source" else 1] for sub in langs.values()]
    layers = g.src_layers if axis == "source" else g.tgt_layers
    return LayerGains(axis, list(langs), list(layers), np.array(rows))


def examples_grid(df: pd.DataFrame, g: Grid, width: int = 60) -> dict[str, np.ndarray]:
    """Per language (and ``all``), one example response per configuration for hover text."""
    cols = [c for c in ("lang", "src_layer", "tgt_layer", "response") if c in df.columns]
    rest = df.loc[~df["is_vanilla"], cols]  # only what is shown: grouping a wide table copies every column
    out = {}
    groups = [("all", rest)] + list(rest.groupby("lang")) if "lang" in rest.columns else [("all", rest)]
    si = {v: k for k, v in enumerate(g.src_layers)}
    ti = {v: k for k, v in enumerate(g.tgt_layers)}
    for name, sub in groups:
        arr = np.full((len(si), len(ti)), "", dtype=object)
        first = sub.drop_duplicates(["src_layer", "tgt_layer"])
        for s, t, r in zip(first["src_layer"], first["tgt_layer"], first["response"]):
            text = " ".join(str(r).split())
            arr[si[int(s)], ti[int(t)]] = html.escape(text[:width] + ("…" if len(text) > width else ""))
        out[str(name)] = arr
    return out


@dataclass(frozen=True)
class CaseGrid:
    """One item's N x N correctness (case study) for drawing."""

    correct: np.ndarray  # [src, tgt] bool
    src_layers: list[int]
    tgt_layers: list[int]
    responses: np.ndarray | None = None
    vanilla_ok: bool | None = None
