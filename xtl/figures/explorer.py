"""``xtl.explore``: the gain heatmap of a sweep in Jupyter, linked to its items and to the logit
lens. Click a cell (i, j): that configuration's items appear beside it, the ones the transplant
fixed or broke first; pick an item: the logit lens of that transplant against vanilla appears
below (when a model is given). Built on plotly's ``FigureWidget`` and ipywidgets, no front-end
build step (``pip install 'xtl[notebook]'``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import pandas as pd

from xtl import analysis as an
from xtl.analysis.cells import cell_items
from xtl.analysis.margins import margin_panels
from xtl.analysis.views import examples_grid, gain_panels
from xtl.errors import XtlError
from xtl.figures import plots
from xtl.figures.extensions import extension_figures

if TYPE_CHECKING:
    from xtl.models.backends import Model

    from xtl.evaluation.evaluated import Run
    from xtl.tasks import Item

__all__ = ["Explorer", "explore"]


@dataclass
class Explorer:
    """What the widget's handlers do, as plain methods (tested without a browser): the rows of
    a cell, and the logit-lens call of one item's transplant."""

    df: pd.DataFrame
    site: str
    n_layers: int | None = None
    model: "Model | None" = None
    items: "dict[str, Item]" = field(default_factory=dict)
    data: str | None = None  # the task spec, to find prompts when ``items`` lacks one
    data_root: str | None = None
    chat: bool = False
    max_new_tokens: int = 8

    def cell(self, src: int, tgt: int) -> pd.DataFrame:
        """The items of configuration (``src``, ``tgt``): fixed, then broken, then the rest."""
        return cell_items(self.df, int(src), int(tgt))

    def item(self, key: str) -> "Item":
        if key not in self.items and self.data:
            from xtl.tasks import load_task

            langs = sorted(self.df["lang"].astype(str).unique()) if "lang" in self.df else None
            self.items.update({it.key: it for it in load_task(self.data, langs=langs, data_root=self.data_root)})
        if key not in self.items:
            raise XtlError(f"the prompts of item {key!r} are unknown; pass items=[...] (the sweep's items)")
        return self.items[key]

    def lens_args(self, key: str, src: int, tgt: int) -> dict[str, Any]:
        """The arguments of :func:`xtl.compare` for ``key`` transplanted at (``src``, ``tgt``)."""
        it = self.item(key)
        return {"source": it.source, "target": it.target, "src_layer": int(src),
                "tgt_layer": int(tgt), "site": self.site, "max_new_tokens": self.max_new_tokens, "chat": self.chat}

    def lens(self, key: str, src: int, tgt: int) -> dict[str, Any]:
        """Source vanilla, target vanilla and transplanted logit lens of one item (needs the model)."""
        if self.model is None:
            raise XtlError("the logit lens needs the model: xtl.explore(run, model=model)")
        from xtl.interpret import compare

        return compare(self.model, **self.lens_args(key, src, tgt))


def _table_html(rows: pd.DataFrame, src: int, tgt: int, limit: int = 200) -> str:
    counts = rows["status"].value_counts()
    head = (f"<b>source {src} → target {tgt}</b>: {len(rows)} items — {counts.get('fixed', 0)} fixed, "
            f"{counts.get('broken', 0)} broken, {counts.get('right', 0)} right, {counts.get('wrong', 0)} wrong")
    shown = rows.head(limit).drop(columns=["vanilla_correct", "correct"])
    more = f"<p>first {limit} of {len(rows)}</p>" if len(rows) > limit else ""
    return head + shown.to_html(index=False, float_format=lambda x: f"{x:.2f}", border=0) + more


def explore(run: "Run | pd.DataFrame", model: "Model | None" = None,
            items: "Sequence[Item] | None" = None, site: str | None = None, average: str = "language",
            max_new_tokens: int = 8, language_lens: Any = None) -> Any:
    """An interactive explorer of an evaluated sweep (an :class:`xtl.Run` from
    :func:`xtl.open_run`, or an evaluated results table) for Jupyter: gain heatmap → the items of
    the clicked configuration → the logit lens of a chosen item (with ``model``). Returns the
    ipywidgets box to display; its handlers are an :class:`Explorer` (``box.explorer``). Below it:
    the gradient screen beside the exact grid (a sweep with ``screen=K``) and ``language_lens``
    (a :class:`xtl.LanguageLens`), when there are."""
    try:
        import ipywidgets as w
        import plotly.graph_objects as go
    except ImportError as exc:
        raise XtlError("xtl.explore needs the notebook extra: pip install 'xtl[notebook]'") from exc
    is_run = hasattr(run, "df") and hasattr(run, "settings")  # an xtl.Run, without importing its module
    if not is_run and not isinstance(run, pd.DataFrame):
        raise XtlError(f"xtl.explore takes an xtl.Run (xtl.open_run(store)) or an evaluated results table, "
                       f"not {type(run).__name__}")
    settings = run.settings if is_run else {}
    df = run.df if is_run else run
    if site is not None:
        from xtl.patching.sites import Site

        site = str(Site.parse(site))  # an unknown site is refused here, not at the first click
    if "correct" not in df.columns:
        raise XtlError("explore needs evaluated results: xtl.open_run(store) or xtl.evaluate(results, items)")
    ex = Explorer(df, site or str(settings.get("site") or df["site"].iloc[0]), settings.get("n_layers"), model,
                  {it.key: it for it in items or []}, settings.get("data"), settings.get("data_root"),
                  bool(settings.get("chat")), max_new_tokens)
    g = an.grid(df, n_layers=ex.n_layers, average=average)
    try:
        fig = go.FigureWidget(plots.gain_heatmap(gain_panels(g, examples_grid(df, g))))
    except ImportError as exc:
        raise XtlError("xtl.explore needs anywidget for plotly's FigureWidget: pip install 'xtl[notebook]'") from exc
    panels = margin_panels(df, candidates=settings.get("candidates"), average=average)
    margin_fig = go.FigureWidget(plots.margin_heatmap(panels, "Gold first-token margin gain over vanilla (nats)")) \
        if panels else None
    table = w.HTML("<i>Click a cell of a heatmap to list its items.</i>")
    pick = w.Dropdown(description="item", options=[], layout=w.Layout(width="420px"))
    button = w.Button(description="logit lens", disabled=model is None,
                      tooltip="needs the model: xtl.explore(run, model=model)" if model is None else "")
    out = w.Output()
    chosen: dict[str, int] = {}

    def on_click(trace, points, selector):  # noqa: ARG001 - plotly's callback signature
        if not points.point_inds:
            return
        src, tgt = int(points.ys[0]), int(points.xs[0])
        chosen.update(src=src, tgt=tgt)
        rows = ex.cell(src, tgt)
        table.value = _table_html(rows, src, tgt)
        pick.options = [(f"{r.status}: {r.item_key} ({r.lang})", r.item_key) for r in rows.itertuples()]

    def on_lens(_button) -> None:
        if not pick.value or not chosen:
            return
        out.clear_output()
        with out:
            panels = ex.lens(pick.value, chosen["src"], chosen["tgt"])
            for name in ("target vanilla", "transplanted"):
                panels[name].figure().show()

    for widget in (fig, margin_fig):
        for trace in widget.data if widget is not None else ():
            trace.on_click(on_click)
    button.on_click(on_lens)
    extra = [go.FigureWidget(f) for _, f in extension_figures(df, language_lens)]
    heatmaps = [fig, margin_fig] if margin_fig is not None else [fig]  # accuracy and margin gain side by side
    box = w.VBox([w.HBox(heatmaps), table, w.HBox([pick, button]), out, *extra])
    box.explorer = ex
    return box
