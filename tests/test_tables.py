"""The paper's Tables 1-4 and 8: exact values on hand-built results, and end to end from real sweeps."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from xtl.analysis import tables as tb
from xtl.errors import XtlError

from test_analysis import table

# 3 layers; 'de' (high) has 3 items, 'sw' (low) 1 item, so language means differ from item means.
C = np.zeros((4, 3, 3), int)
C[0, 2, 0] = 1            # de item 0: right only at the attn coarse config (last -> first)
C[1, :, 1] = 1            # de item 1: right into target 1 from any source
C[3, 2, :] = 1            # sw item: right from the last source into every target
VAN = [1, 0, 0, 0]
LANGS = ["de", "de", "de", "sw"]
GROUPS = ["high", "high", "high", "low"]


def _run(df=None, **settings):
    df = table(C, VAN, LANGS, GROUPS) if df is None else df
    return tb.Run(df.assign(dataset="xnli"), {"site": "attn", "n_layers": 3, **settings})


def test_table3_coarse_by_language_with_language_mean_averages():
    t = tb.paper_table(3, [_run()])
    (caption, frame), = t.blocks
    assert caption == "XNLI PilotSet (attn 2→0)"
    assert list(frame.columns) == ["High de", "High Avg.", "Low sw", "Low Avg."]
    assert frame.loc["Vanilla", "High de"] == pytest.approx(100 / 3)
    assert frame.loc["Coarse", "High de"] == pytest.approx(100 / 3)   # item 0 only
    assert frame.loc["Coarse", "Low sw"] == 100
    assert "Group averages: mean over languages." in t.notes[0]


def test_table4_bounds_and_reasons():
    t = tb.paper_table(4, [_run(), _run(table(np.ones((1, 1, 1)), [0], ["de"], ["high"]).iloc[:1].assign(is_vanilla=True),
                                        cot=True)])
    (_, frame), = t.blocks
    # SourceLast: de items 0 and 1 (max over targets from source 2) -> 2/3; sw -> 1
    assert frame.loc["SourceLast (attn)", "High"] == pytest.approx(200 / 3)
    assert frame.loc["SourceLast (attn)", "Low"] == 100
    assert frame.loc["SourceLast (attn)", "Avg."] == pytest.approx((200 / 3 + 100) / 2)  # not 3/4
    assert frame.loc["TargetFirst (attn)", "Avg."] == pytest.approx((100 / 3 + 100) / 2)
    assert frame.loc["CoT", "High"] == 0 and math.isnan(frame.loc["CoT", "Low"])
    assert "Entropy-based (attn)" in frame.index
    pooled = tb.paper_table(4, [_run()], average="pooled").blocks[0][1]
    assert pooled.loc["SourceLast (attn)", "Avg."] == 75
    assert "pooled over items (not the paper's)" in tb.paper_table(4, [_run()], average="pooled").notes[0]


def test_table4_on_a_partial_grid_says_why():
    df = table(C, VAN, LANGS, GROUPS)
    part = df[df.is_vanilla | (df.tgt_layer > 0)]
    t = tb.paper_table(4, [_run(part)])
    frame = t.blocks[0][1]
    assert frame.loc[["SourceLast (attn)", "TargetFirst (attn)"]].isna().all().all()
    assert any("XNLI PilotSet TargetFirst (attn): not computable on this grid: TargetFirst (eq. 5) needs target layer 0"
               in n for n in t.notes)
    md = tb.to_markdown(t)
    assert "| SourceLast (attn) | – | – | – | – |" in md and "not computable on this grid" in md


def test_tables_1_and_2_in_the_papers_layout_and_renderers():
    df = table(C, VAN, LANGS, GROUPS).assign(lang_ok=True, ppl=np.nan)
    df.loc[~df.is_vanilla, "lang_ok"] = [k % 2 == 0 for k in range(int((~df.is_vanilla).sum()))]
    df["ppl"] = np.where(df.is_vanilla, 10.0, 20.0)
    mlp = table(C, VAN, LANGS, GROUPS).assign(lang_ok=True, ppl=30.0)
    t1 = tb.paper_table(1, [_run(df), _run(mlp, site="mlp")])
    (t_ppl, ppl), (t_lc, lc) = t1.blocks[:2]
    assert (t_ppl, t_lc) == ("Perplexity", "Language Consistency (%)")
    assert list(ppl.index) == ["Vanilla (w/o XTransplant)", "XTransplant (Self-Attention)", "XTransplant (Feed-Forward)"]
    assert list(ppl.columns) == ["XNLI"] and list(lc.columns) == ["XNLI (non-En)"]
    assert ppl.loc["Vanilla (w/o XTransplant)", "XNLI"] == 10 and ppl.loc["XTransplant (Self-Attention)", "XNLI"] == 20
    assert ppl.loc["XTransplant (Feed-Forward)", "XNLI"] == 30
    # language consistency over the attn run's 36 configuration rows, mean over languages
    moved = df[~df.is_vanilla]
    by_lang = moved.groupby("lang")["lang_ok"].mean() * 100
    assert lc.loc["XTransplant (Self-Attention)", "XNLI (non-En)"] == pytest.approx(by_lang.mean())
    assert "| Vanilla (w/o XTransplant) | 10.00 |" in tb.to_markdown(t1)           # two decimals, as printed
    caption, extra = t1.blocks[2]
    assert caption.startswith("Extra view (not in the paper)")
    assert extra.loc["Vanilla", "Acc Avg."] == pytest.approx((100 / 3 + 0) / 2)
    assert extra.loc["XTransplant (Self-Attention)", "Acc Low"] == pytest.approx(100 / 3)
    t2 = tb.paper_table(2, [_run(df)])
    settings = t2.blocks[0][1].iloc[0]
    assert settings["Task Type"] == "Multilingual Understanding" and settings["Granularity"] == "Attn-level"
    assert settings["Layer Selection (Source, Target)"] == "(Last layer, First layer) = (2, 0)"
    assert settings["ID Data"] == "XNLI (PilotSet, in-sample)" and settings["OOD Data"] == "–"
    unseen = tb.paper_table(2, [_run(df, data="xnli:unseen")]).blocks[0][1].iloc[0]   # issue 30 §7
    assert unseen["ID Data"] == "XNLI"
    row = t2.blocks[1][1].iloc[0]
    assert row["Coarse"] == pytest.approx((100 / 3 + 100) / 2)
    tex = tb.to_latex(t2)
    assert tex.startswith("\\begin{table}") and "\\toprule" in tex and "$\\Delta$" in tex
    csv = tb.to_csv(t1)
    assert csv.splitlines()[0].startswith("block,row,XNLI") and "XTransplant (Self-Attention)" in csv
    with pytest.raises(XtlError, match="Tables 1, 2, 3, 4, 8, not 5"):
        tb.paper_table(5, [_run()])


def test_several_models_side_by_side_titled_by_model():
    llama, mistral = _run(model="Llama-2-7b-chat-hf"), _run(model="Mistral-7B-Instruct-v0.3")
    t4 = tb.paper_table(4, [llama, mistral])
    assert [c for c, _ in t4.blocks] == ["XNLI PilotSet · Llama-2-7b-chat-hf", "XNLI PilotSet · Mistral-7B-Instruct-v0.3"]
    assert "Mistral-7B-Instruct-v0.3" in t4.title
    assert any("prints this table for Mistral-7B-Instruct-v0.3 as its Table 6" in n for n in t4.notes)
    t3 = tb.paper_table(3, [mistral])
    assert any("as its Table 9" in n for n in t3.notes)


def test_two_stores_for_the_same_cells_are_refused():
    """Issue 20, point 3: the table must not depend on the order the stores are given in."""
    a, b = _run(store="runs/xnli-attn-sweep"), _run(store="runs/xnli-attn-eval")
    for number in (1, 2, 4):
        with pytest.raises(XtlError, match="same cells .*XNLI PilotSet, site attn.*runs/xnli-attn-sweep and runs/xnli-attn-eval"):
            tb.paper_table(number, [a, b])
    mlp = _run(store="runs/xnli-mlp", site="mlp")
    assert len(tb.paper_table(2, [a, mlp]).blocks[1][1]) == 2      # other sites: one row each
    # issue 30 §7: the settings row is the paper's (XNLI: Attn-level), not "Attn-level / FFN-level"
    t2 = tb.paper_table(2, [a, mlp])
    assert t2.blocks[0][1].iloc[0]["Granularity"] == "Attn-level"
    assert any("XNLI PilotSet (mlp): not the paper's setting for Multilingual Understanding (Attn-level)" in n
               for n in t2.notes)
    only_mlp = tb.paper_table(2, [mlp])
    assert len(only_mlp.blocks[-1][1]) == 1 and "Attn-level / FFN-level" not in tb.to_markdown(only_mlp)


@pytest.mark.demo
def test_every_table_from_a_small_real_sweep(demo_model, shared_data, tmp_path, capsys):
    """The demo model swept on real XNLI items through the CLI, then `xtl paper`."""
    from xtl.cli import main

    common = ["--model", "gemma-3-270m", "--task", "xnli", "--data-root", str(shared_data),
              "--langs", "de", "sw", "--limit", "1"]
    assert main(["sweep", *common, "--site", "attn", "--max-new-tokens", "5", "--out", str(tmp_path / "s")]) == 0
    assert main(["eval", *common, "--cot", "--max-new-tokens", "6", "--no-ppl", "--out", str(tmp_path / "cot")]) == 0
    capsys.readouterr()
    out = tmp_path / "tables"
    assert main(["paper", str(tmp_path / "s"), str(tmp_path / "cot"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for n in (1, 2, 3, 4):
        assert f"### Table {n}:" in printed
        for ext in ("md", "csv", "tex"):
            assert (out / f"table{n}.{ext}").stat().st_size > 0
    # recompute Table 3 and Table 4 by hand from the evaluated rows
    from xtl.evaluation import evaluate
    from xtl.engine.store import read_store

    ev = evaluate(read_store(tmp_path / "s"), "xnli", data_root=shared_data)
    n = int(ev["n_layers"].iloc[0])
    t3 = pd.read_csv(out / "table3.csv").set_index("row")
    t4 = pd.read_csv(out / "table4.csv").set_index("row")
    coarse = ev[(ev.src_layer == n - 1) & (ev.tgt_layer == 0)].groupby("lang")["correct"].mean() * 100
    assert t3.loc["Coarse", "High de"] == pytest.approx(coarse["de"], abs=0.01)
    assert t3.loc["Coarse", "Low sw"] == pytest.approx(coarse["sw"], abs=0.01)
    last = ev[ev.src_layer == n - 1].groupby(["lang", "item_key"])["correct"].max().groupby("lang").mean() * 100
    assert t4.loc["SourceLast (attn)", "Avg."] == pytest.approx(last.mean(), abs=0.01)
    cot = pd.read_parquet(tmp_path / "cot" / "evaluated.parquet").groupby("lang")["correct"].mean() * 100
    assert t4.loc["CoT", "Avg."] == pytest.approx(cot.mean(), abs=0.01)
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["data_root"] == str(shared_data.resolve())
    assert "Groups: paper" in printed and "Language ID: lid.176.ftz (built in)" in printed
    assert main(["paper", str(tmp_path / "s"), "--figure", "--out", str(tmp_path / "figs")]) == 0
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "figure2.html", "figure3-xnli-pilotset-attn-source.html", "figure3-xnli-pilotset-attn-target.html",
        "figure4-xnli-pilotset-attn.html"]


def test_paper_figures_2_3_4_with_layers_numbered_from_1():
    from xtl import analysis as an
    from xtl.figures.paper import paper_figures

    run = _run()
    figs = paper_figures([run], (2, 3, 4))
    assert set(figs) == {"figure2", "figure3-xnli-pilotset-attn-source", "figure3-xnli-pilotset-attn-target",
                         "figure4-xnli-pilotset-attn"}
    ub = an.upper_bounds(an.grid(run.df, n_layers=3))
    curve = figs["figure4-xnli-pilotset-attn"].data[0]
    assert list(curve.x) == [1, 2, 3] and list(curve.y) == pytest.approx(list(ub.source), nan_ok=True)
    assert "numbered from 1" in figs["figure4-xnli-pilotset-attn"].layout.xaxis.title.text
    assert list(paper_figures([run], (4,), first_layer=0)["figure4-xnli-pilotset-attn"].data[0].x) == [0, 1, 2]
    wtl = an.win_tie_lose(an.grid(run.df, n_layers=3))
    win = figs["figure2"].data[0]
    assert win.name == "win" and win.y[0] == pytest.approx(100 * wtl.win / wtl.n_configs)
    assert list(figs["figure3-xnli-pilotset-attn-source"].data[0].x) == [1, 2, 3]
    with pytest.raises(XtlError, match="Figures 2, 3, 4, not \\[5\\]"):
        paper_figures([run], (5,))
    assert tuple(figs["figure4-xnli-pilotset-attn"].layout.xaxis.range) == (0.5, 3.5)   # issue 30 §7: from 1
    assert not figs["figure4-xnli-pilotset-attn"].layout.annotations[-1].text.startswith("not computable")
    # a restricted grid: no curve can be drawn, and the figure says why instead of being empty
    part = _run(run.df[run.df.is_vanilla | ((run.df.src_layer == 1) & (run.df.tgt_layer == 1))])
    fig = paper_figures([part], (4,))["figure4-xnli-pilotset-attn"]
    note = fig.layout.annotations[-1].text
    assert note.startswith("not computable on this grid") and "source-wise" in note and "target-wise" in note


def test_table8_entropy_based_per_language_by_source_language_and_model():
    """Item k's entropy is lower at source 0 for even k and at source 2 for odd k; the choice is
    right when C says so at that configuration."""
    c = np.zeros((4, 3, 3), int)
    c[0, 0, 0] = 1          # en item 0: chooses (0, 0), right
    c[1, 0, 0] = 1          # en item 1: chooses (2, 0), wrong
    c[2, 2, 0] = 1          # de item 2: chooses (0, 0), wrong
    c[3, 2, 0] = 1          # de item 3: chooses (2, 0), right
    ent = np.ones((4, 3, 3))
    ent[[0, 2], 0, 0] = 0.1
    ent[[1, 3], 2, 0] = 0.1
    df = table(c, [0, 0, 0, 0], ["en", "en", "de", "de"], entropy=ent)
    english = tb.Run(df.assign(dataset="xnli"), {"site": "attn", "n_layers": 3, "data": "xnli", "model": "llama"})
    c_zh = np.zeros((4, 3, 3), int)
    c_zh[0, 0, 0] = c_zh[1, 2, 0] = 1   # both en items right, both de items wrong
    zh = table(c_zh, [0, 0, 0, 0], ["en", "en", "de", "de"], entropy=ent)
    chinese = tb.Run(zh.assign(dataset="xnli"), {"site": "attn", "n_layers": 3, "data": "xnli@zh", "model": "llama"})
    t8 = tb.paper_table(8, [english, chinese])
    (caption, frame), = t8.blocks
    assert caption == "XNLI PilotSet" and list(frame.columns) == ["en", "de", "Avg."]
    assert frame.loc["llama · Entropy-based (English)"].tolist() == [50.0, 50.0, 50.0]
    assert frame.loc["llama · Entropy-based (Chinese)"].tolist() == [100.0, 0.0, 50.0]
    assert chinese.name == "XNLI PilotSet (source zh)" and chinese.source == "zh"


def test_table1_names_the_model_of_each_column_and_says_when_a_grid_is_partial():
    """Issue 30 §7: two models' stores shared one column per dataset (the second overwrote the
    first); a partial (e.g. cross) grid was averaged as if it were the N² grid, with no note."""
    df = table(C, VAN, LANGS, GROUPS).assign(lang_ok=True, ppl=10.0)
    llama, mistral = _run(df, model="Llama-2-7b-chat-hf"), _run(df.assign(ppl=20.0), model="Mistral-7B-Instruct-v0.3")
    (_, ppl), _ = tb.paper_table(1, [llama, mistral]).blocks[:2]
    assert list(ppl.columns) == ["XNLI · Llama-2-7b-chat-hf", "XNLI · Mistral-7B-Instruct-v0.3"]
    assert ppl.loc["XTransplant (Self-Attention)"].tolist() == [10.0, 20.0]
    full = tb.paper_table(1, [_run(df)])
    assert not any("not over the paper's N² grid" in n for n in full.notes)
    part = df[df.is_vanilla | (df.tgt_layer == 0) | (df.src_layer == 2)]              # the 2N - 1 cross grid
    t = tb.paper_table(1, [_run(part)])
    assert any("XNLI PilotSet XTransplant (Self-Attention): the mean over the configurations this store swept"
               in n and "not over the paper's N² grid" in n for n in t.notes), t.notes
