"""One self-contained HTML page of a sweep: headline numbers, tables and interactive figures.

The page is assembled here: analyses from :mod:`xtl.analysis`, figures drawn from their results
by :mod:`xtl.figures.plots`, and the page written to the path the caller gives.
"""

from __future__ import annotations

import datetime as _dt
import html
import os
from pathlib import Path

import numpy as np
import pandas as pd

from xtl import analysis as an
from xtl.evaluation.groups import describe_grouping
from xtl.analysis.margins import margin_panels
from xtl.analysis.views import examples_grid, gain_panels, layer_gains
from xtl.figures import plots
from xtl.figures.extensions import extension_figures

__all__ = ["build_report", "examples_grid"]

GAIN_TITLE = "Gain over vanilla, source × target"
MARGIN_TITLE = "Gold-margin gain over vanilla, source × target"


def _with_row_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """A paper-table block with its row labels as a first, unheaded column."""
    return frame if isinstance(frame.index, pd.RangeIndex) else frame.rename_axis("").reset_index()


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda x: f"{x:.1f}", border=0, classes="tbl",
                      na_rep="–")


def build_report(df: pd.DataFrame, out: str | os.PathLike, title: str = "xtl sweep report",
                 average: str = "language", settings: dict | None = None, light: bool = False,
                 language_lens=None) -> Path:
    """Write the report of an evaluated results table (one site) to ``out``; returns the path.

    ``average``: group means over languages (the paper's) or ``"pooled"`` over items;
    ``settings``: the store's manifest, used for the paper tables' labels; ``light``: load
    plotly.js from a ``plotly.min.js`` written once beside the page instead of embedding it
    (4.8 MB less per page); ``language_lens``: a :class:`xtl.LanguageLens` drawn on the page. A
    screened sweep (``screen=K``) also shows the screen's estimate beside the exact grid.
    """
    from xtl.analysis.tables import paper_table
    from xtl.evaluation.evaluated import Run

    variant_figs = _variant_figures(df, average)
    if an.has_variants(df):  # the page's grid is one variant's: alpha 1 where swept (the paper's)
        df = an.select_variant(df)
    g = an.grid(df, average=average)
    site = str(df["site"].iloc[0]) if "site" in df.columns else ""
    n_layers = g.n_layers or max(g.src_layers + g.tgt_layers) + 1
    head = an.headline(g, site, n_layers)
    by_lang = an.accuracy_table(df, by=("lang",), average=average)
    by_group = an.accuracy_table(df, by=("group",), average=average) if "group" in df.columns else None
    bounds = an.bound_by_group(g)
    ub = an.upper_bounds(g)
    rules = str(df["rules"].iloc[0]) if "rules" in df.columns and len(df) else "authors"
    wtl = an.win_tie_lose(g)
    _, q = an.mcnemar_grid(g)
    significant = int(np.nansum(q < 0.05))
    best_i, best_j = head.best_config
    best_col = g.correct[:, g.src_layers.index(best_i), g.tgt_layers.index(best_j)]
    van_ci = an.bootstrap_ci(g.vanilla)
    gain_ci = an.bootstrap_ci(best_col, g.vanilla)

    def plural(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    rows = [*([("computed with", Run(df, settings).computed_with)] if settings else []),
            ("items × languages", f"{plural(head.items, 'item')}, {plural(head.languages, 'language')}"),
            ("site", site), ("configurations", f"{wtl.n_configs}"),
            ("mode", "logits: each answer is the highest-scoring candidate; language consistency and "
                     "perplexity need text (–)" if "mode" in df.columns and (df["mode"] == "logits").any()
             else "generate"),
            ("vanilla accuracy", f"{van_ci[0]:.1f}% (95% CI {van_ci[1]:.1f}–{van_ci[2]:.1f})"),
            ("average over configurations", f"{head.average:.1f}%"),
            ("win / tie / lose", f"{head.win} / {head.tie} / {head.lose}"),
            ("best configuration (in-sample)", f"source {best_i} → target {best_j}: {head.best:.1f}% "
             f"(gain {gain_ci[0]:+.1f}, 95% CI {gain_ci[1]:+.1f} to {gain_ci[2]:+.1f})"
             if head.best > head.vanilla + 1e-9 else
             f"none beats vanilla: the best configurations only tie it ({head.best:.1f}%, e.g. source {best_i} "
             f"→ target {best_j})" if head.best > head.vanilla - 1e-9 else
             f"none reaches vanilla: the best, source {best_i} → target {best_j}, scores {head.best:.1f}%"),
            ("cells significant vs vanilla", f"{significant} (McNemar, Benjamini–Hochberg q < 0.05)"),
            ("swept grid", g.describe()),
            ("scoring rules / group averages", f"{rules} / " + ("mean over languages (the paper's)"
                                                               if average == "language" else "pooled over items")),
            ("resource groups", describe_grouping(str(df["groups"].iloc[0])).removeprefix("Groups: ")
             if "groups" in df.columns and len(df) else "lang2tax"),
            ("language ID", str(df["lid_model"].iloc[0]) if "lid_model" in df.columns and len(df) else "–"),
            ("SourceLast (eq. 4)", an.format_bound(head.source_last, "source_last", ub)),
            ("TargetFirst (eq. 5)", an.format_bound(head.target_first, "target_first", ub)),
            ("N² oracle", an.format_bound(head.oracle, "oracle", ub))]
    if head.coarse is not None:
        c = head.coarse_config
        rows.append(("coarse strategy (Table 2)", f"source {c[0]} → target {c[1]}: {head.coarse:.1f}%"))
    if "entropy" in df.columns and {0, n_layers - 1} <= set(g.src_layers) and 0 in g.tgt_layers:
        sel = an.entropy_select(df, n_layers)  # averaged like every group figure (``average``)
        ent = an.accuracy_table(pd.concat([df[df["is_vanilla"]], sel]), ("group",), average=average)
        rows.append(("entropy-based selection (§F)", f"{float(ent.iloc[-1]['transplanted']):.1f}%"))
    headline = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)

    figs = [(GAIN_TITLE, plots.gain_heatmap(gain_panels(g, examples_grid(df, g)))),
            *_margin_figure(df, average, head, settings),
            *([("Upper bounds over layers", plots.upper_bound_curves(ub))]
              if np.isfinite(ub.source).any() or np.isfinite(ub.target).any() else []),
            ("Win / tie / lose", plots.wtl_bars({site or "site": wtl}))]
    figs += variant_figs
    if len(set(g.langs)) > 1:
        figs += [("Mean gain by source layer", plots.lang_layer_heatmap(layer_gains(g, "source"))),
                 ("Mean gain by target layer", plots.lang_layer_heatmap(layer_gains(g, "target")))]
    figs += extension_figures(df, language_lens)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if light:
        _write_plotly_js(out.parent / "plotly.min.js")
    parts = ['<script src="plotly.min.js"></script>'] if light else []
    clickable = [f"fig{k}" for k, (name, _) in enumerate(figs) if name in (GAIN_TITLE, MARGIN_TITLE)]
    for k, (name, fig) in enumerate(figs):
        div = fig.to_html(full_html=False, include_plotlyjs=(k == 0 and not light), div_id=f"fig{k}")
        parts.append(f"<h2>{html.escape(name)}</h2>\n{div}")
        if f"fig{k}" == clickable[-1]:  # the items' table below the heatmaps that fill it
            parts.append(_explorer_html(df, clickable))
    if not any(name == "Upper bounds over layers" for name, _ in figs):
        why = "; ".join(dict.fromkeys(ub.reasons.values())) or "no layer has every target or source swept"
        parts.append("<h2>Upper bounds over layers</h2><p class=note>Not drawn: no source layer was swept "
                     f"with every target, nor any target with every source ({html.escape(why)}).</p>")

    tables = [("Accuracy by language", by_lang)]
    if by_group is not None:
        tables.append(("Accuracy by resource group", by_group))
    tables.append((f"Upper bounds by resource group ({g.describe()})", bounds))
    table_html = "".join(f"<h2>{html.escape(n)}</h2>{_table(t)}" for n, t in tables)
    ppl = [c for c in by_lang.columns if c.startswith("ppl_")]
    if ppl and by_lang[ppl].isna().all().all():
        table_html += ("<p class=note>Perplexity columns show – because no model was given to score "
                       "them: run <code>xtl report STORE --model M</code> (or "
                       "<code>xtl.evaluate(..., model=model)</code>).</p>")
    run = Run(df, {"site": site, "n_layers": n_layers, **(settings or {})})
    for number in (1, 2, 3, 4):
        pt = paper_table(number, [run], average=average, rules=rules)
        table_html += f"<h2>Table {number}: {html.escape(pt.title)}</h2>"
        table_html += "".join(f"<h3>{html.escape(c)}</h3>{_table(_with_row_labels(f))}"
                              for c, f in pt.blocks)
        table_html += "".join(f"<p class=note>{html.escape(n)}</p>" for n in pt.notes)
    table_html += _selection_html(df, n_layers, site)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ padding: 3px 10px; text-align: left; border-bottom: 1px solid #ddd; }}
.tbl td, .tbl th {{ text-align: right; }}
.tbl td:first-child, .tbl th:first-child {{ text-align: left; }}
.note {{ color: #555; font-size: 0.9em; }}
tr.fixed td {{ background: #e5f5e0; }} tr.broken td {{ background: #fee0d2; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Generated by xtl on {_dt.date.today().isoformat()}. Accuracies in percent; gains in points.
Transplanted accuracy is the mean over all swept configurations.</p>
<table>{headline}</table>
{table_html}
{''.join(parts)}
</body></html>
"""
    out.write_text(page, encoding="utf-8")
    return out


#: Items listed per cell in the page (fixed and broken first); the counts cover every item.
PER_CELL = 20

_EXPLORER_JS = """
(function () {
  var data = JSON.parse(document.getElementById('xtl-cells').textContent), S = data.strings;
  var box = document.getElementById('xtl-cell');
  function esc(t) { var d = document.createElement('div'); d.textContent = t; return d.innerHTML; }
  function show(src, tgt) {
    var c = data.cells[src + ',' + tgt];
    if (!c) { box.innerHTML = '<p class=note>No items for source ' + esc(String(src)) + ' → target ' +
              esc(String(tgt)) + '.</p>'; return; }
    var h = '<h3 id="xtl-cell-title">source ' + src + ' → target ' + tgt + ': ' + c.n + ' items — ' +
            c.fixed + ' fixed, ' + c.broken + ' broken, ' + c.right + ' right, ' + c.wrong + ' wrong</h3>' +
            '<table class="tbl" id="xtl-cell-table"><tr><th>item</th><th>lang</th><th>gold</th>' +
            '<th>vanilla answer</th><th>transplanted answer</th><th>status</th></tr>';
    c.rows.forEach(function (r) {
      h += '<tr class="' + data.status[r[5]] + '"><td>' + esc(S[r[0]]) + '</td><td>' + esc(S[r[1]]) +
           '</td><td>' + esc(S[r[2]]) + '</td><td>' + esc(S[r[3]]) + '</td><td>' + esc(S[r[4]]) +
           '</td><td>' + data.status[r[5]] + '</td></tr>';
    });
    h += '</table>';
    if (c.n > c.rows.length) h += '<p class=note>The first ' + c.rows.length + ' of ' + c.n +
        ' items (fixed and broken first); xtl.explore(run) in Jupyter lists them all.</p>';
    box.innerHTML = h;
  }
  window.xtlShowCell = show;
  function attach(id) {
    var gd = document.getElementById(id);
    if (gd && gd.on) { gd.on('plotly_click', function (ev) { var p = ev.points[0]; show(p.y, p.x); }); }
    else { setTimeout(function () { attach(id); }, 100); }
  }
  '%(divs)s'.split(',').forEach(attach);
})();
"""


def _margin_figure(df: pd.DataFrame, average: str, head, settings: dict | None) -> list:
    """The gold margin's gain over vanilla per (source, target), beside the accuracy heatmap: it
    moves where accuracy does not (a transplant that shifts the model toward the gold option
    without flipping the answer); none for tasks without options (QA)."""
    panels = margin_panels(df, candidates=(settings or {}).get("candidates"), average=average,
                           mark=head.best_config if head.best > head.vanilla else None, mark_label="best accuracy")
    if not panels:
        return []
    return [(MARGIN_TITLE, plots.margin_heatmap(panels, "Gold first-token margin gain over vanilla (nats)"))]


def _variant_figures(df: pd.DataFrame, average: str) -> list:
    """Gain against alpha per site (a table with an alpha axis) and several sources against one
    per language group (a table with several ``sources``), when the table has them."""
    from xtl.analysis.variants import alpha_gains, source_gains
    from xtl.figures.variants import alpha_curves, source_bars
    from xtl.schema import with_defaults

    df = with_defaults(df)
    rest = df[~df["is_vanilla"]]
    figs = []
    if rest["alpha"].nunique() > 1:
        figs.append(("Gain over vanilla against alpha", alpha_curves(alpha_gains(df, average))))
    if rest["sources"].nunique() > 1 and "group" in df.columns:
        alpha = 1.0 if (rest["alpha"] == 1.0).any() else float(rest["alpha"].max())
        figs.append(("Several sources against one", source_bars(source_gains(
            df[df["is_vanilla"] | (df["alpha"] == alpha)], average))))
    return figs


def _explorer_html(df: pd.DataFrame, divs: list[str]) -> str:
    """The heatmaps' click-through without a server (the figures with ids ``divs``): each cell's
    items embedded (at most :data:`PER_CELL` per cell, answers cut to 80 characters), shown in a
    table on click."""
    from xtl.analysis.cells import cell_index_json

    return ("<p class=note>Click a cell of the heatmap to list that configuration's items below: gold, vanilla "
            "and transplanted answers, fixed and broken first. The logit lens of an item needs the model: "
            "<code>xtl.explore(run, model=model)</code> in Jupyter.</p>"
            f'<script type="application/json" id="xtl-cells">{cell_index_json(df, PER_CELL)}</script>'
            '<div id="xtl-cell"><p class=note>No cell chosen yet.</p></div>'
            f"<script>{_EXPLORER_JS % {'divs': ','.join(divs)}}</script>")


def _selection_html(df: pd.DataFrame, n_layers: int, site: str) -> str:
    """Instance-aware selection strategies of :mod:`xtl.strategies`, cross-validated on this store:
    those whose candidate configurations the store swept (a full or cross grid has them all)."""
    from xtl.errors import XtlError
    from xtl.strategies import DEFAULT_STRATEGIES, make_strategy, select
    from xtl.strategies.base import unavailable

    have = set(zip(df["src_layer"].astype(int), df["tgt_layer"].astype(int)))
    names, cannot = [], []
    for name in DEFAULT_STRATEGIES:
        strat = make_strategy(name)
        why = unavailable(strat)
        if why:
            cannot.append(f"Not run: {why}.")
        elif all((c.src, c.tgt) in have for c in strat.candidates(n_layers, site)):
            names.append(name)
    items = df["item_key"].nunique()
    head = "<h2>Instance-aware layer selection (cross-validated)</h2>"
    missing = "".join(f"<p class=note>{html.escape(n)}</p>" for n in cannot)
    if not names or items < 4:
        return head + ("<p class=note>Not computed: the store needs at least 4 items and the configurations of a "
                       "strategy (sweep with <code>--grid cross</code>); see <code>xtl select</code>.</p>") + missing
    try:
        sel = select(df, names, cv=min(5, items), n_layers=n_layers, site=site)
    except XtlError as exc:
        return head + f"<p class=note>Not computed: {html.escape(str(exc))}</p>" + missing
    notes = "".join(f"<p class=note>{html.escape(n)}</p>" for n in [sel.protocol, *sel.notes]) + missing
    table = sel.table.reset_index()
    for col in [c for c in table.columns if c.startswith("McNemar")]:
        table[col] = [("–" if v != v else f"{v:.3f}") for v in table[col]]
    return head + _table(table) + notes


def _write_plotly_js(path: Path) -> None:
    """plotly.js from the installed plotly package, written once (kept if already there)."""
    if path.exists():
        return
    from plotly.offline import get_plotlyjs

    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(get_plotlyjs(), encoding="utf-8")
    tmp.replace(path)
