"""Results tables that hold transplant variants (docs/extensions.md): one table per variant,
gain against alpha per site, and several sources against one per language group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from jaxtyping import Float

from xtl.analysis.grids import Grid, _need, grid
from xtl.errors import XtlError
from xtl.schema import VARIANT, with_defaults

__all__ = ["VariantKey", "variant_frames", "select_variant", "has_variants", "AlphaGains", "alpha_gains",
           "SourceGains", "source_gains", "mean_gain"]

_NAMES = tuple(c.name for c in VARIANT)


class VariantKey(NamedTuple):
    """One transplant variant of a results table (the columns of :data:`xtl.schema.VARIANT`)."""

    alpha: float
    span: int
    positions: int
    sources: str


def _keyed(df: pd.DataFrame) -> pd.DataFrame:
    return with_defaults(df)


def variant_frames(df: pd.DataFrame) -> dict[VariantKey, pd.DataFrame]:
    """The table split by variant (and site), each part with its items' vanilla rows: what every
    analysis of one variant reads (:func:`xtl.analysis.grid` takes one). Keys in sorted order."""
    df = _keyed(df)
    _need(df, ["item_key", "is_vanilla", *_NAMES])
    van, rest = df[df["is_vanilla"]], df[~df["is_vanilla"]]
    out = {}
    for key, part in rest.groupby(list(_NAMES), sort=True):
        key = VariantKey(float(key[0]), int(key[1]), int(key[2]), str(key[3]))
        mine = van[(van["sources"] == key.sources) & (van["span"] == key.span) & (van["positions"] == key.positions)]
        out[key] = pd.concat([mine[mine["item_key"].isin(part["item_key"])], part], ignore_index=True)
    return out


def has_variants(df: pd.DataFrame) -> bool:
    """Whether the transplanted rows hold more than one variant."""
    df = _keyed(df)
    rest = df[~df["is_vanilla"]] if "is_vanilla" in df.columns else df
    return len(rest.drop_duplicates(list(_NAMES))) > 1 if len(rest) else False


def select_variant(df: pd.DataFrame, alpha: float | None = None, sources: str | None = None) -> pd.DataFrame:
    """The rows of one variant and their vanilla rows: ``alpha`` if given, else the
    replacement (alpha 1) where the table has it, else its largest alpha; ``sources`` if given,
    else the one with the most sources."""
    frames = variant_frames(df)
    if not frames:
        return df
    alphas = sorted({k.alpha for k in frames})
    want = alpha if alpha is not None else (1.0 if 1.0 in alphas else alphas[-1])
    labels = {k.sources for k in frames if k.alpha == want}
    if sources is None and labels:
        sources = max(labels, key=lambda x: (x.count(",") if x else -1, x))
    picked = [f for k, f in frames.items() if k.alpha == want and k.sources == sources]
    if not picked:
        raise XtlError(f"the table has alpha {', '.join(f'{a:g}' for a in alphas)} and sources "
                       f"{sorted(labels)}, not alpha {want:g} with sources {sources!r}")
    if len(picked) > 1:
        raise XtlError("the table mixes spans, positions or sources; split it with xtl.analysis.variant_frames")
    return picked[0]


def mean_gain(g: Grid) -> float:
    """Mean accuracy over the grid's configurations minus vanilla accuracy, in points (each
    item's mean over configurations, then the grid's mean over items)."""
    with np.errstate(invalid="ignore"):
        per_item = np.nanmean(g.correct.reshape(len(g.items), -1), axis=1)
    return float(100 * (g.mean(per_item) - g.vanilla_accuracy))


@dataclass(frozen=True)
class AlphaGains:
    """Mean gain over vanilla (points) of each site at each alpha; NaN where not swept."""

    sites: list[str]
    alphas: list[float]
    gain: Float[np.ndarray, "site alpha"]

    def __post_init__(self) -> None:
        if self.gain.shape != (len(self.sites), len(self.alphas)):
            raise XtlError(f"gain {self.gain.shape} does not match {len(self.sites)} sites x {len(self.alphas)} alphas")


def alpha_gains(df: pd.DataFrame, average: str = "language") -> AlphaGains:
    """:func:`mean_gain` of every (site, alpha) of an evaluated table (stores of several sites
    concatenated, or one store's alpha axis)."""
    df = _keyed(df)
    _need(df, ["site", "correct"])
    sites = sorted(df["site"].unique())
    alphas = sorted(float(a) for a in df.loc[~df["is_vanilla"], "alpha"].unique())
    gain = np.full((len(sites), len(alphas)), np.nan)
    for s, site in enumerate(sites):
        for key, part in variant_frames(df[df["site"] == site]).items():
            gain[s, alphas.index(key.alpha)] = mean_gain(grid(part, average=average))
    return AlphaGains(sites, alphas, gain)


@dataclass(frozen=True)
class SourceGains:
    """Mean gain over vanilla (points) of each source spec per language group, ``all`` last."""

    labels: list[str]  # the ``sources`` of each run: ``zh,ja`` several, ``zh`` one
    groups: list[str]
    gain: Float[np.ndarray, "label group"]

    def __post_init__(self) -> None:
        if self.gain.shape != (len(self.labels), len(self.groups)):
            raise XtlError(f"gain {self.gain.shape} does not match {len(self.labels)} sources x "
                           f"{len(self.groups)} groups")


def source_gains(df: pd.DataFrame, average: str = "language") -> SourceGains:
    """:func:`mean_gain` per language group of each ``sources`` value of an evaluated table
    (runs with several sources and with one, concatenated; a run of one source without
    ``source_langs`` is labelled ``one source``). One site and alpha at a time."""
    df = _keyed(df)
    _need(df, ["correct", "group"])
    frames = variant_frames(df)
    if len({(k.alpha, k.span, k.positions) for k in frames}) > 1:
        raise XtlError("source_gains compares sources at one alpha, span and positions; select them first")
    parts = {(k.sources or "one source"): f for k, f in frames.items()}
    groups = sorted({str(x) for x in df["group"].dropna().unique()}) + ["all"]
    gain = np.full((len(parts), len(groups)), np.nan)
    for r, part in enumerate(parts.values()):
        g = grid(part, average=average)
        for c, name in enumerate(groups):
            mask = [True] * len(g.items) if name == "all" else [x == name for x in g.groups]
            if any(mask):
                gain[r, c] = mean_gain(g.subset(mask))
    return SourceGains(list(parts), groups, gain)
