"""Figures in Jupyter that still show when nobody runs the notebook: on GitHub, in an HTML
export, in nbviewer or after the kernel is gone.

Plotly's default in Jupyter stores a figure only as its own JSON mime type, which needs the
plotly extension of a live front end; every static viewer shows a blank cell. :func:`use_in_notebook`
makes each figure carry two forms instead: plotly's HTML (live JupyterLab, VS Code, HTML exports
and nbviewer; plotly.js comes from its CDN into the reader's browser, so the file stays small) and
a PNG (viewers that run no JavaScript, such as GitHub's), the PNG only where images can be
exported (``kaleido`` and a Chrome or Chromium on the machine)."""

from __future__ import annotations

import logging

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
        pio.renderers["png"].width, pio.renderers["png"].height = width, height
        parts.append("png")
    pio.renderers.default = "+".join(parts)
    return pio.renderers.default
