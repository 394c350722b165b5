"""Figures of transplant variants (docs/extensions.md): gain against alpha per site, and several
sources against one per language group. They draw :mod:`xtl.analysis.variants` results."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from xtl.analysis.variants import AlphaGains, SourceGains

__all__ = ["alpha_curves", "source_bars"]


def alpha_curves(ag: AlphaGains, title: str = "Gain over vanilla against alpha") -> go.Figure:
    """One line per site: mean accuracy gain over vanilla (points) at each alpha."""
    fig = go.Figure()
    for site, row in zip(ag.sites, ag.gain):
        ok = ~np.isnan(row)
        fig.add_trace(go.Scatter(x=np.asarray(ag.alphas)[ok], y=row[ok], mode="lines+markers", name=site,
                                 hovertemplate=f"{site}<br>alpha %{{x:g}}<br>gain %{{y:.1f}} points<extra></extra>"))
    fig.add_hline(y=0, line_dash="dot", line_color="grey")
    fig.update_layout(title=title, xaxis_title="alpha (1: the paper's replacement)",
                      yaxis_title="mean gain over vanilla (points)", legend_title="site")
    return fig


def source_bars(sg: SourceGains, title: str = "Several sources against one, per language group") -> go.Figure:
    """Grouped bars: each source spec's mean gain over vanilla (points) per language group."""
    fig = go.Figure()
    for label, row in zip(sg.labels, sg.gain):
        fig.add_trace(go.Bar(x=sg.groups, y=row, name=label,
                             hovertemplate=f"{label}<br>%{{x}}: %{{y:.1f}} points<extra></extra>"))
    fig.update_layout(title=title, barmode="group", xaxis_title="language group",
                      yaxis_title="mean gain over vanilla (points)", legend_title="sources")
    return fig
