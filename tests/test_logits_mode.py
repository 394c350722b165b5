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
    with pytest.raises(XtlError, match="pass candidates"):
        xtl.evaluate(df, items)
    assert xtl.evaluate(df, items, candidates=CANDIDATES)["answer"].isin(CANDIDATES).all()
    qa, _ = _items(write_task, "qa")
    df = xtl.sweep(model, qa, mode="logits", src_layers=[0], tgt_layers=[0], candidates=CANDIDATES,
                   progress=False)
    with pytest.raises(XtlError, match="QA items .* cannot be scored"):
        xtl.evaluate(df, qa, candidates=CANDIDATES)
