"""Figures in Jupyter that still show when nobody runs the notebook: on GitHub, in an HTML
export, in nbviewer or after the kernel is gone.

Plotly's default in Jupyter stores a figure only as its own JSON mime type, which needs the
plotly extension of a live front end; every static viewer shows a blank cell. :func:`use_in_notebook`
makes each figure carry two forms instead: plotly's HTML (live JupyterLab, VS Code, HTML exports
and nbviewer; plotly.js comes from its CDN into the reader's browser, so the file stays small) and
a PNG (viewers that run no JavaScript, such as GitHub's), the PNG only where images can be
exported (``kaleido`` and a Chrome or Chromium on the machine). A PNG that cannot be made at
display time (kaleido fails now and then on a busy machine) leaves the interactive figure alone and
warns once: a static image never ends a notebook."""

from __future__ import annotations

import logging
import warnings

__all__ = ["use_in_notebook", "can_export_images"]

log = logging.getLogger("xtl")


def can_export_images() -> bool:
    """Whether plotly can write PNGs here (kaleido installed and a browser it can drive)."""
    try:
        import kaleido  # noqa: F401
        import plotly.graph_objects as go

        go.Figure().to_image(format="png", width=10, height=10)
    except Exception as exc:  # noqa: BLE001 - any failure means no static images here
        log.info("figures are stored without a static image (%s: %s); install 'xtl[notebook]' and a "
                 "Chrome or Chromium to add one", type(exc).__name__, str(exc).splitlines()[0][:120] if str(exc) else "")
        return False
    return True


#: The name under which :func:`use_in_notebook` registers its PNG renderer with plotly.
SAFE_PNG = "xtl_png"


def _safe_png_renderer():
    """plotly's PNG renderer, except that a failed export yields no PNG (and one warning per
    renderer) instead of an exception, so the figure's other forms are still displayed."""
    from plotly.io._base_renderers import PngRenderer

    class SafePngRenderer(PngRenderer):
        def __init__(self):
            super().__init__()
            self.failures = []  # shared by the shallow copies plotly renders with

        def to_mimebundle(self, fig_dict):
            try:
                return super().to_mimebundle(fig_dict)
            except Exception as exc:  # noqa: BLE001 - a static image is optional: keep the live figure
                self.failures.append(type(exc).__name__)
                if len(self.failures) == 1:
                    first = str(exc).splitlines()[0][:160] if str(exc) else ""
                    warnings.warn(f"a figure is shown without its static PNG ({type(exc).__name__}: {first}); "
                                  "the interactive figure is unaffected. Further failures are not reported",
                                  RuntimeWarning, stacklevel=2)
                log.info("PNG export failed: %s: %s", type(exc).__name__, exc)
                return {}

    return SafePngRenderer()


def use_in_notebook(static: bool | None = None, width: int | None = None, height: int | None = None) -> str:
    """Make the figures this notebook displays render without a live kernel; returns plotly's
    renderer spec.

    Args:
        static: also store a PNG with each figure; ``None`` (default) when this machine can
            export images (:func:`can_export_images`).
        width: width of the PNG in pixels (default: the figure's own, else 700).
        height: height of the PNG in pixels (default: the figure's own, else 500).

    This sets ``plotly.io.renderers.default`` (plotly's own setting, for this kernel only).
    """
    import plotly.io as pio

    parts = ["notebook_connected"]
    if static is None:
        static = can_export_images()
    if static:
        renderer = _safe_png_renderer()
        renderer.width, renderer.height = width, height
        pio.renderers[SAFE_PNG] = renderer
        parts.append(SAFE_PNG)
    pio.renderers.default = "+".join(parts)
    return pio.renderers.default
