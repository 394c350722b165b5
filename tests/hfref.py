"""The transplant written with plain Hugging Face forward hooks, for every architecture of
``tests/configs``: what the conformance tests compare xtl against.

A site is the tensor a decoder layer adds to its residual stream (docs/semantics.md):

| model type | layers | ``block`` | ``attn`` | ``mlp`` |
|---|---|---|---|---|
| llama, mistral, qwen2, qwen3, qwen3_moe, phi3, smollm3, granite, cohere | ``model.layers`` | layer output | ``self_attn`` output | ``mlp`` output |
| gemma2, gemma3_text, gemma4_text, olmo2 (post-norm) | ``model.layers`` (``model.language_model.layers`` multimodal) | layer output | ``post_attention_layernorm`` output | ``post_feedforward_layernorm`` output |
| gpt_neox | ``gpt_neox.layers`` | layer output | ``attention`` output | ``mlp`` output |
| bloom | ``transformer.h`` | layer output | ``self_attention.dense`` output (the module adds the residual itself) | ``mlp.dense_4h_to_h`` output (same) |

Granite multiplies ``attn`` and ``mlp`` by ``residual_multiplier`` in the layer's own code: the same
constant at every layer, so replacing the tensor before or after it is the same intervention.
Cohere and GPT-NeoX add attention and MLP in parallel; Gemma 4 scales each layer's output by its
``layer_scalar`` (inside ``block``). Capture is at the source's last prompt token; the target's last
prompt token is replaced in the prompt pass only, then ``generate`` decodes greedily.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch


def decoder_layers(hf) -> Any:
    """The decoder layer list of ``hf`` (text model of a multimodal one)."""
    for path in ("model.language_model.layers", "model.layers", "gpt_neox.layers", "transformer.h"):
        obj = hf
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return obj
    raise ValueError(f"no decoder layer list in {type(hf).__name__}")


def site_module(hf, layer: int, kind: str) -> torch.nn.Module:
    """The module whose output is site ``kind`` (block, attn, mlp) at ``layer`` (table above)."""
    block = decoder_layers(hf)[layer]
    if kind == "block":
        return block
    model_type = hf.config.get_text_config().model_type
    if model_type == "bloom":
        return block.self_attention.dense if kind == "attn" else block.mlp.dense_4h_to_h
    if model_type == "gpt_neox":
        return block.attention if kind == "attn" else block.mlp
    if hasattr(block, "post_feedforward_layernorm"):  # post-norm: what is added is normalised
        return block.post_attention_layernorm if kind == "attn" else block.post_feedforward_layernorm
    return block.self_attn if kind == "attn" else block.mlp


def _first(out):
    return out[0] if isinstance(out, tuple) else out


@dataclass(frozen=True)
class Reference:
    """What plain Hugging Face gives: generated ids (stop id excluded) and the first step's logits."""

    tokens: list[int]
    first_logits: torch.Tensor


def generate(hf, ids: Sequence[int], max_new: int, eos: Sequence[int]) -> Reference:
    """Greedy ``generate`` of ``hf`` from prompt ``ids``, stopping at any of ``eos``."""
    x = torch.tensor([list(ids)])
    pad = hf.generation_config.pad_token_id
    with torch.no_grad():
        out = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=max_new, do_sample=False,
                          num_beams=1, temperature=None, top_p=None, top_k=None, repetition_penalty=None,
                          eos_token_id=list(eos), pad_token_id=eos[0] if pad is None else pad,
                          return_dict_in_generate=True, output_logits=True)
    new = out.sequences[0, x.shape[1]:].tolist()
    stop = next((n for n, t in enumerate(new) if t in set(eos)), len(new))
    return Reference(new[:stop], out.logits[0][0].detach().float().clone())


def capture(hf, ids: Sequence[int], layer: int, kind: str) -> torch.Tensor:
    """Site ``kind`` of layer ``layer`` at the last of ``ids``."""
    store = {}
    handle = site_module(hf, layer, kind).register_forward_hook(
        lambda m, a, out: store.__setitem__("v", _first(out)[0, -1].detach().clone()))
    try:
        with torch.no_grad():
            hf(torch.tensor([list(ids)]))
    finally:
        handle.remove()
    return store["v"]


def transplant(hf, source_ids: Sequence[int], target_ids: Sequence[int], i: int, j: int, kind: str,
               max_new: int, eos: Sequence[int]) -> Reference:
    """Site ``kind`` of layer ``i`` (source's last token) into layer ``j`` (target's last prompt
    token), prompt pass only, then greedy decoding."""
    value = capture(hf, source_ids, i, kind)
    calls = {"n": 0}

    def post(m, a, out):
        calls["n"] += 1
        if calls["n"] > 1:  # the prompt pass only
            return None
        t = _first(out).clone()
        t[0, -1] = value.to(t.dtype)
        return (t,) + tuple(out[1:]) if isinstance(out, tuple) else t

    handle = site_module(hf, j, kind).register_forward_hook(post)
    try:
        return generate(hf, target_ids, max_new, eos)
    finally:
        handle.remove()


def final_logits(hf, ids: Sequence[int]) -> torch.Tensor:
    """The logits of the last of ``ids`` (the model's own head: scaling and soft-cap included)."""
    with torch.no_grad():
        return hf(torch.tensor([list(ids)])).logits[0, -1].float()


def head_inputs(hf, ids: Sequence[int], steps: int) -> list[torch.Tensor]:
    """The unembedding's input at the last prompt token and at the next ``steps - 1`` greedy steps."""
    seen: list[torch.Tensor] = []
    handle = hf.get_output_embeddings().register_forward_hook(
        lambda m, a, out: seen.append(a[0][0, -1].detach().clone()))
    try:
        x = torch.tensor([list(ids)])
        with torch.no_grad():
            hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=steps, min_new_tokens=steps,
                        do_sample=False, num_beams=1, temperature=None, top_p=None, top_k=None,
                        repetition_penalty=None, pad_token_id=0)
    finally:
        handle.remove()
    return seen[:steps]
