"""Instance-aware selection strategies on hand-built results whose choices are known by hand,
and the cross-validation protocol that must never let a strategy see a test item's answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xtl.errors import XtlError
from xtl.schema import VANILLA, Config
from xtl.strategies import Agreement, BestOnTrain, Confidence, Fixed, candidate_features, folds, select

N = 3


def results(correct, entropy, vanilla, langs, groups=None, answers=None):
    """Evaluated rows of a full N × N grid: response "(A)" when right, else "(B)" (or
    ``answers[k, i, j]``), so agreement and features see plausible gold-free answers."""
    rows = []
    for k in range(len(langs)):
        base = {"item_key": f"t/{langs[k]}/{k}", "lang": langs[k], "group": (groups or ["low"] * len(langs))[k],
                "site": "attn", "n_layers": N, "n_tokens": 3, "loglik": -1.0}
        rows.append({**base, "src_layer": -1, "tgt_layer": -1, "is_vanilla": True, "correct": bool(vanilla[k]),
                     "response": "(A)" if vanilla[k] else "(B)", "entropy": 1.0, "margin": 0.5})
        for i in range(N):
            for j in range(N):
                ans = answers[k][i][j] if answers is not None else ("(A)" if correct[k, i, j] else "(B)")
                rows.append({**base, "src_layer": i, "tgt_layer": j, "is_vanilla": False,
                             "correct": bool(correct[k, i, j]), "response": ans, "entropy": float(entropy[k, i, j]),
                             "margin": 1.0 - float(entropy[k, i, j])})
    return pd.DataFrame(rows)


def _rows(df):
    return candidate_features(df, N).drop(columns="correct")


def test_confidence_picks_the_lowest_entropy_of_its_candidates_with_ties_to_the_lower_layer():
    c, e = np.zeros((3, N, N), int), np.ones((3, N, N))
    e[0, 0, 0], e[0, 2, 0] = 0.2, 0.9      # item 0: (0, 0)
    e[1, 0, 0], e[1, 2, 0] = 0.9, 0.2      # item 1: (2, 0)
    e[2, 0, 0] = e[2, 2, 0] = 0.5          # item 2: a tie -> the lower source layer
    e[:, 1, 1] = 0.0                       # never a candidate of the paper's strategy
    df = results(c, e, [0, 0, 0], ["de", "de", "sw"])
    got = Confidence().choose(_rows(df), N, "attn")
    assert got == {"t/de/0": Config(0, 0), "t/de/1": Config(2, 0), "t/sw/2": Config(0, 0)}
    full = Confidence(kind="full").choose(_rows(df), N, "attn")
    assert set(full.values()) == {Config(1, 1)}
    margin = Confidence(kind="paper", score="margin").choose(_rows(df), N, "attn")
    assert margin == got                    # margin = 1 - entropy here


def test_agreement_keeps_vanilla_when_it_gives_the_majority_answer():
    c, e = np.zeros((2, N, N), int), np.ones((2, N, N))
    answers = [[["(A)"] * N for _ in range(N)], [["(C)"] * N for _ in range(N)]]
    answers[1][2][0] = "(A)"                # item 1: one candidate agrees with vanilla's (A), most say (C)
    e[1, 1, 0] = 0.1                        # the most confident (C) among the cross candidates
    df = results(c, e, [1, 1], ["de", "de"], answers=answers)
    got = Agreement().choose(_rows(df), N, "attn")
    assert got == {"t/de/0": VANILLA, "t/de/1": Config(1, 0)}


def test_best_on_train_and_fixed():
    c = np.zeros((4, N, N), int)
    c[:, 1, 0] = [1, 1, 1, 0]               # (1, 0) is right on 3 of 4 training items
    c[:, 2, 1] = [1, 1, 0, 0]
    df = candidate_features(results(c, np.ones((4, N, N)), [0] * 4, ["de", "de", "sw", "sw"]), N)
    s = BestOnTrain()
    s.fit(df, N, "attn")
    assert s.chosen == Config(1, 0)
    assert Fixed().choose(df, N, "attn")["t/de/0"] == Config(2, 0)      # attn: (last, first)
    assert Fixed().choose(df, N, "mlp")["t/de/0"] == Config(0, 0)       # mlp: (first, first)


def test_learned_falls_back_to_vanilla_and_is_deterministic_for_a_seed():
    pytest.importorskip("sklearn")
    from xtl.strategies import Learned

    rng = np.random.default_rng(0)
    k = 40
    c = np.zeros((k, N, N), int)            # every transplant wrong, vanilla right: keep vanilla
    df = results(c, rng.random((k, N, N)), [1] * k, ["de"] * 20 + ["sw"] * 20)
    sel = select(df, [Learned(iterations=20)], cv=4)
    assert (sel.choices["src_layer"] == -1).all() and sel.table.loc["learned", "Avg."] == 100
    c2 = rng.integers(0, 2, size=(k, N, N))
    df2 = results(c2, rng.random((k, N, N)), rng.integers(0, 2, size=k), ["de"] * 20 + ["sw"] * 20)
    a, b = (select(df2, [Learned(seed=3, iterations=20)], cv=4, seed=1),
            select(df2, [Learned(seed=3, iterations=20)], cv=4, seed=1))
    pd.testing.assert_frame_equal(a.choices, b.choices)
    assert set(a.importances["feature"]) >= {"f_entropy", "f_agree", "f_changes"}


def test_no_strategy_reads_a_test_items_gold():
    """Flip the answers of one fold's items: the choices for those items must not change (a
    strategy that looked at them would follow the flip)."""
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(1)
    k = 30
    c = rng.integers(0, 2, size=(k, N, N))
    df = results(c, rng.random((k, N, N)), rng.integers(0, 2, size=k), ["de"] * 15 + ["sw"] * 15)
    from xtl.strategies import Learned

    names = ["coarse", "entropy", "best-on-train", "agreement", "entropy-cross",
             Learned(iterations=20), Learned(name="learned (logistic)", model="logistic")]
    before = select(df, names, cv=3, seed=2)
    fold0 = set(before.choices[before.choices["fold"] == 0]["item_key"])
    flipped = df.copy()
    flipped.loc[flipped["item_key"].isin(fold0), "correct"] = ~flipped.loc[flipped["item_key"].isin(fold0), "correct"]
    after = select(flipped, names, cv=3, seed=2)
    cols = ["strategy", "item_key", "src_layer", "tgt_layer"]
    pick = lambda s: s.choices[s.choices["item_key"].isin(fold0)][cols].sort_values(cols).reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(pick(before), pick(after))


def test_folds_never_share_an_item_and_the_table_is_right_by_hand():
    langs = ["de"] * 4 + ["sw"] * 2
    items = pd.DataFrame({"item_key": [f"t/{l}/{k}" for k, l in enumerate(langs)], "lang": langs})
    f = folds(items, cv=3, seed=0)
    assert sorted(f) == sorted(items["item_key"]) and set(f.values()) == {0, 1, 2}
    assert folds(items, by_language=True) == {k: (0 if "/de/" in k else 1) for k in items["item_key"]}
    with pytest.raises(XtlError, match=r"cannot make 9 folds; lower cv \(--cv\)"):  # the caller's terms first
        folds(items, cv=9)
    c, e = np.zeros((6, N, N), int), np.ones((6, N, N))
    c[:, 0, 0] = [1, 1, 0, 0, 1, 0]
    e[:, 0, 0] = 0.1                        # entropy-based always picks (0, 0)
    df = results(c, e, [0, 0, 0, 0, 0, 1], langs, ["high"] * 4 + ["low"] * 2)
    sel = select(df, ["entropy", "coarse"], cv=3)
    assert sel.choices.groupby("strategy")["item_key"].apply(lambda s: s.is_unique).all()
    t = sel.table
    assert t.loc["Vanilla", "High"] == 0 and t.loc["Vanilla", "Low"] == 50 and t.loc["Vanilla", "Avg."] == 25
    assert t.loc["entropy-based", "High"] == 50 and t.loc["entropy-based", "Low"] == 50
    assert t.loc["entropy-based", "configs/item"] == 2 and t.loc["coarse", "configs/item"] == 1
    # the oracle (any configuration right; vanilla is not one): de items 0, 1; sw item 4 -> 50 / 50
    assert t.loc["N² oracle", "High"] == 50 and t.loc["N² oracle", "Low"] == 50
    gap = (t.loc["entropy-based", "Avg."] - 25) / (t.loc["N² oracle", "Avg."] - 25) * 100
    assert t.loc["entropy-based", "gap closed to oracle (%)"] == pytest.approx(gap)
    assert 0 <= t.loc["coarse", "McNemar p vs entropy-based"] <= 1
    chosen = sel.chosen_layers("entropy-based")
    assert chosen["items"].sum() == 6 and set(zip(chosen["src_layer"], chosen["tgt_layer"])) == {(0, 0)}
    from xtl.figures.plots import chosen_layers

    fig = chosen_layers(chosen, N)
    assert [d.name for d in fig.data] == ["all (vanilla 0)", "high (vanilla 0)", "low (vanilla 0)",
                                          "de (vanilla 0)", "sw (vanilla 0)"]
    assert fig.data[0].z[0][0] == 6 and fig.data[4].z[0][0] == 2
    # issue 30 §7: the dropdown sits above the plot at the right, the title at the left
    menu = fig.layout.updatemenus[0]
    assert (menu.xanchor, menu.yanchor) == ("right", "bottom") and menu.y >= 1
    assert fig.layout.title.x == 0 and fig.layout.title.xanchor == "left"
    with pytest.raises(XtlError, match="unknown strategy 'entropi'.*Did you mean 'entropy'"):
        select(df, ["entropi"])


def test_a_strategy_needing_configurations_the_store_lacks_says_so():
    c, e = np.zeros((4, N, N), int), np.ones((4, N, N))
    df = results(c, e, [0] * 4, ["de"] * 4)
    partial = df[df["is_vanilla"] | (df["src_layer"] == 1)]
    with pytest.raises(XtlError, match="strategy 'entropy-based' needs configurations the results lack.*--grid cross"):
        select(partial, ["entropy"], cv=2)


def test_best_on_train_costs_one_configuration_at_test_time():
    rng = np.random.default_rng(4)
    c = rng.integers(0, 2, size=(8, N, N))
    df = results(c, rng.random((8, N, N)), [0] * 8, ["de"] * 4 + ["sw"] * 4)
    t = select(df, ["best-on-train", "agreement"], cv=2).table
    assert t.loc["best-on-train", "configs/item"] == 1 and t.loc["agreement", "configs/item"] == 2 * N - 1
    assert t.loc["TargetFirst", "configs/item"] == N and t.loc["N² oracle", "configs/item"] == N * N


def test_a_strategy_object_can_be_selected_twice_with_the_same_result():
    """Fitting happens on a copy: best-on-train's candidates stay its whole set after a select."""
    rng = np.random.default_rng(5)
    c = rng.integers(0, 2, size=(8, N, N))
    df = results(c, rng.random((8, N, N)), [0] * 8, ["de"] * 4 + ["sw"] * 4)
    strat = BestOnTrain()
    first = select(df, [strat], cv=2).table
    assert strat.chosen is None and len(strat.candidates(N, "attn")) == 2 * N - 1
    second = select(df, [strat], cv=2).table
    pd.testing.assert_frame_equal(first, second)


def test_gap_closed_is_a_dash_where_the_bound_equals_vanilla_up_to_noise():
    """Vanilla right on every item the oracle is: the gap is float noise, not a gap to close."""
    c = np.zeros((6, N, N), int)
    vanilla = [1, 0, 1, 0, 1, 0]
    for k, v in enumerate(vanilla):
        c[k] = v                            # transplanting never changes an answer
    df = results(c, np.ones((6, N, N)), vanilla, ["de", "de", "de", "sw", "sw", "sw"])
    sel = select(df, ["coarse", "entropy"], cv=2)
    col = "gap closed to oracle (%)"
    assert sel.table[col].isna().all()
    assert any(col in note and "one item's worth" in note for note in sel.notes)
    # a real gap is computed as (strategy - vanilla) / (bound - vanilla)
    c[1, 2, 0] = 1
    sel = select(results(c, np.ones((6, N, N)), vanilla, ["de"] * 3 + ["sw"] * 3), ["coarse"], cv=2)
    t = sel.table
    expected = (t.loc["coarse", "Avg."] - t.loc["Vanilla", "Avg."]) / (t.loc["N² oracle", "Avg."] - t.loc["Vanilla", "Avg."]) * 100
    assert t.loc["coarse", col] == pytest.approx(expected)


def test_average_pooled_is_honoured_and_said():
    """Unequal languages: pooled (over items) and per-language means differ, and the footer says which."""
    c = np.zeros((4, N, N), int)
    vanilla = [1, 1, 1, 0]                  # de: 3 of 3 right; sw: 0 of 1
    df = results(c, np.ones((4, N, N)), vanilla, ["de", "de", "de", "sw"])
    lang = select(df, ["coarse"], cv=2)
    pooled = select(df, ["coarse"], cv=2, average="pooled")
    assert lang.table.loc["Vanilla", "Avg."] == pytest.approx(50.0)     # mean of 100 and 0
    assert pooled.table.loc["Vanilla", "Avg."] == pytest.approx(75.0)   # 3 of 4 items
    assert any("means over languages" in n for n in lang.notes)
    assert any("pooled over the items" in n for n in pooled.notes)
    with pytest.raises(XtlError, match="average"):
        select(df, ["coarse"], cv=2, average="mean")


def test_a_gold_free_feature_that_decides_is_learned_and_best_on_train_does_not_gain():
    """Issue 30 §3: a Learned that always kept vanilla passed the old tests. Here a gold-free feature
    decides: in half the items vanilla is wrong and exactly one configuration, a different one per
    item, is right and the only confident one (low entropy); in the other half vanilla is right
    and every configuration wrong. No configuration is better than vanilla on average, so
    best-on-train cannot gain; the learned strategies must transplant and beat vanilla widely."""
    pytest.importorskip("sklearn")
    from xtl.strategies import Learned

    rng = np.random.default_rng(7)
    k = 72
    c = np.zeros((k, N, N), int)
    ent = rng.uniform(0.5, 1.0, size=(k, N, N))
    vanilla = [1] * (k // 2) + [0] * (k // 2)
    for item in range(k // 2, k):
        i, j = rng.integers(0, N, size=2)
        c[item, i, j], ent[item, i, j] = 1, 0.05
    order = rng.permutation(k)                      # both kinds in every fold and language
    df = results(c[order], ent[order], [vanilla[o] for o in order], ["de", "sw"] * (k // 2))
    sel = select(df, [Learned(iterations=40), Learned(name="learned (logistic)", model="logistic"),
                      BestOnTrain()], cv=3)
    t = sel.table
    van = t.loc["Vanilla", "Avg."]
    assert van == pytest.approx(50, abs=8)
    for name in ("learned", "learned (logistic)"):
        assert t.loc[name, "Avg."] >= van + 25, (name, t.loc[name, "Avg."], van)   # measured: +35
        chosen = sel.choices[sel.choices["strategy"] == name]
        assert (chosen["src_layer"] >= 0).sum() >= k // 3           # it transplants, a third of the items at least
    assert t.loc["best-on-train", "Avg."] <= van + 1e-9


def test_without_scikit_learn_the_default_runs_the_rest_and_says_why(monkeypatch):
    """Issue 30 §3: without scikit-learn the learned strategies are left out of the default set with
    the reason; the others still run. Named explicitly, they are refused up front with what to install."""
    import sys

    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn now fails, as when it is not installed
    rng = np.random.default_rng(0)
    c = rng.integers(0, 2, size=(8, N, N))
    df = results(c, rng.uniform(size=(8, N, N)), [0, 1] * 4, ["de", "sw"] * 4)
    sel = select(df, cv=2)
    assert "coarse" in sel.table.index and "entropy-based" in sel.table.index
    assert not any(name.startswith("learned") for name in sel.choices["strategy"].unique())
    assert "Not run: learned needs scikit-learn (pip install 'xtl[select]')." in sel.notes
    assert "Not run: learned (logistic) needs scikit-learn (pip install 'xtl[select]')." in sel.notes
    with pytest.raises(XtlError, match=r"learned \(logistic\) needs scikit-learn"):
        select(df, ["coarse", "learned-logistic"], cv=2)


def test_loglik_never_prefers_an_empty_response():
    """Issue 37 §3: an empty response (no tokens, log-likelihood 0.0) beat every real answer, so
    loglik-cross picked configurations that stop at once; it has no likelihood and comes last."""
    langs = ["de", "de"]
    df = results(np.zeros((2, N, N), bool), np.ones((2, N, N)), [0, 0], langs)
    empty = (df["src_layer"] == 0) & (df["tgt_layer"] == 0)
    df.loc[empty, ["response", "n_tokens", "loglik"]] = ["", 0, 0.0]
    likeliest = (df["src_layer"] == N - 1) & (df["tgt_layer"] == 1)
    df.loc[likeliest, "loglik"] = -0.3
    chosen = Confidence(name="loglik", kind="cross", score="loglik").choose(_rows(df), N, "attn")
    assert set(chosen.values()) == {Config(N - 1, 1)}
    feats = candidate_features(df, N)
    assert (feats.loc[empty, "f_loglik"] < feats.loc[~empty, "f_loglik"].min()).all()
