"""Analyses and figures of transplant variants on hand-built tables: gain against alpha per site,
several sources against one per language group, and the report showing them when a table has them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xtl import analysis as an
from xtl.errors import XtlError
from xtl.figures.report import build_report
from xtl.figures.variants import alpha_curves, source_bars

from test_analysis import LANGS, VAN, table

GROUPS = ["high", "high", "low", "low"]
ONES, ZEROS = np.ones((4, 2, 2), int), np.zeros((4, 2, 2), int)


def _run(correct, alpha=1.0, sources="", site="attn", vanilla=True):
    df = table(correct, VAN, LANGS, GROUPS).assign(site=site, sources=sources, span=1, positions=1)
    df["alpha"] = np.where(df["is_vanilla"], 1.0, alpha)
    return df if vanilla else df[~df["is_vanilla"]]


def test_gain_against_alpha_per_site():
    # vanilla: 50% in each language; alpha 0.5 all right (+50), alpha 1 all wrong (-50)
    df = pd.concat([_run(ONES, 0.5), _run(ZEROS, 1.0, vanilla=False),
                    _run(ZEROS, 0.5, site="mlp"), _run(ONES, 1.0, site="mlp", vanilla=False)])
    ag = an.alpha_gains(df)
    assert ag.sites == ["attn", "mlp"] and ag.alphas == [0.5, 1.0]
    np.testing.assert_allclose(ag.gain, [[50, -50], [-50, 50]])
    fig = alpha_curves(ag)
    assert [list(t.y) for t in fig.data] == [[50, -50], [-50, 50]]
    with pytest.raises(XtlError, match="several transplant variants"):
        an.grid(df[df.site == "attn"])
    one = an.select_variant(df[df.site == "attn"], alpha=0.5)
    assert an.grid(one).accuracy.tolist() == [[1, 1], [1, 1]]


def test_several_sources_against_one_per_group():
    mixed = ONES.copy()
    mixed[2:] = 0  # the mix helps the high group only
    df = pd.concat([_run(mixed, sources="zh,es"), _run(ZEROS, sources="zh")])
    sg = an.source_gains(df)
    assert sg.labels == ["zh", "zh,es"] and sg.groups == ["high", "low", "all"]
    np.testing.assert_allclose(sg.gain, [[-50, -50, -50], [50, -50, 0]])
    fig = source_bars(sg)
    assert [t.name for t in fig.data] == ["zh", "zh,es"] and list(fig.data[1].y) == [50, -50, 0]


def test_the_report_shows_variant_figures_when_the_table_has_them(tmp_path):
    axis = pd.concat([_run(ONES, 0.5), _run(ZEROS, 1.0, vanilla=False)])
    page = build_report(axis, tmp_path / "a.html").read_text(encoding="utf-8")
    assert "Gain over vanilla against alpha" in page and "Several sources against one" not in page
    plain = build_report(_run(ONES), tmp_path / "p.html").read_text(encoding="utf-8")
    assert "against alpha" not in plain
    both = pd.concat([_run(ONES, sources="zh,es"), _run(ZEROS, sources="zh")])
    assert "Several sources against one" in build_report(both, tmp_path / "s.html").read_text(encoding="utf-8")
    assert an.select_variant(both)["sources"].eq("zh,es").all()  # the page's grid: the mix
