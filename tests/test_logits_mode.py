"""Logits-mode runs score: each row's answer is its highest-scoring candidate (issue 20, point 1)."""

from __future__ import annotations

import numpy as np
import pytest

import xtl
from helpers import PROMPTS
from xtl.errors import XtlError

CANDIDATES = ["A", "B", "C"]


def _items(write_task, kind="choice"):
    rows = [{"id": f"q{k}", "lang": "de", "kind": kind, "gold": "AB"[k % 2] if kind == "choice" else "Tokyo",
             "options": {"A": "Osaka", "B": "Tokyo", "C": "Kyoto"} if kind == "choice" else {},
             "source": PROMPTS["zh"] + " " * k, "target": PROMPTS["en"] + "." * k} for k in range(3)]
    path = str(write_task(rows, f"{kind}.jsonl"))
    return xtl.load_task(path), path


def test_logits_mode_accuracy_is_the_argmax_over_candidates(tiny_models, write_task, tmp_path):
    _, model = tiny_models["llama"]
    items, path = _items(write_task)
    kw = dict(site="mlp", src_layers=[0, 3], tgt_layers=[0, 2], candidates=CANDIDATES, progress=False)
    store = tmp_path / "logits"
    xtl.sweep(model, items, mode="logits", max_new_tokens=1, store=store, settings={"data": path}, **kw)
    run = xtl.open_run(store)                    # the store knows its mode and candidates
    ev = run.df
    assert run.mode == "logits" and (ev["response"] == "").all()
    gold = {it.key: it.gold for it in items}
    by_hand = [CANDIDATES[int(np.argmax(lp))] == gold[k] for lp, k in zip(ev["cand_logprobs"], ev["item_key"])]
    assert ev["correct"].tolist() == by_hand
    assert ev["answer"].isin(CANDIDATES).all() and ev["lang_ok"].isna().all()
    per_config = ev.groupby(["src_layer", "tgt_layer"])["correct"].mean()
    hand = ev.assign(c=by_hand).groupby(["src_layer", "tgt_layer"])["c"].mean()
    assert per_config.tolist() == hand.tolist()
    # generate mode agrees wherever the generated answer starts with a candidate
    gen = xtl.sweep(model, items, mode="generate", max_new_tokens=2, **kw)
    both = ev.merge(gen, on=["item_key", "src_layer", "tgt_layer"], suffixes=("", "_gen"))
    first = both["response_gen"].str[:1]
    starts = first.isin(CANDIDATES)
    assert (both.loc[starts, "answer"] == first[starts]).all()
    # the paper tables and the report read it the same way
    table = xtl.analysis.accuracy_table(ev, ("lang",))
    assert table.loc[table["lang"] == "all", "vanilla"].item() == pytest.approx(
        100 * np.mean([c for c, v in zip(by_hand, ev["is_vanilla"]) if v]))


def test_logits_mode_needs_the_candidates_and_a_choice_task(tiny_models, write_task):
    _, model = tiny_models["llama"]
    items, _ = _items(write_task)
    df = xtl.sweep(model, items, mode="logits", src_layers=[0], tgt_layers=[0], candidates=CANDIDATES,
                   progress=False)
    # the frame xtl.sweep returns carries its candidates: the README's order needs nothing restated
    assert df.attrs["candidates"] == CANDIDATES and df.attrs["mode"] == "logits"
    assert xtl.evaluate(df, items)["answer"].tolist() == xtl.evaluate(df, items, candidates=CANDIDATES)["answer"].tolist()
    bare = df.copy()
    bare.attrs.clear()
    with pytest.raises(XtlError, match="pass candidates"):
        xtl.evaluate(bare, items)
    assert xtl.evaluate(df, items, candidates=CANDIDATES)["answer"].isin(CANDIDATES).all()
    qa, _ = _items(write_task, "qa")
    df = xtl.sweep(model, qa, mode="logits", src_layers=[0], tgt_layers=[0], candidates=CANDIDATES,
                   progress=False)
    with pytest.raises(XtlError, match="QA items .* cannot be scored"):
        xtl.evaluate(df, qa, candidates=CANDIDATES)


def test_logits_mode_answers_only_among_the_items_own_options(tiny_models, write_task):
    """A two-option item (A, B) swept with candidates A-D answers A or B, even where C or D
    scores higher: the best of the candidates that are its options."""
    _, model = tiny_models["llama"]
    rows = [{"id": f"q{k}", "lang": "de", "kind": "choice", "gold": "AB"[k % 2], "options": {"A": "ja", "B": "nein"},
             "source": PROMPTS["zh"] + " " * k, "target": PROMPTS["en"] + "." * k} for k in range(4)]
    items = xtl.load_task(str(write_task(rows, "two.jsonl")))
    four = ["A", "B", "C", "D"]
    df = xtl.sweep(model, items, mode="logits", src_layers=[0, 3], tgt_layers=[0, 2], candidates=four, progress=False)
    ev = xtl.evaluate(df, items)
    assert ev["answer"].isin(["A", "B"]).all()
    by_hand = ["AB"[int(np.argmax(list(lp)[:2]))] for lp in ev["cand_logprobs"]]
    assert ev["answer"].tolist() == by_hand
    outside = [int(np.argmax(list(lp))) >= 2 for lp in ev["cand_logprobs"]]
    assert any(outside), "the test needs rows where a non-option candidate scores highest"
    with pytest.raises(XtlError, match="none of the candidates .* is an option"):
        xtl.evaluate(df.assign(cand_logprobs=[[0.0, 0.0]] * len(df)), items, candidates=["C", "D"])
