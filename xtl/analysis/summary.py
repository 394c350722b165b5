"""The headline numbers of one sweep."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xtl.analysis.accuracy import config_accuracy, win_tie_lose
from xtl.analysis.bounds import upper_bounds
from xtl.analysis.grids import Grid
from xtl.analysis.records import _Record
from xtl.analysis.selection import coarse_config
from xtl.errors import XtlError

__all__ = ["Headline", "headline"]


@dataclass(frozen=True)
class Headline(_Record):
    """The numbers a report leads with (%); ``coarse`` is None where the site has no
    coarse-grained setting."""

    items: int
    languages: int
    vanilla: float
    average: float
    win: int
    tie: int
    lose: int
    best_config: tuple[int, int]
    best: float
    oracle: float
    source_last: float
    target_first: float
    bound_reasons: dict[str, str]
    grid: str
    group_average: str
    coarse_config: tuple[int, int] | None = None
    coarse: float | None = None


def headline(g: Grid, site: str = "", n_layers: int | None = None) -> Headline:
    """The numbers a report leads with: vanilla, average, best configuration, bounds, win/tie/lose."""
    wtl = win_tie_lose(g)
    ub = upper_bounds(g)
    acc = np.where(np.isnan(g.accuracy), -np.inf, g.accuracy)
    si, ti = np.unravel_index(int(np.argmax(acc)), acc.shape)
    coarse = coarse_acc = None
    n = n_layers or g.n_layers or (max(g.src_layers) + 1)
    try:
        coarse = coarse_config(site, n)
        coarse_acc = config_accuracy(g, *coarse)
    except XtlError:
        coarse = None
    return Headline(len(g.items), len(set(g.langs)), wtl.vanilla, wtl.average, wtl.win, wtl.tie, wtl.lose,
                    (g.src_layers[si], g.tgt_layers[ti]), 100 * float(acc[si, ti]), ub.oracle, ub.source_last,
                    ub.target_first, ub.reasons, ub.grid, g.average, coarse, coarse_acc)
