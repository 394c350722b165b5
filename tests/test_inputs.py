"""Bad input through the Python API gets a specific XtlError that says what to do."""

from __future__ import annotations

import pytest

import xtl
from helpers import PROMPTS
from xtl.errors import DataError, XtlError


def test_a_model_name_instead_of_a_model(tiny_models):
    for call in (lambda: xtl.transplant("gemma-3-270m-q4km", source="s", target="t", src_layer=1, tgt_layer=0),
                 lambda: xtl.sweep("gemma-3-270m-q4km", [("s", "t")]),
                 lambda: xtl.capture("gemma-3-270m-q4km", "s", "mlp")):
        with pytest.raises(XtlError, match="must be a loaded model, not the string 'gemma-3-270m-q4km'"):
            call()


@pytest.mark.parametrize("kwargs, message", [
    ({"src_layer": True}, "source layer must be an int"),
    ({"tgt_layer": 1.0}, "target layer must be an int"),
    ({"max_new_tokens": "5"}, "max_new_tokens must be an int"),
    ({"max_new_tokens": 0}, "max_new_tokens must be at least 1"),
])
def test_transplant_argument_types(tiny_models, kwargs, message):
    _, model = tiny_models["llama"]
    args = {"src_layer": 1, "tgt_layer": 0, **kwargs}
    with pytest.raises(XtlError, match=message):
        xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], **args)


@pytest.mark.parametrize("positions, message", [("middle", "positions must be 'last', 'generated'"),
                                                ([1.5], "positions must be whole numbers")])
def test_lens_positions(tiny_models, positions, message):
    _, model = tiny_models["llama"]
    with pytest.raises(XtlError, match=message):
        xtl.lens(model, PROMPTS["en"], positions=positions)


@pytest.mark.parametrize("spec, kwargs, message", [
    ("xnli:unsen", {}, "unknown variant 'unsen' of xnli; its variants are unseen. Did you mean 'unseen'"),
    ("xquad:foo", {}, "unknown variant 'foo' of xquad"),
    ("xnli", {"limit": 0}, "limit must be at least 1"),
    ("xnli", {"limit": "2"}, "limit must be an int"),
    ("xnli", {"langs": "de"}, "langs must be a list of language codes"),
])
def test_load_task_arguments(spec, kwargs, message, tmp_path):
    with pytest.raises(DataError, match=message):
        xtl.load_task(spec, data_root=tmp_path, **kwargs)


@pytest.mark.parametrize("row, message", [
    ({"source": "s", "target": "t", "gold": "C", "kind": "choice", "options": {"A": "a", "B": "b"}},
     "gold 'C' is not one of the options"),
    ({"source": "s", "target": "t", "gold": "A", "kind": "choice"}, "a choice item needs its options"),
    ({"source": "s", "target": "t", "gold": "A", "lang": ""}, "'lang' is empty"),
    # an item with options and no kind is a choice item: its gold must be one of them
    ({"source": "s", "target": "t", "gold": "Tokyo", "options": {"A": "Osaka", "B": "Tokyo"}},
     "gold 'Tokyo' is not one of the options"),
    ({"source": "s", "target": "t", "gold": "A", "kind": "qa", "options": {"A": "a"}}, "give \"kind\": \"choice\""),
])
def test_jsonl_items_that_cannot_be_scored(write_task, row, message):
    with pytest.raises(DataError, match=message):
        xtl.load_task(str(write_task([row])))


def test_an_item_with_options_and_no_kind_is_a_choice_item(write_task):
    (item,) = xtl.load_task(str(write_task([{"source": "s", "target": "t", "gold": "B",
                                               "options": {"A": "Osaka", "B": "Tokyo"}}])))
    assert item.kind == "choice" and item.options == {"A": "Osaka", "B": "Tokyo"}
    assert xtl.evaluation.score(item, "(B) Tokyo") and not xtl.evaluation.score(item, "(A) or (B)")


def test_files_that_are_not_what_they_should_be(tmp_path, write_task):
    from helpers import run_cli

    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes('{"source": "s", "target": "t", "gold": "A"}\n{"source": "caf\xe9", "target": "t", "gold": "A"}'
                    .encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.jsonl:2: not UTF-8 text"):
        xtl.load_task(str(bad))
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + b'{"source": "s", "target": "t", "gold": "A"}')
    assert xtl.load_task(str(bom))[0].source == "s"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="empty.jsonl is empty"):
        xtl.load_task(str(empty))
    proc = run_cli("transplant", "--model", "m", "--source", str(tmp_path), "--target", str(tmp_path))
    assert proc.returncode == 2 and "is a folder; give the prompt as a text file" in proc.stderr
    proc = run_cli("report", str(tmp_path / "no-such-store"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = run_cli("sweep", "--model", "m", "--task", str(bom), "--out", str(tmp_path / "o"), "--site", "ATTN")
    assert proc.returncode == 2 and "Did you mean 'attn'" in proc.stderr


def test_report_layers_the_store_lacks(tiny_models, write_task, tmp_path):
    _, model = tiny_models["llama"]
    path = write_task([{"id": "a", "source": PROMPTS["zh"], "target": PROMPTS["en"], "gold": "B"}])
    items = xtl.load_task(str(path))
    xtl.sweep(model, items, src_layers=[0, 2], tgt_layers=[1], max_new_tokens=2, store=tmp_path / "s",
              settings={"data": str(path)}, progress=False)
    with pytest.raises(XtlError, match="has no source layer.s. 3; it has 0, 2"):
        xtl.open_run(tmp_path / "s", src_layers=[3])


def test_a_model_folder_without_a_usable_tokenizer(tiny_folder, tmp_path):
    import shutil

    from xtl.errors import ModelSpecError

    bare = tmp_path / "bare"
    shutil.copytree(tiny_folder, bare)
    for f in bare.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "vocab")):
            f.unlink()
    with pytest.raises(ModelSpecError, match="has no tokenizer"):
        xtl.load_model(bare, dtype="float64")


def test_heads_out_of_range_before_loading(tiny_folder, tmp_path, monkeypatch):
    from helpers import run_cli

    import xtl.models

    monkeypatch.setattr(xtl.models, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    (tmp_path / "p.txt").write_text(PROMPTS["en"], encoding="utf-8")
    for model, heads in ((str(tiny_folder), "0..3"), ("gemma-3-270m-q4km", "0..3")):
        proc = run_cli("transplant", "--model", model, "--site", "heads:1,9", "--source",
                       str(tmp_path / "p.txt"), "--target", str(tmp_path / "p.txt"))
        assert proc.returncode == 2 and f"head(s) [9] out of range; {model} has heads {heads}" in proc.stderr


def test_a_lone_surrogate_and_a_full_disk(tiny_models, tmp_path, monkeypatch):
    from xtl.errors import PromptError, StoreError

    _, model = tiny_models["llama"]
    with pytest.raises(PromptError, match="lone surrogate"):
        xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"] + "\udc80", src_layer=1, tgt_layer=0)
    import pyarrow.parquet as pq

    def full(*args, **kwargs):
        raise OSError(27, "File too large")

    store = tmp_path / "s"
    xtl.sweep(model, [("a", "b", "one")], src_layers=[0], tgt_layers=[0], max_new_tokens=1, store=store,
              progress=False)
    monkeypatch.setattr(pq, "write_table", full)
    with pytest.raises(StoreError, match="cannot write item-.* .File too large.; make room"):
        xtl.sweep(model, [("a", "b", "one"), ("c", "d", "two")], src_layers=[0], tgt_layers=[0],
                  max_new_tokens=1, store=store, progress=False)
    assert len(list(store.glob("item-*.parquet"))) == 1 and not list(store.glob("*.partial"))


def test_prompt_beyond_the_context_before_loading(tiny_folder, tmp_path, monkeypatch, write_task):
    """The tiny folder has 512 positions and a byte tokenizer: 500 bytes + BOS + 20 new tokens
    do not fit; the config and tokenizer alone say so, before any weights load."""
    from helpers import run_cli

    import xtl.models

    monkeypatch.setattr(xtl.models, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    long, short = tmp_path / "long.txt", tmp_path / "short.txt"
    long.write_text("a" * 500, encoding="utf-8")
    short.write_text(PROMPTS["en"], encoding="utf-8")
    model = str(tiny_folder)
    proc = run_cli("transplant", "--model", model, "--source", short, "--target", long)
    assert proc.returncode == 2
    assert "the target prompt has 501 tokens; with 20 new tokens that is more than the model's context of 512" \
        in proc.stderr
    proc = run_cli("lens", "--model", model, "--target", long, "--max-new-tokens", "12")
    assert proc.returncode == 2 and "the prompt has 501 tokens; with 12 new tokens" in proc.stderr
    task = write_task([{"id": "a", "lang": "de", "source": "x", "target": "y" * 600, "gold": "y"},
                       {"id": "b", "lang": "de", "source": "x", "target": "short", "gold": "y"}])
    proc = run_cli("sweep", "--model", model, "--task", task, "--out", tmp_path / "store",
                   "--src-layers", "0", "--tgt-layers", "0")
    assert proc.returncode == 2 and "the target prompt of item 'a' has 601 tokens" in proc.stderr
    # the source prompt is only read, never extended: its 501 tokens fit; the target's do not
    proc = run_cli("transplant", "--model", model, "--source", long, "--target", long,
                   "--max-new-tokens", "12")
    assert proc.returncode == 2 and "the target prompt has 501 tokens; with 12 new tokens" in proc.stderr


def test_library_calls_with_the_wrong_kind_of_argument_say_what_to_pass(tiny_models, tmp_path):
    """Issue 30 §7: one clear XtlError instead of a traceback from deep inside pandas or pathlib."""
    import pandas as pd

    from xtl.errors import StoreError, XtlError
    from xtl.engine import Pair

    _, model = tiny_models["llama"]
    items = [Pair(PROMPTS["zh"], PROMPTS["en"], "p0", {"lang": "en", "gold": "B"})]
    df = xtl.sweep(model, items, site="mlp", src_layers=[0, 1], tgt_layers=[0], max_new_tokens=2, progress=False)
    with pytest.raises(DataError, match="task must be a task spec"):
        xtl.evaluate(df, None)
    with pytest.raises(DataError, match="results must be a DataFrame"):
        xtl.evaluate(df.to_dict("records"), items)
    with pytest.raises(StoreError, match="give the store's folder"):
        xtl.read_store(None)
    with pytest.raises(XtlError, match="lacks \\['nope'\\]"):
        xtl.dense(df, "nope")
    with pytest.raises(XtlError, match="expected a results table"):
        xtl.grid(None)
    ev = xtl.evaluate(df, items)
    with pytest.raises(XtlError, match="repeat an \\(item, source, target\\)"):
        xtl.grid(pd.concat([ev, ev]))
    with pytest.raises(XtlError, match="n_layers must be the model's depth"):
        xtl.analysis.entropy_select(ev, "4")
    with pytest.raises(XtlError, match="results are of a 4-layer model; pass n_layers=4"):
        xtl.analysis.entropy_select(ev, 18)
    with pytest.raises(XtlError, match="select needs an evaluated results table"):
        xtl.select(None)
    with pytest.raises(DataError, match="langs is empty"):
        xtl.load_task("xnli", langs=[], data_root=tmp_path)


def test_options_are_never_abbreviated():
    from helpers import run_cli

    res = run_cli("paper", "s", "--data", "xnli")       # --data is not --data-root
    assert res.returncode == 2 and "unrecognized arguments: --data" in res.stderr


@pytest.mark.parametrize("gold", ["NaN", "Infinity", "-Infinity", "1e20", "0.5"])
def test_a_gold_that_is_not_a_string_is_refused_with_its_line(tmp_path, gold):
    """Issue 37 §3: "gold": NaN was stored as "nan", and a response containing "nan" scored right."""
    path = tmp_path / "t.jsonl"
    path.write_text('{"source": "s", "target": "t", "gold": "A"}\n'
                    f'{{"source": "s2", "target": "t2", "gold": {gold}}}\n', encoding="utf-8")
    with pytest.raises(DataError, match=rf"t.jsonl:2: 'gold' must be the answer as a string \(a number in quotes"):
        xtl.load_task(str(path))
    path.write_text(f'{{"source": "s", "target": "t", "gold": "{gold}"}}\n{{"source": "s", "target": "u", "gold": 7}}\n')
    assert [it.gold for it in xtl.load_task(str(path))] == [gold, "7"]   # as a string, or a whole number


def test_a_jsonl_task_refuses_a_language_it_lacks(write_task):
    """Issue 37 §3: --langs de xx dropped xx without a word (registered tasks refuse it)."""
    path = write_task([{"source": "s", "target": "t", "gold": "A", "lang": "de"},
                       {"source": "s", "target": "u", "gold": "A", "lang": "fr"}])
    assert [it.lang for it in xtl.load_task(str(path), langs=["de"])] == ["de"]
    with pytest.raises(DataError, match=r"language\(s\) \['xx'\] not in .*task.jsonl; its languages: de, fr"):
        xtl.load_task(str(path), langs=["de", "xx"])
    bare = write_task([{"source": "s", "target": "t", "gold": "A"}], name="bare.jsonl")
    with pytest.raises(DataError, match="its lines give no 'lang'"):
        xtl.load_task(str(bare), langs=["de"])


def test_paths_stores_and_pairs_of_the_wrong_kind(tiny_models, write_task, tmp_path):
    """Issue 37 §3: load_task(Path) was told it needs "a .jsonl path"; sweep(store=5) and Pair(1, 2)
    ended in tracebacks."""
    from pathlib import Path

    from xtl.errors import StoreError

    path = write_task([{"source": "s", "target": "t", "gold": "A"}])
    assert [it.source for it in xtl.load_task(Path(path))] == ["s"]
    with pytest.raises(DataError, match="a task file is JSON Lines named"):
        xtl.load_task(tmp_path / "task.txt")
    _, model = tiny_models["llama"]
    with pytest.raises(StoreError, match="a store is a folder: give its path .*not 5"):
        xtl.sweep(model, [(PROMPTS["zh"], PROMPTS["en"])], store=5, progress=False)
    with pytest.raises(XtlError, match="Pair needs the source and target prompts as strings, not int and int"):
        xtl.Pair(1, 2)
    with pytest.raises(XtlError, match="Pair's meta must be a dict"):
        xtl.Pair("s", "t", meta=["de"])
