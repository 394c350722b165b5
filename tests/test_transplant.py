import pytest
import torch

import xtl
from xtl.errors import PromptError, SiteError
from xtl.patching import Site, stop_token_ids, tokenize
from helpers import PROMPTS
from reference import hf_reference

SITES = ["attn", "mlp", "block", "heads:1,3", "attn-authors"]
MAX_NEW = 12


def slow_reference(model, source, target, i, j, site, max_new):
    """Recompute the whole sequence at every step, patching the fixed absolute position."""
    site = Site.parse(site)
    value = xtl.capture(model, source, site).acts[i]
    tokens = tokenize(model, target)
    pos, seq, stop = len(tokens) - 1, tokens.tolist(), stop_token_ids(model)

    def hook(act, hook=None):
        act = act.clone()
        if site.heads is None:
            act[0, pos] = value
        else:
            act[0, pos, list(site.heads)] = value[list(site.heads)]
        return act

    out = []
    with torch.no_grad(), model.hooks(fwd_hooks=[(site.hook_name(j), hook)]):
        for _ in range(max_new):
            nxt = int(model(torch.tensor([seq]))[0, -1].argmax())
            if nxt in stop:
                break
            out.append(nxt)
            seq.append(nxt)
    return out


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
@pytest.mark.parametrize("site", SITES[:-1])  # attn-authors adds the residual twice by design
def test_identity_reproduces_vanilla(tiny_models, arch, site):
    _, model = tiny_models[arch]
    for layer in range(model.cfg.n_layers):
        res = xtl.transplant(model, source=PROMPTS["en"], target=PROMPTS["en"], src_layer=layer, tgt_layer=layer,
                             site=site, max_new_tokens=MAX_NEW)
        assert res.tokens == res.vanilla_tokens
        assert torch.equal(res.first_logprobs, res.vanilla_first_logprobs)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral"])
@pytest.mark.parametrize("site", SITES)
def test_parity_with_hugging_face_hooks(tiny_models, tokenizer, arch, site):
    hf, model = tiny_models[arch]
    for i, j in [(0, 0), (3, 1), (1, 3), (2, 2), (3, 0)]:
        got = xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=i, tgt_layer=j, site=site,
                             max_new_tokens=MAX_NEW)
        expected = hf_reference(hf, tokenizer, PROMPTS["zh"], PROMPTS["en"], i, j, site, MAX_NEW)
        assert got.tokens == expected, (i, j, site)


@pytest.mark.parametrize("arch", ["mistral", "gemma3"])
@pytest.mark.parametrize("site", SITES)
def test_equals_slow_full_recompute(tiny_models, arch, site):
    _, model = tiny_models[arch]
    for i, j in [(3, 0), (0, 2), (1, 1)]:
        got = xtl.transplant(model, source=PROMPTS["en"], target=PROMPTS["zh"], src_layer=i, tgt_layer=j, site=site,
                             max_new_tokens=MAX_NEW)
        assert got.tokens == slow_reference(model, PROMPTS["en"], PROMPTS["zh"], i, j, site, MAX_NEW)


def test_transplant_changes_something(tiny_models):
    _, model = tiny_models["llama"]
    results = [xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=i, tgt_layer=0,
                              site="block", max_new_tokens=MAX_NEW)
               for i in range(model.cfg.n_layers)]
    assert any(not torch.equal(r.first_logprobs, r.vanilla_first_logprobs) for r in results)


@pytest.mark.parametrize("arch", ["qwen2", "gemma3"])
def test_all_heads_equal_attn(tiny_models, arch):
    # hook_z holds the heads' outputs *before* W_O, so all heads equal attn when i == j; for
    # i != j, heads carries layer i's z through layer j's W_O (see docs/semantics.md).
    _, model = tiny_models[arch]
    all_heads = "heads:" + ",".join(str(h) for h in range(model.cfg.n_heads))
    for i, j in [(0, 0), (2, 2), (3, 3)]:
        a = xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=i, tgt_layer=j, site="attn",
                           max_new_tokens=MAX_NEW)
        h = xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=i, tgt_layer=j,
                           site=all_heads, max_new_tokens=MAX_NEW)
        assert a.tokens == h.tokens
        torch.testing.assert_close(a.first_logprobs, h.first_logprobs, atol=1e-10, rtol=0)


def test_capture_is_reusable(tiny_models):
    _, model = tiny_models["llama"]
    cap = xtl.capture(model, PROMPTS["zh"], "mlp")
    assert cap.acts.shape == (model.cfg.n_layers, model.cfg.d_model)
    a = xtl.transplant(model, source=cap, target=PROMPTS["en"], src_layer=2, tgt_layer=1, site="mlp",
                       max_new_tokens=MAX_NEW)
    b = xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=2, tgt_layer=1, site="mlp",
                       max_new_tokens=MAX_NEW)
    assert a.tokens == b.tokens


def test_no_double_bos(tiny_models, tokenizer):
    _, model = tiny_models["llama"]
    assert tokenize(model, "hi").tolist()[:2] == [1, tokenizer("hi", add_special_tokens=False)["input_ids"][0]]
    assert tokenize(model, "<bos>hi").tolist().count(1) == 1


def test_bad_input_errors(tiny_models):
    _, model = tiny_models["llama"]
    with pytest.raises(SiteError, match="out of range"):
        xtl.transplant(model, source="b", target="a", src_layer=99, tgt_layer=0)
    with pytest.raises(SiteError, match="Did you mean 'mlp'"):
        xtl.transplant(model, source="b", target="a", src_layer=0, tgt_layer=0, site="mpl")
    with pytest.raises(SiteError, match="head"):
        xtl.transplant(model, source="b", target="a", src_layer=0, tgt_layer=0, site="heads:9")
    with pytest.raises(PromptError, match="empty"):
        xtl.transplant(model, source="b", target="  ", src_layer=0, tgt_layer=0)
    with pytest.raises(PromptError, match="context"):
        xtl.transplant(model, source="b", target="x" * 600, src_layer=0, tgt_layer=0)


def test_attn_authors_writes_source_resid_mid_into_attn_out(tiny_models):
    """attn-authors: target resid_mid becomes h_t + (h_s + a_s) at the last position."""
    _, model = tiny_models["llama"]
    i, j = 2, 1
    src = tokenize(model, PROMPTS["zh"])
    tgt = tokenize(model, PROMPTS["en"])
    _, src_cache = model.run_with_cache(src[None])
    _, tgt_cache = model.run_with_cache(tgt[None])
    h_s, a_s = src_cache[f"blocks.{i}.hook_resid_pre"][0, -1], src_cache[f"blocks.{i}.hook_attn_out"][0, -1]
    cap = xtl.capture(model, PROMPTS["zh"], "attn-authors")
    # the bridge takes its attention softmax in float32 (as HF's eager attention does): a cached
    # pass and a full pass then agree to float32 rounding, not float64's
    tol = 1e-12 if getattr(model, "backend", "hooked") == "hooked" else 1e-6
    torch.testing.assert_close(cap.acts[i], h_s + a_s, rtol=tol, atol=tol)
    seen = {}
    site = Site.parse("attn-authors")
    from xtl.patching import patch_hook
    with model.hooks(fwd_hooks=[(site.hook_name(j), patch_hook(site, cap.acts[i][None])),
                                (f"blocks.{j}.hook_resid_mid", lambda act, hook: seen.__setitem__("m", act[0, -1].clone()))]):
        model(tgt[None])
    expected = tgt_cache[f"blocks.{j}.hook_resid_pre"][0, -1] + h_s + a_s
    torch.testing.assert_close(seen["m"], expected, rtol=tol, atol=tol)
    # and it differs from the paper's attn site, which writes a_s alone
    plain = xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=i, tgt_layer=j, site="attn",
                           max_new_tokens=MAX_NEW)
    authors = xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=i, tgt_layer=j,
                             site="attn-authors", max_new_tokens=MAX_NEW)
    assert not torch.equal(plain.first_logprobs, authors.first_logprobs)
