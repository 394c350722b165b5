"""The latent-language lens: per-layer answer probabilities against plain Hugging Face hidden
states, the transplanted last layer against xtl.transplant, curves on hand-built arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xtl
from helpers import PROMPTS
from xtl.errors import XtlError
from xtl.interpret.languages import STATES, LanguageLens, answer_words


def _items():
    pair = xtl.builtin_pair()
    return [xtl.Pair(PROMPTS["zh"], PROMPTS["en"], "p",
                     {"lang": "en", "src_lang": "zh", "gold": "B", "answers": pair["answers"]}),
            xtl.Item("x", "xnli", "de", PROMPTS["en"], PROMPTS["zh"], "1", "choice", {"1": "Folgerung"},
                     {"src_lang": "en", "answers": {"en": "entailment", "de": "Folgerung"}})]


def _ids(model, word: str) -> list[int]:
    """The byte tokenizer's first token of ``word`` (``" " + word`` starts with the shared space)."""
    return [model.tokenizer(word, add_special_tokens=False)["input_ids"][0]]


def test_layer_probabilities_match_plain_hugging_face(tiny_models):
    hf, model = tiny_models["llama"]
    items = _items()
    res = xtl.lens_languages(model, items, progress=False)
    assert res.items == [it.key for it in items] and res.langs == ["zh", "de"] and not res.skipped
    for k, it in enumerate(items):
        en, _, other = answer_words(it)
        n = model.cfg.n_layers
        with torch.no_grad():
            out = hf(torch.tensor([model.tokenizer(it.target)["input_ids"]]), output_hidden_states=True)
            # hidden_states[l + 1] is the residual after layer l; the last one already went through the norm
            logits = [hf.lm_head(hf.model.norm(out.hidden_states[l + 1][0, -1])) for l in range(n - 1)]
            probs = torch.softmax(torch.stack([*logits, out.logits[0, -1]]).double(), -1)
        np.testing.assert_allclose(res.p_en[0, k], probs[:, _ids(model, en)].sum(-1), rtol=1e-6)
        np.testing.assert_allclose(res.p_target[0, k], probs[:, _ids(model, other)].sum(-1), rtol=1e-6)
        assert np.isnan(res.p_en[1, k]).all() and (res.top_lang[1, k] == "").all()
    assert set(np.unique(res.top_lang[0])) <= {"en", "target", "other", "none"}


def test_the_transplanted_last_layer_is_the_transplant(tiny_models):
    _, model = tiny_models["qwen2"]
    items = _items()
    res = xtl.lens_languages(model, items, transplant={items[1].key: (3, 1)}, site="attn", progress=False)
    assert res.configs == [None, (3, 1)]
    first = xtl.transplant(model, source=items[1].source, target=items[1].target, src_layer=3, tgt_layer=1,
                           site="attn", max_new_tokens=1)
    p = first.first_logprobs.double().exp()
    assert res.p_en[1, 1, -1] == pytest.approx(float(p[_ids(model, "entailment")].sum()), rel=1e-9)
    assert np.isnan(res.p_en[1, 0]).all()  # no transplant for the first item
    assert not np.allclose(res.p_en[1, 1], res.p_en[0, 1])


def test_curves_average_items_with_bands():
    p_en = np.zeros((2, 3, 2))
    p_en[0, :, 0] = [0.1, 0.2, 0.3]
    top = np.full((2, 3, 2), "", dtype=object)
    top[0] = [["en", "target"], ["en", "other"], ["none", "target"]]
    lens = LanguageLens("mlp", ["a", "b", "c"], ["de"] * 3, [None] * 3, p_en, p_en.copy(), top,
                        np.full((2, 3, 2), "x", dtype=object))
    cur = lens.curves().set_index(["state", "layer", "measure"])
    assert set(cur.index.get_level_values("state")) == {"vanilla"}  # nothing transplanted
    row = cur.loc[("vanilla", 0, "p(en)")]
    half = 1.96 * np.std([0.1, 0.2, 0.3], ddof=1) / np.sqrt(3)
    assert row["mean"] == pytest.approx(0.2) and row["hi"] == pytest.approx(0.2 + half) and row["n"] == 3
    assert cur.loc[("vanilla", 0, "top=en"), "mean"] == pytest.approx(2 / 3)
    assert cur.loc[("vanilla", 1, "top=target"), "mean"] == pytest.approx(2 / 3)
    assert cur.loc[("vanilla", 1, "top=other"), "lo"] >= 0.0
    assert type(lens.figure()).__name__ == "Figure"
    with pytest.raises(XtlError, match="do not match"):
        LanguageLens("mlp", ["a"], ["de"], [None], p_en, p_en, top, top)
    assert STATES == ("vanilla", "transplanted")


def test_items_without_answer_words_are_refused_in_one_line(tiny_models):
    _, model = tiny_models["llama"]
    goqa = xtl.Item("0", "globalopinionqa", "de", PROMPTS["zh"], PROMPTS["en"], "A", "choice", {"A": "A"})
    with pytest.raises(XtlError, match="no item for the language lens: item globalopinionqa/de/0 does not give"):
        xtl.lens_languages(model, [goqa], progress=False)
    res = xtl.lens_languages(model, [goqa, *_items()], progress=False)
    assert list(res.skipped) == [goqa.key] and len(res.items) == 2
    with pytest.raises(XtlError, match="transplant must be"):
        xtl.lens_languages(model, _items(), transplant=3, progress=False)


def test_the_pilot_sets_give_answers_in_english(shared_data):
    xnli = xtl.load_task("xnli", langs=["sw", "en"], limit=2, data_root=shared_data)
    sw = [it for it in xnli if it.lang == "sw"][0]
    en, lang, word = answer_words(sw)
    english = {"Entail", "Neutral", "Contradict"}  # ans_lang/en.json
    assert lang == "sw" and en in english and word not in english
    with pytest.raises(XtlError, match="English on both sides|does not give"):
        answer_words([it for it in xnli if it.lang == "en"][0])
    xquad = xtl.load_task("xquad", langs=["de"], limit=1, data_root=shared_data)
    assert set(xquad[0].meta["answers"]) == {"en", "de"} and xquad[0].meta["answers"]["de"] == xquad[0].gold


def test_the_report_draws_a_language_lens(tiny_models, tmp_path):
    from xtl.figures.report import build_report

    _, model = tiny_models["llama"]
    items = _items()
    lens = xtl.lens_languages(model, items, transplant=(1, 0), progress=False)
    df = xtl.evaluate(xtl.sweep(model, items, site="mlp", src_layers=[1], tgt_layers=[0], max_new_tokens=2,
                                progress=False), items, model=None)
    page = build_report(df, tmp_path / "r.html", language_lens=lens).read_text(encoding="utf-8")
    assert "Latent language of the answer (logit lens)" in page and "answer probability by language" in page
