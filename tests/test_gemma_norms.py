"""Gemma's RMSNorm on the hooked backend in bfloat16 equals Hugging Face's bitwise: the exact
float32 ``1 + weight`` and one rounding (TransformerLens' own holds ``1 + weight`` in bfloat16)."""

from __future__ import annotations

import pytest
import torch

import conformance as C
import xtl
from xtl.models.backends import hooked_available

pytestmark = pytest.mark.skipif(not hooked_available(), reason="HookedTransformer needs TransformerLens 3")

KEY = "gemma3-1b-it"


def _offsets(seed: int = 0):
    """The shrunk Gemma 3 with every norm weight a small random offset (real checkpoints hold
    such offsets; a fresh init holds zeros, which bfloat16 keeps exactly)."""
    hf = C.model(KEY)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.01)
    return hf


def _pairs(model, hf):
    layer = hf.model.layers[1]
    return [(model.blocks[1].ln1, layer.input_layernorm), (model.blocks[1].ln2_post, layer.post_feedforward_layernorm),
            (model.blocks[1].attn.q_norm, layer.self_attn.q_norm), (model.ln_final, hf.model.norm)]


def _check(model, hf):
    x = torch.randn(2, 5, model.cfg.d_model, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    for ours, theirs in _pairs(model, hf):
        width = ours.w.shape[0]
        assert torch.equal(ours(x[..., :width]), theirs(x[..., :width])), ours


def test_the_hooked_norms_equal_hugging_faces_in_bfloat16_from_a_model_and_from_a_folder(tmp_path):
    hf = _offsets()
    ref = hf.to(torch.bfloat16)
    model = xtl.from_hf(_offsets(), C.tokenizer(KEY), dtype="bfloat16", device="cpu", backend="hooked")
    _check(model, ref)
    # TransformerLens' own norm (its bfloat16 1 + weight, rounded first) is not Hugging Face's here
    x = torch.randn(2, 5, model.cfg.d_model, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    ln = model.blocks[1].ln1
    assert not torch.equal(type(ln).forward(ln, x), ref.model.layers[1].input_layernorm(x))
    _offsets().save_pretrained(tmp_path / "m")
    C.tokenizer(KEY).save_pretrained(tmp_path / "m")
    folder = xtl.load_model(str(tmp_path / "m"), dtype="bfloat16", device="cpu", backend="hooked")
    _check(folder, ref)


def test_float32_keeps_transformerlens_own_norms():
    model = xtl.from_hf(_offsets(), C.tokenizer(KEY), dtype="float32", device="cpu", backend="hooked")
    assert not any(hasattr(m, "w_exact") for m in model.modules())


def test_a_source_that_does_not_map_changes_nothing():
    from xtl.models.gemmanorm import exact_gemma_norms

    hf = _offsets()
    model = xtl.from_hf(_offsets(), C.tokenizer(KEY), dtype="bfloat16", device="cpu", backend="hooked")
    params = dict(hf.named_parameters())
    assert exact_gemma_norms(model, [], params.__getitem__) == 0                          # no names: no change
    shifted = {k: v.detach() + (0.5 if "norm" in k else 0.0) for k, v in params.items()}
    assert exact_gemma_norms(model, list(shifted), shifted.__getitem__) == 0              # another weight: refused
    assert exact_gemma_norms(model, list(params), lambda k: params[k].detach()) == 25    # the same: every norm
