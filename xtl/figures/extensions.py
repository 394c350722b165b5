"""Figures of the extensions (docs/extensions.md): the gradient screen's estimate beside the
exact grid, and the latent-language lens. They draw results computed elsewhere and return a
``go.Figure``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from xtl.errors import XtlError

if TYPE_CHECKING:
    from xtl.analysis.screened import ScreenPanels

__all__ = ["screen_heatmap", "screen_beside_exact", "language_lens_figure", "extension_figures"]

_HOVER = "source %{y} → target %{x}<br>%{z:+.3f}<extra></extra>"


def _heat(z: np.ndarray, srcs: list[int], tgts: list[int], zmax: float, show_scale: bool,
          colorbar: dict | None = None) -> go.Heatmap:
    return go.Heatmap(z=z, x=tgts, y=srcs, zmid=0, zmin=-zmax, zmax=zmax, colorscale="RdBu",
                      showscale=show_scale, colorbar={"title": "Δ margin", **(colorbar or {})}, hovertemplate=_HOVER)


def _zmax(*grids: np.ndarray) -> float:
    finite = [np.abs(g[np.isfinite(g)]) for g in grids if np.isfinite(g).any()]
    return float(max(f.max() for f in finite)) if finite else 1.0


def screen_heatmap(result: Any, item: str | None = None) -> go.Figure:
    """A :class:`xtl.ScreenResult`'s estimated change of the gold margin per (source, target) cell: one item's,
    or the mean over the screened items."""
    if item is None:
        z, what = result.estimate.mean(0), f"mean over {len(result.items)} items"
    elif item in result.items:
        z, what = result.estimate[result.items.index(item)], item
    else:
        raise XtlError(f"item {item!r} was not screened; pick one of {result.items[:5]}")
    fig = go.Figure(_heat(z, result.src_layers, result.tgt_layers, _zmax(z), True))
    fig.update_layout(title=f"Gradient screen ({result.site}): estimated change of the gold margin — {what}",
                      xaxis_title="target layer j", yaxis_title="source layer i", width=720, height=640)
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    return fig


def screen_beside_exact(panels: "ScreenPanels", title: str = "Gradient screen beside the exact grid") -> go.Figure:
    """Mean estimated and mean exact change of the gold margin per cell, side by side, each on its
    own colour scale centred on 0: the screen ranks cells, its sizes overshoot (cells no item ran
    are blank)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("screen estimate (first order)", "exact (sweep)"),
                        horizontal_spacing=0.14)
    fig.add_trace(_heat(panels.estimate, panels.src_layers, panels.tgt_layers, _zmax(panels.estimate), True,
                        {"x": 0.43, "len": 0.9}), 1, 1)
    fig.add_trace(_heat(panels.exact, panels.src_layers, panels.tgt_layers, _zmax(panels.exact), True,
                        {"x": 1.0, "len": 0.9}), 1, 2)
    fig.update_layout(title=f"{title} (Spearman ρ over the rows run: {panels.spearman:.2f})",
                      width=1100, height=560)
    for col in (1, 2):
        fig.update_xaxes(title_text="target layer j", type="category", row=1, col=col)
        fig.update_yaxes(title_text="source layer i", type="category", row=1, col=col)
    return fig


_COLOURS = {"p(en)": "#1f77b4", "p(target)": "#d62728", "top=en": "#1f77b4", "top=target": "#d62728",
            "top=other": "#7f7f7f"}


def _band(colour: str) -> str:
    r, g, b = (int(colour[k:k + 2], 16) for k in (1, 3, 5))
    return f"rgba({r},{g},{b},0.15)"


def language_lens_figure(curves: pd.DataFrame, title: str = "Latent language of the answer") -> go.Figure:
    """Wendler et al.'s curves from :meth:`xtl.LanguageLens.curves`: left, the answer's logit-lens
    probability in English and in the other language per layer; right, the share of items whose
    top decoded token is in each; solid vanilla, dashed transplanted, shaded 95% bands."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("answer probability by language",
                                                        "language of the top decoded token"))
    for (state, measure), part in curves.groupby(["state", "measure"], sort=False):
        col = 1 if measure.startswith("p(") else 2
        colour, dash = _COLOURS.get(measure, "#2ca02c"), "solid" if state == "vanilla" else "dash"
        x = part["layer"].tolist()
        fig.add_trace(go.Scatter(x=x + x[::-1], y=part["hi"].tolist() + part["lo"].tolist()[::-1], fill="toself",
                                 fillcolor=_band(colour), line={"width": 0}, hoverinfo="skip", showlegend=False),
                      1, col)
        fig.add_trace(go.Scatter(x=x, y=part["mean"], mode="lines+markers", name=f"{measure} · {state}",
                                 line={"color": colour, "dash": dash},
                                 hovertemplate=f"{measure} ({state})<br>layer %{{x}}: %{{y:.3f}}<extra></extra>"),
                      1, col)
    fig.update_layout(title=title, width=1100, height=480)
    fig.update_xaxes(title_text="layer (residual stream after it)")
    fig.update_yaxes(title_text="probability", range=[0, 1], row=1, col=1)
    fig.update_yaxes(title_text="share of items", range=[0, 1], row=1, col=2)
    return fig


def extension_figures(df: pd.DataFrame, language_lens: Any = None) -> list[tuple[str, go.Figure]]:
    """The extensions' figures a report or explorer shows for ``df``: the screen beside the exact
    grid when ``df`` holds screen estimates, and a language lens when one is given."""
    from xtl.analysis.screened import screen_panels

    out = []
    panels = screen_panels(df)
    if panels is not None:
        out.append(("Gradient screen beside the exact grid", screen_beside_exact(panels)))
    if language_lens is not None:
        out.append(("Latent language of the answer (logit lens)", language_lens.figure()))
    return out
