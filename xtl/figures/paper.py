"""The paper's Figures 2-4 from evaluated runs: win/tie/lose and average performance (2),
layer-wise gains by language (3) and the instance-aware upper bounds over layers (4), with the
layers numbered from 1 as the paper's axes are (a setting: 0-based is xtl's default elsewhere)."""

from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go

from xtl import analysis as an
from xtl.analysis.views import layer_gains
from xtl.errors import XtlError
from xtl.evaluation.evaluated import Run
from xtl.figures import plots

__all__ = ["FIGURES", "paper_figures"]

#: The paper's figures xtl draws, and what each shows.
FIGURES = {2: "win / tie / lose and average performance of every configuration",
           3: "mean gain by source and by target layer, per language",
           4: "instance-aware upper bounds over source and target layers"}


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-").replace("--", "-")


def paper_figures(runs: Sequence[Run], numbers: Sequence[int] = (2, 3, 4), average: str = "language",
                  first_layer: int = 1) -> dict[str, go.Figure]:
    """Figures ``numbers`` of the paper from the transplanted ``runs``, named
    ``figure<N>[-<dataset>-<site>[-<axis>]]`` (the file stems ``xtl paper --figure`` writes)."""
    bad = [n for n in numbers if n not in FIGURES]
    if bad:
        raise XtlError(f"xtl draws the paper's Figures {', '.join(map(str, FIGURES))}, not {bad}")
    swept = [r for r in runs if r.transplanted and not r.cot]
    if not swept:
        raise XtlError("the figures need transplanted runs (stores of `xtl sweep`); none was given")
    several = len({r.model for r in swept}) > 1
    label = {id(r): f"{r.name}{' · ' + r.model if several else ''} · {r.site}" for r in swept}
    grids = {id(r): an.grid(r.df, n_layers=r.n_layers, average=average) for r in swept}
    out: dict[str, go.Figure] = {}
    if 2 in numbers:
        stats = {label[id(r)]: an.win_tie_lose(grids[id(r)]) for r in swept}
        out["figure2"] = plots.wtl_bars(stats, "Figure 2: effectiveness of every configuration against vanilla",
                                        averages=True)
    for r in swept:
        g, name = grids[id(r)], label[id(r)]
        stem = _slug(f"{r.name}-{r.model if several else ''}-{r.site}")
        if 3 in numbers and len(set(g.langs)) >= 1:
            for axis in ("source", "target"):
                out[f"figure3-{stem}-{axis}"] = plots.lang_layer_heatmap(
                    layer_gains(g, axis), f"Figure 3: mean gain by {axis} layer — {name}", first_layer=first_layer)
        if 4 in numbers:
            out[f"figure4-{stem}"] = plots.upper_bound_curves(
                an.upper_bounds(g), f"Figure 4: instance-aware upper bounds — {name}", first_layer=first_layer)
    return out
