"""Analyses on hand-built results whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xtl import analysis as an
from xtl.errors import XtlError


def table(correct: np.ndarray, vanilla: list[int], langs: list[str], groups: list[str] | None = None,
          entropy: np.ndarray | None = None) -> pd.DataFrame:
    """A results table from a [item, src, tgt] 0/1 array and vanilla outcomes."""
    rows = []
    n_items, n_src, n_tgt = correct.shape
    for k in range(n_items):
        key = f"t/{langs[k]}/{k}"
        base = {"item_key": key, "lang": langs[k], "group": (groups or ["low"] * n_items)[k], "site": "attn",
                "n_layers": max(n_src, n_tgt)}
        rows.append({**base, "src_layer": -1, "tgt_layer": -1, "is_vanilla": True,
                     "correct": bool(vanilla[k]), "entropy": 0.0, "response": "v"})
        for i in range(n_src):
            for j in range(n_tgt):
                rows.append({**base, "src_layer": i, "tgt_layer": j, "is_vanilla": False,
                             "correct": bool(correct[k, i, j]), "response": f"r{i}{j}",
                             "entropy": float(entropy[k, i, j]) if entropy is not None else 1.0})
    return pd.DataFrame(rows)


# 4 items, 3 x 3 configurations.
C = np.zeros((4, 3, 3), int)
C[0] = 1                      # all-right item
C[1, 0, :] = 1                # right only from source 0
C[2, :, 2] = 1                # right only into target 2
# item 3: all wrong
VAN = [1, 0, 1, 0]
LANGS = ["de", "de", "sw", "sw"]


@pytest.fixture
def g():
    return an.grid(table(C, VAN, LANGS, ["high", "high", "low", "low"]))


def test_grid_shape_and_accuracy(g):
    assert g.correct.shape == (4, 3, 3)
    np.testing.assert_array_equal(g.correct, C)
    acc = C.mean(axis=0)
    np.testing.assert_allclose(g.accuracy, acc)
    assert g.vanilla_accuracy == 0.5


def test_win_tie_lose(g):
    # config accuracies: (0, j<2) 0.5, (0,2) 0.75, (i>0, j<2) 0.25, (i>0, 2) 0.5; vanilla 0.5
    wtl = an.win_tie_lose(g)
    assert (wtl["win"], wtl["tie"], wtl["lose"]) == (1, 4, 4)
    assert wtl["average"] == pytest.approx(100 * C.mean())


def test_gains_and_layerwise(g):
    gain = an.gain_matrix(g)
    np.testing.assert_allclose(gain, 100 * (C.mean(0) - 0.5))
    by_src, by_tgt = an.layerwise_gain(g)
    np.testing.assert_allclose(by_src, gain.mean(1))
    np.testing.assert_allclose(by_tgt, gain.mean(0))


def test_upper_bounds_equations_4_and_5(g):
    ub = an.upper_bounds(g)
    # source-wise: item0 always, item1 only i=0, item2 always (j=2), item3 never
    np.testing.assert_allclose(ub["source"], [75, 50, 50])
    # target-wise: item0 always, item1 always (i=0), item2 only j=2
    np.testing.assert_allclose(ub["target"], [50, 50, 75])
    assert ub["oracle"] == 75 and ub["vanilla"] == 50
    assert ub["source_last"] == 50 and ub["target_first"] == 50 and ub["reasons"] == {}
    assert "full N² grid" in ub["grid"]


def test_bounds_need_the_grid_they_are_defined_on(g):
    df = table(C, VAN, LANGS)
    # source layer 2 (the last) only: eq. 4 is computable, eq. 5 and the oracle are not
    last = an.upper_bounds(an.grid(df[(df.src_layer == 2) | df.is_vanilla]))
    assert last["source_last"] == 50
    assert np.isnan(last["target_first"]) and np.isnan(last["oracle"])
    assert "TargetFirst (eq. 5) needs target layer 0 with every source layer 0–2" in last["reasons"]["target_first"]
    assert an.format_bound(last["oracle"], "oracle", last).startswith("not computable on this grid: the N² oracle")
    # target layers 1-2 only: no target 0, and no source-wise bound anywhere
    part = an.upper_bounds(an.grid(df[(df.tgt_layer > 0) | df.is_vanilla]))
    assert np.isnan(part["source"]).all() and np.isnan(part["source_last"]) and np.isnan(part["target_first"])
    np.testing.assert_allclose(part["target"], [50, 75])
    assert "sources 0–2 × targets 1, 2 of 3 layers" in part["grid"]
    # one configuration missing for one item: no oracle either
    holes = an.upper_bounds(an.grid(df.drop(df[(df.item_key == "t/de/0") & (df.src_layer == 1) & (df.tgt_layer == 1)].index)))
    assert np.isnan(holes["oracle"]) and np.isnan(holes["source"][1]) and holes["source"][0] == 75
    # depth unknown: nothing is computable
    unknown = an.upper_bounds(an.grid(df.drop(columns="n_layers")))
    assert np.isnan(unknown["oracle"]) and "depth is not known" in unknown["reasons"]["oracle"]
    assert an.headline(an.grid(df[(df.src_layer == 2) | df.is_vanilla]), "attn")["bound_reasons"].keys() == {"target_first", "oracle"}


def test_a_bound_that_cannot_be_computed_says_why_where_it_is_shown(g):
    """Issue 38 §4: the README's ``print(upper_bounds(...).oracle)`` printed a bare ``nan``."""
    import json
    import pickle

    df = table(C, VAN, LANGS)
    last = an.upper_bounds(an.grid(df[(df.src_layer == 2) | df.is_vanilla]))
    oracle = last.oracle
    assert isinstance(oracle, float) and np.isnan(oracle) and np.isnan(oracle + 1)
    assert str(oracle) == repr(oracle) == f"nan (not computable on this grid: {last.reasons['oracle']})"
    assert "the N² oracle needs the full 3 × 3 grid" in f"{oracle}" and f"{oracle:.1f}" == "nan"
    assert np.isnan(pickle.loads(pickle.dumps(oracle))) and json.dumps(oracle) == "NaN"
    text = str(last)
    assert "SourceLast (eq. 4)  : 50.0%" in text
    assert "TargetFirst (eq. 5) : not computable on this grid: TargetFirst (eq. 5) needs target layer 0" in text
    assert "N² oracle" in text and "nan" not in text
    full = an.upper_bounds(g)
    assert type(full.oracle) is float and "not computable" not in str(full)


def test_the_cross_sweep_gives_both_end_point_bounds():
    """The 2N − 1 configurations of a cross sweep (last source × every target, every source ×
    target 0) give the same SourceLast and TargetFirst as the full grid; the oracle needs more."""
    rng = np.random.default_rng(0)
    c = rng.integers(0, 2, size=(6, 4, 4))
    df = table(c, [0, 1, 0, 1, 0, 0], ["de", "de", "sw", "sw", "ur", "ur"])
    full = an.upper_bounds(an.grid(df))
    cross = df[df.is_vanilla | (df.src_layer == 3) | (df.tgt_layer == 0)]
    assert len(cross) == 6 * (2 * 4 - 1 + 1)
    ub = an.upper_bounds(an.grid(cross))
    assert ub["source_last"] == full["source_last"] and ub["target_first"] == full["target_first"]
    assert set(ub["reasons"]) == {"oracle"} and np.isnan(ub["oracle"])
    assert "7 of these 16 configurations run for every item" in ub["reasons"]["oracle"]
    assert np.isnan(ub["source"][:3]).all() and np.isnan(ub["target"][1:]).all()
    b = an.bound_by_group(an.grid(cross)).set_index("group")
    assert b.loc["all", "SourceLast"] == full["source_last"]


def test_group_averages_are_means_over_languages():
    # 3 'de' items (vanilla 1, 1, 1) and 1 'sw' item (vanilla 0), both high
    c = np.zeros((4, 1, 1), int)
    c[3] = 1
    df = table(c, [1, 1, 1, 0], ["de", "de", "de", "sw"], ["high"] * 4)
    t = an.accuracy_table(df, ("group",)).set_index("group")
    assert t.loc["high", "vanilla"] == 50 and t.loc["high", "transplanted"] == 50   # (100 + 0) / 2
    assert t.loc["high", "langs"] == 2 and t.loc["high", "n"] == 4
    pooled = an.accuracy_table(df, ("group",), average="pooled").set_index("group")
    assert pooled.loc["high", "vanilla"] == 75 and pooled.loc["high", "transplanted"] == 25
    g = an.grid(df)
    assert g.vanilla_accuracy == 0.5 and an.grid(df, average="pooled").vanilla_accuracy == 0.75
    b = an.bound_by_group(g).set_index("group")
    assert b.loc["high", "vanilla"] == 50 and b.loc["high", "oracle"] == 50
    assert an.bound_by_group(an.grid(df, average="pooled")).set_index("group").loc["high", "oracle"] == 25
    wtl = an.win_tie_lose(g)
    assert (wtl["win"], wtl["tie"], wtl["lose"]) == (0, 1, 0)          # 50 vs 50
    assert an.win_tie_lose(an.grid(df, average="pooled"))["lose"] == 1  # 25 vs 75
    with pytest.raises(XtlError, match="average must be"):
        an.grid(df, average="items")


def test_bounds_by_group_table4(g):
    t = an.bound_by_group(g).set_index("group")
    assert t.loc["high", "SourceLast"] == 50 and t.loc["high", "TargetFirst"] == 100
    assert t.loc["low", "SourceLast"] == 50 and t.loc["low", "TargetFirst"] == 0
    assert t.loc["all", "vanilla"] == 50 and t.loc["all", "n"] == 4


def test_single_language_and_degenerate_grids():
    ones = an.grid(table(np.ones((2, 2, 2), int), [1, 1], ["en", "en"]))
    assert an.win_tie_lose(ones)["tie"] == 4 and an.upper_bounds(ones)["oracle"] == 100
    zeros = an.grid(table(np.zeros((2, 2, 2), int), [0, 0], ["en", "en"]))
    assert an.win_tie_lose(zeros)["tie"] == 4 and an.upper_bounds(zeros)["oracle"] == 0
    assert list(ones.by_lang()) == ["en"]


def test_accuracy_table(g):
    df = table(C, VAN, LANGS)
    t = an.accuracy_table(df).set_index("lang")
    assert t.loc["de", "vanilla"] == 50 and t.loc["de", "transplanted"] == pytest.approx(100 * C[:2].mean())
    assert t.loc["all", "n"] == 4


def test_coarse_entropy_and_held_out():
    assert an.coarse_config("attn", 32) == (31, 0) and an.coarse_config("mlp", 32) == (0, 0)
    with pytest.raises(XtlError):
        an.coarse_config("block", 32)
    ent = np.ones((4, 3, 3))
    ent[:, 0, 0] = [0.1, 2.0, 0.1, 2.0]     # items 0, 2 pick source 0; items 1, 3 pick source 2
    df = table(C, VAN, LANGS, entropy=ent)
    sel = an.entropy_select(df, 3).set_index("item_key")
    assert sel["src_layer"].tolist() == [0, 2, 0, 2]
    assert sel["correct"].tolist() == [C[0, 0, 0], C[1, 2, 0], C[2, 0, 0], C[3, 2, 0]]
    pilot, unseen = an.grid(df), an.grid(table(1 - C, [0, 0, 0, 0], LANGS))
    ho = an.held_out(pilot, unseen)
    assert (ho["src_layer"], ho["tgt_layer"]) == (0, 2)        # best on the pilot set
    assert ho["unseen_accuracy"] == pytest.approx(100 * (1 - C[:, 0, 2]).mean())


def test_mcnemar_and_corrections():
    a = np.array([1, 1, 1, 1, 1, 0, 0], bool)
    b = np.array([0, 0, 0, 0, 0, 0, 0], bool)
    assert an.mcnemar(a, b) == pytest.approx(2 / 32)          # 5 discordant, all one way
    assert an.mcnemar(a, a) == 1.0
    p = np.array([0.01, 0.04, 0.03, 0.5])
    np.testing.assert_allclose(an.adjust_pvalues(p, "fdr_bh"), [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    np.testing.assert_allclose(an.adjust_pvalues(p, "holm"), [0.04, 0.09, 0.09, 0.5])


def test_bootstrap_ci():
    mean, lo, hi = an.bootstrap_ci(np.ones(10))
    assert mean == lo == hi == 100
    mean, lo, hi = an.bootstrap_ci(np.array([1, 0] * 50))
    assert lo < mean == 50 < hi
    gain, glo, ghi = an.bootstrap_ci(np.ones(20), np.zeros(20))
    assert gain == glo == ghi == 100


def test_mixed_sites_rejected():
    df = table(C, VAN, LANGS)
    df.loc[df.index[:3], "site"] = "mlp"
    with pytest.raises(XtlError, match="mixes sites"):
        an.grid(df)
    with pytest.raises(XtlError, match="evaluate"):
        an.grid(df.drop(columns="correct"))
