"""Figures and pages: interactive plotly figures drawn from analysis results, the one-page
HTML report, and figures in notebooks that render without a live kernel. Nothing upstream
imports this package."""

from xtl._lazy import lazy_exports

_EXPORTS = {"use_in_notebook": "xtl.figures.notebook", "can_export_images": "xtl.figures.notebook",
            "explore": "xtl.figures.explorer", "Explorer": "xtl.figures.explorer"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
