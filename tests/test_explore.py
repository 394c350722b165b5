"""The linked explorer: its handlers on hand-built results, the widget in a kernel-less build."""

from __future__ import annotations

import numpy as np
import pytest

from test_analysis import table
from xtl.errors import XtlError
from xtl.figures.explorer import Explorer
from xtl.tasks import Item

C = np.zeros((4, 3, 3), int)
C[0] = 1
C[1, 0, :] = 1
C[2, :, 2] = 1
VAN = [1, 0, 1, 0]
LANGS = ["de", "de", "sw", "sw"]


def _df():
    return table(C, VAN, LANGS, ["high", "high", "low", "low"]).assign(gold="A", margin=0.5)


def test_a_click_returns_exactly_that_cells_items_fixed_then_broken_then_the_rest():
    ex = Explorer(_df(), "attn", 3)
    rows = ex.cell(0, 0)
    assert rows["item_key"].tolist() == ["t/de/1", "t/sw/2", "t/de/0", "t/sw/3"]
    assert rows["status"].tolist() == ["fixed", "broken", "right", "wrong"]
    assert rows["answer"].tolist() == ["r00"] * 4 and rows["vanilla_answer"].tolist() == ["v"] * 4
    right_into_2 = ex.cell(1, 2)                       # item 2 right into target 2 from any source
    assert right_into_2["status"].tolist() == ["right", "right", "wrong", "wrong"]
    with pytest.raises(XtlError, match=r"configuration \(5, 5\) is not in these results"):
        ex.cell(5, 5)


def test_the_lens_gets_the_items_prompts_layers_and_site(monkeypatch):
    import xtl.interpret

    seen = {}
    monkeypatch.setattr(xtl.interpret, "compare", lambda model, **kw: seen.update(kw) or {"ok": True})
    items = [Item(str(k), "t", l, f"source {k}", f"target {k}", "A", "choice", {"A": "A"}) for k, l in enumerate(LANGS)]
    ex = Explorer(_df(), "mlp", 3, model=object(), items={it.key: it for it in items})
    assert ex.lens("t/sw/2", 1, 2) == {"ok": True}
    assert seen == {"source": "source 2", "target": "target 2", "src_layer": 1, "tgt_layer": 2,
                    "site": "mlp", "max_new_tokens": 8, "chat": False}
    with pytest.raises(XtlError, match="needs the model"):
        Explorer(_df(), "mlp", 3).lens("t/sw/2", 1, 2)


def test_the_widget_builds_and_its_click_fills_the_table():
    pytest.importorskip("ipywidgets")
    pytest.importorskip("anywidget")
    import xtl

    box = xtl.explore(_df(), site="attn")
    (fig,) = box.children[0].children                     # no options, no margin: the accuracy heatmap alone
    table_widget = box.children[1]
    assert len(fig.data) == 3                             # all + de + sw, as the report's heatmap
    trace = fig.data[0]

    class Points:                                         # what plotly hands a click callback
        point_inds, xs, ys = [0], [0], [0]

    trace._click_callbacks[0](trace, Points(), None)
    assert "source 0 → target 0" in table_widget.value and "1 fixed, 1 broken" in table_widget.value
    pick = box.children[2].children[0]
    assert [v for _, v in pick.options] == ["t/de/1", "t/sw/2", "t/de/0", "t/sw/3"]


def test_the_widget_shows_the_margin_gain_beside_the_accuracy_heatmap_and_both_click():
    pytest.importorskip("ipywidgets")
    pytest.importorskip("anywidget")
    import xtl

    df = _df()
    vanilla_margin = {k: 0.25 * n for n, k in enumerate(df["item_key"].unique())}
    df["gold_margin"] = [vanilla_margin[k] + (0.0 if v else s - t) for k, v, s, t in
                         zip(df["item_key"], df["is_vanilla"], df["src_layer"], df["tgt_layer"])]
    box = xtl.explore(df, site="attn")
    accuracy, margin = box.children[0].children
    np.testing.assert_allclose(np.asarray(margin.data[0].z, float), np.subtract.outer([0, 1, 2], [0, 1, 2]))
    assert [t.name for t in margin.data] == ["all", "de", "sw"]          # a panel per language, as accuracy's
    heat = margin.data[0]

    class Points:
        point_inds, xs, ys = [0], [0], [1]

    heat._click_callbacks[0](heat, Points(), None)
    assert "source 1 → target 0" in box.children[1].value


def test_explore_refuses_what_is_not_a_sweep_and_an_unknown_site():
    """Issue 30 §7: ``explore(None)`` was an AttributeError, ``site="nonsense"`` was accepted."""
    pytest.importorskip("ipywidgets")
    import xtl
    from xtl.errors import SiteError

    with pytest.raises(XtlError, match="takes an xtl.Run"):
        xtl.explore(None)
    with pytest.raises(SiteError, match="unknown site 'nonsense'"):
        xtl.explore(_df(), site="nonsense")
