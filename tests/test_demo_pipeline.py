"""End to end on the embedded demo model and the real PilotSets (skips without either)."""

from __future__ import annotations

import numpy as np
import pytest

import xtl
from xtl import analysis as an
from xtl.figures.report import build_report

pytestmark = pytest.mark.demo


def test_vanilla_evaluation_of_each_pilotset(demo_model, shared_data):
    items = []
    for task, langs in (("xnli", ["en", "sw"]), ("xquad", ["en", "de"]), ("globalopinionqa", ["de", "ur"])):
        items += xtl.load_task(task, langs=langs, limit=1, data_root=shared_data)
    df = xtl.sweep(demo_model, items, src_layers=[], tgt_layers=[], max_new_tokens=12, progress=False)
    ev = xtl.evaluate(df, items, model=demo_model)
    assert len(ev) == len(items) == 6 and ev["is_vanilla"].all()
    assert ev["correct"].dtype == bool and ev["ppl"].gt(1).all() and np.isfinite(ev["ppl"]).all()
    table = an.accuracy_table(ev, ("dataset", "lang"))
    assert table["vanilla"].between(0, 100).all()
    # Reproducible: a second run gives the same responses and the same scores.
    again = xtl.evaluate(xtl.sweep(demo_model, items[:3], src_layers=[], tgt_layers=[], max_new_tokens=12,
                                   progress=False), items[:3])
    assert again["response"].tolist() == ev["response"].tolist()[:3]
    assert again["correct"].tolist() == ev["correct"].tolist()[:3]


def test_small_sweep_analyses_and_report(demo_model, shared_data, tmp_path):
    items = xtl.load_task("xnli", langs=["en", "sw"], limit=2, data_root=shared_data)
    n = demo_model.cfg.n_layers
    layers = [0, n // 2, n - 1]
    df = xtl.sweep(demo_model, items, site="attn", src_layers=layers, tgt_layers=layers, max_new_tokens=8,
                   store=tmp_path / "store", progress=False)
    ev = xtl.evaluate(df, items)
    g = xtl.grid(ev)
    assert g.correct.shape == (4, 3, 3) and not np.isnan(g.correct).any()
    head = an.headline(g, "attn", n)
    # a 3 x 3 grid of an 18-layer model allows none of the bounds: NaN with the reason
    assert np.isnan(head["oracle"]) and np.isnan(head["source_last"]) and np.isnan(head["target_first"])
    assert set(head["bound_reasons"]) == {"oracle", "source_last", "target_first"}
    assert head["grid"] == f"sources 0, {n // 2}, {n - 1} × targets 0, {n // 2}, {n - 1} of {n} layers"
    page = build_report(ev, tmp_path / "report.html").read_text(encoding="utf-8")
    # the bound curves would be empty on this grid: left out, with the reason (issue 20, point 7)
    assert page.count("Plotly.newPlot") == 4 and "Not drawn: no source layer was swept" in page
    assert "not computable on this grid: the N² oracle needs the full" in page
