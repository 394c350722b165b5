"""Interactive plotly figures of analyses; every figure saves as standalone HTML.

Figures take the outputs of :mod:`xtl.analysis` (and of the logit lens), never compute them;
they return a ``go.Figure`` and write nothing (:func:`save` is the caller's choice).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from xtl.analysis.accuracy import WinTieLose
from xtl.analysis.bounds import Bounds
from xtl.analysis.finding import Finding
from xtl.analysis.margins import MarginPanel
from xtl.analysis.views import CaseGrid, GainPanel, LayerGains

__all__ = ["gain_heatmap", "margin_heatmap", "finding_bars", "lang_layer_heatmap", "wtl_bars", "upper_bound_curves",
           "case_grid", "lens_heatmap", "chosen_layers", "save", "save_page"]

DIVERGING = "RdBu"


def _gain_trace(p: GainPanel, visible: bool, zmax: float) -> go.Heatmap:
    ex = p.examples if p.examples is not None else np.full(p.gain.shape, "", dtype=object)
    custom = np.dstack([p.accuracy, p.n, ex]).astype(object)
    return go.Heatmap(
        z=p.gain, x=p.tgt_layers, y=p.src_layers, zmid=0, zmin=-zmax, zmax=zmax, colorscale=DIVERGING,
        customdata=custom, visible=visible, name=p.name, colorbar={"title": "gain (pts)"},
        hovertemplate=("source %{y} → target %{x}<br>accuracy %{customdata[0]:.1f}%"
                       "<br>gain %{z:+.1f} pts<br>n = %{customdata[1]}<br>e.g. %{customdata[2]}<extra></extra>"))


def _mark(fig: go.Figure, at: tuple[int, int] | None, label: str) -> None:
    """Point out one (source, target) cell: a ring and its label."""
    if at is None:
        return
    fig.add_trace(go.Scatter(x=[at[1]], y=[at[0]], mode="markers+text", text=[label], textposition="top center",
                             marker={"symbol": "circle-open", "size": 18, "color": "black", "line": {"width": 3}},
                             textfont={"color": "black"}, showlegend=False, hoverinfo="skip", name=label))


def _titled(title: str, sub: str) -> dict:
    """A title whose second line carries the details, so that it fits the figure's width."""
    return {"text": f"{title}<br><sup>{sub}</sup>" if sub else title, "x": 0.0, "xanchor": "left"}


def gain_heatmap(panels: Sequence[GainPanel], title: str = "Accuracy gain over vanilla",
                 mark: tuple[int, int] | None = None, mark_label: str = "best") -> go.Figure:
    """N x N heatmap of gain (source x target), diverging colours centred on 0, a dropdown per
    panel (``all`` and each language: :func:`xtl.analysis.views.gain_panels`); ``mark`` rings
    one (source, target) cell."""
    panels = list(panels)
    zmax = max(float(np.nanmax(np.abs(p.gain))) if np.isfinite(p.gain).any() else 0.0 for p in panels) or 1.0
    fig = go.Figure()
    for k, p in enumerate(panels):
        fig.add_trace(_gain_trace(p, k == 0, zmax))
    if len(panels) > 1:
        marked = [True] if mark is not None else []
        buttons = [{"label": p.name, "method": "update",
                    "args": [{"visible": [m == k for m in range(len(panels))] + marked},
                             {"title": _titled(title, f"{p.name}: vanilla {p.vanilla:.1f}%")}]}
                   for k, p in enumerate(panels)]
        fig.update_layout(updatemenus=[{"buttons": buttons, "x": 1.0, "y": 1.15, "xanchor": "right"}])
    _mark(fig, mark, mark_label)
    fig.update_layout(title=_titled(title, f"{panels[0].name}: vanilla {panels[0].vanilla:.1f}%"),
                      xaxis_title="target layer j", yaxis_title="source layer i",
                      height=640, autosize=True, margin={"t": 110})
    fig.update_xaxes(type="category")     # swept layers may skip some: one cell per swept layer
    fig.update_yaxes(type="category")
    return fig


def _margin_trace(panel: MarginPanel, visible: bool, zmax: float) -> go.Heatmap:
    acc = panel.accuracy if panel.accuracy is not None else np.full(panel.gain.shape, np.nan)
    text = np.where(acc >= 100, "✓", "") if _single(panel) else np.full(panel.gain.shape, "", dtype=object)
    return go.Heatmap(
        z=panel.gain, x=panel.tgt_layers, y=panel.src_layers, zmid=0, zmin=-zmax, zmax=zmax, visible=visible,
        name=panel.name, colorscale=DIVERGING, text=text, texttemplate="%{text}",
        customdata=np.dstack([panel.margin, acc]), colorbar={"title": "margin gain"},
        hovertemplate=("source %{y} → target %{x}<br>gold margin %{customdata[0]:+.2f}<br>gain %{z:+.2f}"
                       + ("<br>right: %{customdata[1]:.0f}%" if panel.accuracy is not None else "")
                       + "<extra></extra>"))


def _single(panel: MarginPanel) -> bool:
    """One item's panel: every cell right or wrong (ticks mark the right ones)."""
    return panel.accuracy is not None and np.isin(panel.accuracy[np.isfinite(panel.accuracy)], (0, 100)).all()


def _margin_sub(panel: MarginPanel) -> str:
    return (f"{panel.name}: first-token log-prob of the gold option minus the best other's, minus vanilla's "
            f"({panel.vanilla:+.2f})" + ("; ✓ answers right" if _single(panel) else ""))


def margin_heatmap(panels: MarginPanel | Sequence[MarginPanel], title: str = "Gold margin gain over vanilla") -> go.Figure:
    """N x N heatmap of the gold option's first-token margin gain (source x target), diverging
    colours centred on 0; cells that answer right carry a tick, the panels' mark a ring; a
    dropdown per panel where there are several (``all`` and each language:
    :func:`xtl.analysis.margins.margin_panels`)."""
    panels = [panels] if isinstance(panels, MarginPanel) else list(panels)
    zmax = max((float(np.nanmax(np.abs(p.gain))) if np.isfinite(p.gain).any() else 0.0) for p in panels) or 1.0
    fig = go.Figure([_margin_trace(p, k == 0, zmax) for k, p in enumerate(panels)])
    first = panels[0]
    if len(panels) > 1:
        marked = [True] if first.mark is not None else []
        buttons = [{"label": p.name, "method": "update",
                    "args": [{"visible": [m == k for m in range(len(panels))] + marked},
                             {"title": _titled(title, _margin_sub(p))}]} for k, p in enumerate(panels)]
        fig.update_layout(updatemenus=[{"buttons": buttons, "x": 1.0, "y": 1.15, "xanchor": "right"}])
    _mark(fig, first.mark, first.mark_label)
    fig.update_layout(title=_titled(title, _margin_sub(first)), xaxis_title="target layer j",
                      yaxis_title="source layer i", height=640, autosize=True, margin={"t": 110})
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    return fig


def finding_bars(f: Finding, title: str = "Vanilla, the held-out pair and the upper bounds") -> go.Figure:
    """Table 4's rows as bars: vanilla, the best pair held out, SourceLast, TargetFirst and the
    full-grid bound, each bound beside the same bound with right answers shuffled across items."""
    rows = f.rows()
    names = [name for name, _, _ in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=names, y=[v for _, v, _ in rows], name="observed",
                         text=[f"{v:.1f}%" for _, v, _ in rows], textposition="outside"))
    fig.add_trace(go.Bar(x=names, y=[s if s is not None else np.nan for _, _, s in rows],
                         name="right answers shuffled across items", marker_color="lightgray",
                         text=[f"{s:.1f}%" if s is not None and s == s else "" for _, _, s in rows],
                         textposition="outside"))
    missing = [f"{name}: {v}" for name, v, _ in rows if v != v]
    if missing:
        fig.add_annotation(text="<br>".join(missing), showarrow=False, xref="paper", yref="paper", x=0.5, y=0.9)
    fig.update_layout(title=_titled(title, f"{f.n_items} items, {' '.join(f.langs)}"), barmode="group",
                      yaxis={"title": "accuracy (%)", "range": [0, 110]}, autosize=True, height=460,
                      legend={"orientation": "h", "y": -0.2})
    return fig


def _layer_axis(first_layer: int) -> str:
    return "" if first_layer == 0 else f" (numbered from {first_layer}, as the paper's axes)"


def lang_layer_heatmap(lg: LayerGains, title: str | None = None, first_layer: int = 0) -> go.Figure:
    """Language x layer heatmap of mean gain by source (or target) layer (Figure 3).
    ``first_layer``: the number the first layer gets on the axis (the paper's figures use 1)."""
    axis = lg.axis
    z = lg.gain
    zmax = (float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 0.0) or 1.0
    fig = go.Figure(go.Heatmap(z=z, x=[l + first_layer for l in lg.layers], y=lg.langs, zmid=0, zmin=-zmax, zmax=zmax,
                               colorscale=DIVERGING, colorbar={"title": "gain (pts)"},
                               hovertemplate=f"%{{y}}, {axis} layer %{{x}}<br>mean gain %{{z:+.2f}} pts<extra></extra>"))
    fig.update_layout(title=title or f"Mean gain by {axis} layer and language",
                      xaxis_title=f"{axis} layer{_layer_axis(first_layer)}", yaxis_title="language",
                      height=max(320, 200 + 28 * len(lg.langs)))
    fig.update_traces(colorbar={"title": "gain (pts)", "nticks": 5, "thickness": 14})
    fig.update_xaxes(type="category")     # one block per swept layer, none stretched over gaps
    return fig


def wtl_bars(stats: dict[str, WinTieLose], title: str = "Win / tie / lose against vanilla",
             averages: bool = False) -> go.Figure:
    """Stacked bars of win/tie/lose configuration counts per (dataset, site) label (Figure 2a);
    with ``averages``, as rates (%) beside a panel of vanilla vs the average over every
    configuration (Figure 2b)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("(a) win / tie / lose (%)", "(b) average performance (%)")) \
        if averages else go.Figure()
    where = {"row": 1, "col": 1} if averages else {}
    for key, colour in (("win", "#2b8cbe"), ("tie", "#bdbdbd"), ("lose", "#e34a33")):
        y = [100 * getattr(s, key) / s.n_configs if averages and s.n_configs else getattr(s, key)
             for s in stats.values()]
        fig.add_trace(go.Bar(name=key, x=list(stats), y=y, marker_color=colour,
                             customdata=[[s.vanilla, s.average, getattr(s, key)] for s in stats.values()],
                             hovertemplate=(f"%{{x}}: %{{customdata[2]}} {key}<br>vanilla %{{customdata[0]:.1f}}%"
                                            "<br>average over configs %{customdata[1]:.1f}%<extra></extra>")), **where)
    if averages:
        for name, colour, attr in (("vanilla", "#636363", "vanilla"), ("average of all configurations", "#2b8cbe", "average")):
            fig.add_trace(go.Bar(name=name, x=list(stats), y=[getattr(s, attr) for s in stats.values()],
                                 marker_color=colour, offsetgroup=attr), row=1, col=2)
        fig.update_layout(barmode="stack", title=title)
        fig.update_yaxes(title_text="% of configurations", row=1, col=1)
        fig.update_yaxes(title_text="accuracy (%)", row=1, col=2)
        return fig
    fig.update_layout(barmode="stack", title=title, yaxis_title="configurations")
    return fig


def upper_bound_curves(ub: Bounds, title: str = "Instance-aware upper bounds", first_layer: int = 0) -> go.Figure:
    """Source-wise and target-wise upper bounds over layers, vanilla as a line (Figure 4).
    ``first_layer``: the number the first layer gets on the axis (the paper's figures use 1)."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[l + first_layer for l in ub.src_layers], y=ub.source, mode="lines+markers",
                             name="source-wise (fixed i)"))
    fig.add_trace(go.Scatter(x=[l + first_layer for l in ub.tgt_layers], y=ub.target, mode="lines+markers",
                             name="target-wise (fixed j)"))
    fig.add_hline(y=ub.vanilla, line_dash="dash", annotation_text=f"vanilla {ub.vanilla:.1f}%",
                  annotation_position="top left")
    if not np.isnan(ub.oracle):
        fig.add_hline(y=ub.oracle, line_dash="dot", annotation_text=f"N² oracle {ub.oracle:.1f}%",
                      annotation_position="bottom right")
    missing = [f"{label}: {ub.reasons.get(key, 'not every layer of the other side was swept')}"
               for label, curve, key in (("source-wise", ub.source, "source_last"),
                                         ("target-wise", ub.target, "target_first"))
               if not np.isfinite(curve).any()]
    if missing:  # say why a curve is absent, as Table 4 does, instead of an empty plot
        fig.add_annotation(text="not computable on this grid —<br>" + "<br>".join(missing), showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.5, align="center")
    layers = [*ub.src_layers, *ub.tgt_layers]
    if layers:  # the axis starts at the first layer's number (1 on the paper's figures), not at 0
        fig.update_xaxes(range=[min(layers) + first_layer - 0.5, max(layers) + first_layer + 0.5])
    fig.update_layout(title=f"{title}<br><sup>{ub.grid}</sup>", xaxis_title=f"layer{_layer_axis(first_layer)}",
                      yaxis_title="accuracy (%)")
    return fig


def chosen_layers(counts, n_layers: int, title: str = "Configurations chosen per item") -> go.Figure:
    """Source × target heatmap of how often a strategy chose each configuration, a dropdown for
    all items, each resource group and each language (``counts``:
    :meth:`xtl.strategies.Selection.chosen_layers`); vanilla choices are counted in the name."""
    panels = [("all", counts)]
    panels += [(g, counts[counts["group"] == g]) for g in ("high", "mid", "low") if g in set(counts["group"])]
    if "lang" in counts.columns:
        panels += [(str(l), counts[counts["lang"] == l]) for l in sorted(set(counts["lang"]))]
    fig = go.Figure()
    for k, (name, part) in enumerate(panels):
        z = np.zeros((n_layers, n_layers))
        for r in part[part["src_layer"] >= 0].itertuples():
            z[int(r.src_layer), int(r.tgt_layer)] += r.items
        vanilla = int(part[part["src_layer"] < 0]["items"].sum())
        fig.add_trace(go.Heatmap(z=z, x=list(range(n_layers)), y=list(range(n_layers)), colorscale="Blues",
                                 visible=k == 0, name=f"{name} (vanilla {vanilla})", colorbar={"title": "items"},
                                 hovertemplate="source %{y} → target %{x}: %{z:.0f} items<extra></extra>"))
    if len(panels) > 1:
        buttons = [{"label": fig.data[k].name, "method": "update",
                    "args": [{"visible": [m == k for m in range(len(panels))]}]} for k in range(len(panels))]
        # the dropdown sits above the plot on the right, the title on the left: they never overlap
        fig.update_layout(updatemenus=[{"buttons": buttons, "x": 1.0, "y": 1.02, "xanchor": "right",
                                        "yanchor": "bottom"}])
    fig.update_layout(title={"text": f"{title} — {fig.data[0].name}", "x": 0.0, "xanchor": "left", "y": 0.98,
                             "yanchor": "top"},
                      margin={"t": 120}, xaxis_title="target layer j", yaxis_title="source layer i",
                      width=680, height=600)
    return fig


def case_grid(case: CaseGrid, title: str = "Configurations that answer right") -> go.Figure:
    """N x N correctness grid of one item (case study): green right, red wrong."""
    correct, src_layers, tgt_layers = case.correct, case.src_layers, case.tgt_layers
    responses, vanilla_ok = case.responses, case.vanilla_ok
    text = responses if responses is not None else np.full(correct.shape, "", dtype=object)
    fig = go.Figure(go.Heatmap(
        z=correct.astype(float), x=list(tgt_layers), y=list(src_layers), zmin=0, zmax=1,
        colorscale=[[0, "#e34a33"], [1, "#31a354"]], showscale=False, customdata=text,
        hovertemplate="source %{y} → target %{x}<br>%{customdata}<extra></extra>"))
    if vanilla_ok is not None:
        title += f" (vanilla {'right' if vanilla_ok else 'wrong'})"
    fig.update_layout(title=title, xaxis_title="target layer j", yaxis_title="source layer i",
                      width=640, height=600)
    return fig


def lens_heatmap(colours: dict[str, np.ndarray], text: np.ndarray, hover: np.ndarray,
                 x_labels: Sequence[str], y_labels: Sequence[str], title: str,
                 first: str | None = None) -> go.Figure:
    """Layer x position/step heatmap with the top token written in each cell.

    ``colours``: name -> z array (``"top-1 probability"``, ``"p(A)"``, ...); a dropdown switches
    between them when there are several, ``first`` is shown first.
    """
    names = list(colours)
    first = first if first in colours else names[0]
    fig = go.Figure()
    for name in names:
        fig.add_trace(go.Heatmap(
            z=colours[name], x=list(range(len(x_labels))), y=list(y_labels), text=text,
            texttemplate="%{text}", textfont={"size": 12}, zmin=0, zmax=1, colorscale="Blues",
            customdata=hover, colorbar={"title": name}, visible=name == first, name=name,
            hovertemplate="%{customdata}<extra></extra>"))
    if len(names) > 1:
        buttons = [{"label": f"colour: {name}", "method": "update",
                    "args": [{"visible": [m == name for m in names]}]} for name in names]
        fig.update_layout(updatemenus=[{"buttons": buttons, "x": 1.0, "y": 1.12, "xanchor": "right",
                                        "active": names.index(first)}])
    fig.update_xaxes(tickmode="array", tickvals=list(range(len(x_labels))), ticktext=list(x_labels),
                     tickfont={"size": 13})
    fig.update_yaxes(tickfont={"size": 13}, automargin=True)
    fig.update_layout(title=title, xaxis_title="position / generated step", yaxis_title="layer",
                      font={"size": 13}, margin={"l": 110},
                      height=240 + 28 * len(y_labels), autosize=True)  # as wide as the window
    return fig


#: plotly's ``include_plotlyjs`` for each of :data:`xtl.options.PLOTLYJS` (inlined: 4.8 MB a file).
_INCLUDE_PLOTLYJS = {"inline": True, "shared": "directory", "cdn": "cdn"}


def save(fig: go.Figure, path: str | os.PathLike, static: bool = False, plotlyjs: str = "inline") -> Path:
    """Write a figure as an HTML file: standalone by default (plotly.js inlined); ``plotlyjs=
    "shared"`` writes ``plotly.min.js`` once beside the files and has each load it, ``"cdn"``
    loads it from plotly's CDN. With ``static`` also a PNG beside it when the environment can
    export images (kaleido), else a warning that says why not."""
    from xtl.options import PLOTLYJS, check_option

    mode = _INCLUDE_PLOTLYJS[check_option("plotlyjs", plotlyjs, PLOTLYJS)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs=mode, full_html=True, default_width="100%",
                   config={"responsive": True})
    if static:
        try:
            fig.write_image(path.with_suffix(".png"))
        except Exception as exc:  # noqa: BLE001 - static export is optional: say why it was skipped
            import warnings

            warnings.warn(f"no PNG beside {path.name} ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); "
                          "pip install kaleido (and a Chrome it can drive) for static images", stacklevel=2)
    return path


def save_page(figs: Sequence[go.Figure], path: str | os.PathLike, title: str, intro: str = "") -> Path:
    """Write several figures as one standalone HTML page (plotly.js inlined once), under a title
    and an introductory paragraph (plain text, escaped)."""
    import html

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [fig.to_html(full_html=False, include_plotlyjs=k == 0, default_width="100%",
                         config={"responsive": True}) for k, fig in enumerate(figs)]
    body = "\n".join(f"<section>{part}</section>" for part in parts)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:1.5em}pre{background:#f5f5f5;padding:.8em;white-space:pre-wrap}</style></head>"
            f"<body><h1>{html.escape(title)}</h1><pre>{html.escape(intro)}</pre>{body}</body></html>")
    path.write_text(page, encoding="utf-8")
    return path
