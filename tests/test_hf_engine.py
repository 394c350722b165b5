"""The shared-prefix engine on Hugging Face modules (bridge models): token-identical to single
transplants on the same backend and to plain Hugging Face forward hooks on every architecture the
bridge serves, equal to the per-step path, first-token statistics included; the plain view it runs
leaves the bridge untouched; models and sites it cannot serve fall back with the reason."""

from __future__ import annotations

import pytest
import torch

import xtl
from xtl.engine import Pair, engines, sweep
from xtl.engine.hf import unsupported
from xtl.patching.sites import Site
from helpers import BRIDGE_ARCHS, PROMPTS
from reference import assert_sweep_equals_transplant, hf_reference

MAX_NEW = 8
PAIRS = [Pair(PROMPTS["zh"], PROMPTS["en"], "p0", {"lang": "en", "dataset": "toy"})]


def _sites(arch: str) -> list[str]:
    # Granite's bridge scales attention and MLP outputs inside its own block code: those two
    # sites take the per-step path (tested below), the others the engine.
    return ["block", "heads:0,2"] if arch == "granite" else ["attn", "mlp", "block", "heads:0,2", "attn-authors"]


@pytest.mark.parametrize("arch", BRIDGE_ARCHS)
def test_engine_is_token_identical_to_transplant_and_to_hugging_face_hooks(bridged, tokenizer, arch):
    hf, model = bridged[arch]
    for site in _sites(arch):
        assert unsupported(model, Site.parse(site)) is None, (arch, site)
        df = sweep(model, PAIRS, site=site, max_new_tokens=MAX_NEW, batch_size=5, progress=False, fast=True)
        assert_sweep_equals_transplant(model, df, site, MAX_NEW, every=3)  # a spread of configurations
        for i, j in [(3, 0), (1, 2)]:
            row = df[(df.src_layer == i) & (df.tgt_layer == j)].iloc[0]
            expected = hf_reference(hf, tokenizer, PROMPTS["zh"], PROMPTS["en"], i, j, site, MAX_NEW)
            assert list(row.token_ids) == expected, (arch, site, i, j)


@pytest.mark.parametrize("arch", ["gemma2", "gemma3", "qwen3"])
def test_engine_equals_the_per_step_path_statistics_included(bridged, arch):
    _, model = bridged[arch]
    for mode in ("generate", "logits"):
        kw = dict(site="mlp", max_new_tokens=MAX_NEW, batch_size=4, progress=False, mode=mode, candidates=["A", "B"])
        fast = sweep(model, PAIRS, fast=True, **kw)
        slow = sweep(model, PAIRS, fast=False, **kw)
        assert fast.token_ids.map(list).tolist() == slow.token_ids.map(list).tolist()
        for col in ("entropy", "margin"):
            torch.testing.assert_close(torch.tensor(fast[col].values), torch.tensor(slow[col].values), atol=1e-6, rtol=0)
        got = torch.tensor(fast.cand_logprobs.map(list).tolist())
        torch.testing.assert_close(got, torch.tensor(slow.cand_logprobs.map(list).tolist()), atol=1e-6, rtol=0)
        if mode == "generate":
            torch.testing.assert_close(torch.tensor(fast.loglik.values), torch.tensor(slow.loglik.values),
                                       atol=1e-5, rtol=0)


def test_identity_on_the_engine_reproduces_vanilla(bridged):
    _, model = bridged["gemma3"]
    for site in ("attn", "mlp", "block", "heads:1,3"):
        df = sweep(model, [Pair(PROMPTS["en"], PROMPTS["en"], "same")], site=site, max_new_tokens=MAX_NEW,
                   progress=False, fast=True)
        vanilla = list(df[df.is_vanilla].iloc[0].token_ids)
        for row in df[(df.src_layer == df.tgt_layer) & ~df.is_vanilla].itertuples():
            assert list(row.token_ids) == vanilla, (site, row.src_layer)


def test_the_plain_view_shares_weights_and_leaves_the_bridge_alone(bridged, tokenizer):
    hf, model = bridged["llama"]
    plain = model.plain()
    assert plain.model.layers[0].self_attn.q_proj.weight is model.hf.model.layers[0].self_attn.original_component.q_proj.original_component.weight
    ids = torch.tensor([tokenizer(PROMPTS["en"])["input_ids"]])
    with torch.no_grad():
        # the plain HF model's computation, with the attention kernel the bridge left configured
        # (TransformerLens 4 selects eager; it may also give the head a zero bias)
        kept = hf.config._attn_implementation
        hf.config._attn_implementation = plain.config._attn_implementation
        try:
            torch.testing.assert_close(plain(ids).logits, hf(ids).logits, atol=1e-12, rtol=0)
        finally:
            hf.config._attn_implementation = kept
        before = model(ids)
        handle = plain.model.layers[1].mlp.register_forward_hook(lambda m, a, out: out * 0)
        try:
            assert torch.equal(model(ids), before)  # a hook on the view never fires in the bridge
        finally:
            handle.remove()


def test_what_the_engine_cannot_serve_falls_back_with_the_reason(bridged):
    _, model = bridged["granite"]
    why = engines.unsupported(model, Site.parse("mlp"))
    assert "blocks.0.hook_mlp_out of GraniteForCausalLM" in why
    with pytest.raises(xtl.XtlError, match="shared-prefix path cannot run this model.*GraniteForCausalLM"):
        sweep(model, PAIRS, site="mlp", max_new_tokens=2, progress=False, fast=True)
    df = sweep(model, PAIRS, site="mlp", max_new_tokens=MAX_NEW, progress=False)  # per-step path
    row = df[(df.src_layer == 2) & (df.tgt_layer == 1)].iloc[0]
    assert list(row.token_ids) == xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=2,
                                                 tgt_layer=1, site="mlp", max_new_tokens=MAX_NEW).tokens
    _, llama = bridged["llama"]
    with llama.hooks([("blocks.0.hook_mlp_out", lambda act, hook: act)]):
        assert engines.unsupported(llama) == "hooks are attached to the model"
    assert engines.unsupported(llama) is None
