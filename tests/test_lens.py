"""Logit lens and case studies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xtl
from xtl.errors import XtlError
from xtl.interpret import Patch, case_study, compare, lens, merge_pieces, token_text
from xtl.patching import tokenize

from helpers import PROMPTS


@pytest.mark.parametrize("arch_name", ["llama", "gemma3"])
def test_final_layer_lens_equals_model_output(tiny_models, arch_name):
    _, model = tiny_models[arch_name]
    res = lens(model, PROMPTS["en"], positions="last", k=3, track=["A"])
    tokens = tokenize(model, PROMPTS["en"])
    with torch.no_grad():
        probs = torch.softmax(model(tokens[None])[0, -1].double(), -1)
    top = probs.topk(3)
    assert res.rows[-1] == f"L{model.cfg.n_layers - 1}"
    np.testing.assert_array_equal(res.top_ids[-1, 0], top.indices.numpy())
    np.testing.assert_allclose(res.top_probs[-1, 0], top.values.numpy(), rtol=1e-10)
    a = model.tokenizer("A", add_special_tokens=False)["input_ids"][0]
    assert res.tracked["A"]["prob"][-1, 0] == pytest.approx(float(probs[a]), rel=1e-10)
    assert res.tracked["A"]["rank"][-1, 0] == int((probs > probs[a]).sum()) + 1


def test_generated_grid_follows_the_transplanted_generation(tiny_models):
    _, model = tiny_models["qwen2"]
    patch = Patch(PROMPTS["zh"], 2, 1, "mlp")
    res = lens(model, PROMPTS["en"], transplant=patch, positions="generated", k=2, max_new_tokens=6)
    ref = xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=2, tgt_layer=1, site="mlp",
                         max_new_tokens=6)
    assert res.generated == ref.tokens and res.response == ref.text
    # The final layer's top token at each step is the next generated token.
    assert res.top_ids[-1, :, 0].tolist() == ref.tokens[:len(res.positions)]
    # Step 0 is the transplanted prompt pass: same distribution as the transplant primitive.
    np.testing.assert_allclose(np.log(res.top_probs[-1, 0]),
                               ref.first_logprobs[res.top_ids[-1, 0]].double().numpy(), atol=1e-9)


def test_sublayers_and_identity_patch(tiny_models):
    _, model = tiny_models["llama"]
    van = lens(model, PROMPTS["en"], sublayers=True)
    assert van.rows[:4] == ["L0.attn", "L0.mid", "L0.mlp", "L0"]
    same = lens(model, PROMPTS["en"], transplant=Patch(PROMPTS["en"], 2, 2, "attn"), sublayers=True)
    np.testing.assert_array_equal(van.top_ids, same.top_ids)
    np.testing.assert_allclose(van.top_probs, same.top_probs)
    assert "L3" in van.table() and len(van.to_frame()) == len(van.rows) * 5


def test_readable_multibyte_tokens(tokenizer):
    ids = tokenizer("日本 a\n", add_special_tokens=False)["input_ids"]
    groups = merge_pieces(tokenizer, ids)
    assert [g[0] for g in groups] == ["日", "本", "␣", "a", "↵"]
    assert groups[0][1] == [0, 1, 2]                 # one character, three byte tokens
    assert token_text(tokenizer, ids[0]).startswith("\\x")


def test_compare_panels_and_figure(tiny_models):
    _, model = tiny_models["llama"]
    panels = compare(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=3, tgt_layer=0, site="mlp",
                     max_new_tokens=3)
    assert list(panels) == ["source vanilla", "target vanilla", "transplanted"]
    fig = panels["transplanted"].figure()
    assert fig.data[0].z.shape == (model.cfg.n_layers, len(panels["transplanted"].positions))


def test_case_study_grid(tiny_models):
    _, model = tiny_models["gemma3"]
    cs = case_study(model, source=PROMPTS["zh"], target=PROMPTS["en"], gold="A", site="attn", max_new_tokens=4)
    n = model.cfg.n_layers
    assert cs.correct.shape == (n, n)
    for i in range(n):
        for j in range(n):
            r = xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=i, tgt_layer=j,
                               site="attn", max_new_tokens=4)
            assert cs.responses[i, j] == r.text
    np.testing.assert_array_equal(cs.source_wise, cs.correct.any(1))
    np.testing.assert_array_equal(cs.target_wise, cs.correct.any(0))
    if cs.vanilla_correct:
        assert len(cs.over_guidance) == int((~cs.correct).sum())
    else:
        assert cs.over_guidance == []
    assert cs.figure().data[0].z.shape == (n, n)


def test_lens_errors(tiny_models):
    _, model = tiny_models["llama"]
    with pytest.raises(XtlError):
        lens(model, PROMPTS["en"], k=0)
    with pytest.raises(XtlError):
        lens(model, PROMPTS["en"], positions=[10_000])
    with pytest.raises(XtlError):
        case_study(model, source="a", target="b", gold="")


def test_lens_figure_colours_every_tracked_token(tiny_models):
    from xtl.errors import XtlError

    _, model = tiny_models["llama"]
    res = xtl.lens(model, PROMPTS["en"], positions="generated", max_new_tokens=3, track=["A", "B"])
    fig = res.figure(track="B")
    assert [t.name for t in fig.data] == ["top-1 probability", "p(A)", "p(B)"]
    assert [t.visible for t in fig.data] == [False, False, True]
    np.testing.assert_allclose(fig.data[1].z, res.tracked["A"]["prob"])
    labels = [b.label for b in fig.layout.updatemenus[0].buttons]
    assert labels == ["colour: top-1 probability", "colour: p(A)", "colour: p(B)"]
    assert fig.layout.yaxis.tickfont.size == 13
    with pytest.raises(XtlError, match="was not tracked"):
        res.figure(track="C")
