"""Former home of the figures; now :mod:`xtl.figures.plots`, whose functions take analysis
results. Kept so that older code works: these take a :class:`xtl.analysis.Grid`, compute its
analysis here, and draw it with :mod:`xtl.figures.plots`."""

from __future__ import annotations

import numpy as np

from xtl import analysis as _an
from xtl.analysis import views as _views
from xtl.figures import plots as _plots
from xtl.figures.plots import case_grid, lens_heatmap, save  # noqa: F401

__all__ = ["gain_heatmap", "lang_layer_heatmap", "wtl_bars", "upper_bound_curves", "case_grid",
           "lens_heatmap", "save"]


def gain_heatmap(g, examples: dict[str, np.ndarray] | None = None, per_lang: bool = True, **kw):
    """:func:`xtl.figures.plots.gain_heatmap` of :func:`xtl.analysis.views.gain_panels` of ``g``."""
    return _plots.gain_heatmap(_views.gain_panels(g, examples, per_lang), **kw)


def lang_layer_heatmap(g, axis: str = "source", title: str | None = None):
    """:func:`xtl.figures.plots.lang_layer_heatmap` of :func:`xtl.analysis.views.layer_gains`."""
    return _plots.lang_layer_heatmap(_views.layer_gains(g, axis), title)


def wtl_bars(results: dict, **kw):
    """:func:`xtl.figures.plots.wtl_bars` of :func:`xtl.analysis.win_tie_lose` of each grid."""
    return _plots.wtl_bars({name: _an.win_tie_lose(g) for name, g in results.items()}, **kw)


def upper_bound_curves(g, **kw):
    """:func:`xtl.figures.plots.upper_bound_curves` of :func:`xtl.analysis.upper_bounds`."""
    return _plots.upper_bound_curves(_an.upper_bounds(g), **kw)
