"""Gemma's RMSNorm on the hooked backend, computed as Hugging Face computes it in low precision.

Gemma stores each norm's weight as an offset: the output is ``x_norm · (1 + weight)``. Hugging
Face computes that product in float32 (``1 + weight`` exact) and rounds once to the model's dtype.
TransformerLens 3's RMSNorm holds ``1 + weight`` as a parameter of the model's dtype (bfloat16:
resolution 2⁻⁷ near 1, so offsets under ~0.004 vanish) and rounds the normalised input before the
product. Where xtl builds a Gemma HookedTransformer in 16 bits, each RMSNorm keeps the exact
float32 ``1 + weight`` from the source weights beside its parameter and multiplies in float32, as
Hugging Face does: ``1 + weight`` of the weight as the 16-bit model holds it (a float32 source is
rounded first, as ``hf_model.to(torch.bfloat16)`` rounds it). A mapping whose weight lies more than a
16-bit step from TransformerLens' own parameter is not applied (nothing changes).
"""

from __future__ import annotations

import logging
import re
import types
from typing import Any, Callable, Iterable

import torch
from torch import Tensor

log = logging.getLogger(__name__)

__all__ = ["GEMMA_ARCHS", "exact_gemma_norms"]

#: The Gemma architectures HookedTransformer builds whose norms hold an offset weight.
GEMMA_ARCHS = frozenset({"GemmaForCausalLM", "Gemma3ForCausalLM", "Gemma3ForConditionalGeneration"})

#: How far TransformerLens' rounded ``1 + weight`` may lie from the exact one: a step of float16/bfloat16 at 1..2.
ULP = 2.0 ** -7

#: TransformerLens' norm (under ``blocks.{i}.``) -> Hugging Face's (under ``layers.{i}.``).
_LAYER_NORMS = {"ln1": "input_layernorm", "ln1_post": "post_attention_layernorm", "ln2": "pre_feedforward_layernorm",
                "ln2_post": "post_feedforward_layernorm", "attn.q_norm": "self_attn.q_norm",
                "attn.k_norm": "self_attn.k_norm"}
#: Gemma 1 has no post norms: its ``post_attention_layernorm`` is the norm before the MLP.
_GEMMA1 = {"ln1": "input_layernorm", "ln2": "post_attention_layernorm"}


def _source_names(names: Iterable[str]) -> tuple[dict[tuple[int, str], str], str | None]:
    """The language model's norm weights among ``names``: (layer, norm) -> name, and the final norm's."""
    names = [n for n in names if "vision" not in n and "multi_modal" not in n]
    layers: dict[tuple[int, str], str] = {}
    final = None
    for name in names:
        if m := re.search(r"layers\.(\d+)\.(.+)\.weight$", name):
            layers[(int(m.group(1)), m.group(2))] = name
        elif re.search(r"(^|\.)norm\.weight$", name):
            final = name
    return layers, final


def _forward(self: Any, x: Tensor) -> Tensor:
    """Hugging Face's Gemma RMSNorm: ``x / rms(x) · (1 + weight)`` in float32, rounded once."""
    xf = x.float()
    var = xf.pow(2).mean(-1, keepdim=True) + self.eps
    self.hook_scale(var.sqrt())  # observed as TransformerLens names it; the product uses rsqrt, as HF
    normed = self.hook_normalized(xf * torch.rsqrt(var))
    return (normed * self.w_exact).to(x.dtype)


def exact_gemma_norms(model: Any, names: Iterable[str], get: Callable[[str], Tensor], gemma1: bool = False) -> int:
    """Give each RMSNorm of a 16-bit Gemma HookedTransformer ``model`` the exact float32
    ``1 + weight`` of its source tensor (``get(name)`` of the source's ``names``) and Hugging
    Face's float32 product; returns how many norms changed (0 where the model is in 32 bits or the
    source's names do not map to every norm)."""
    dtype = model.cfg.dtype
    if dtype in (torch.float32, torch.float64):
        return 0
    layers, final = _source_names(names)
    table = _GEMMA1 if gemma1 else _LAYER_NORMS
    plan: list[tuple[Any, str]] = []
    for i, block in enumerate(model.blocks):
        for tl_name, hf_name in table.items():
            module = _submodule(block, tl_name)
            if module is None:  # a norm this Gemma has not (q/k norms before Gemma 3)
                continue
            if (i, hf_name) not in layers:
                return _skip(f"no source weight for blocks.{i}.{tl_name}")
            plan.append((module, layers[(i, hf_name)]))
    if final is None:
        return _skip("no final norm weight in the source")
    plan.append((model.ln_final, final))
    exact = []
    for module, name in plan:
        w = 1.0 + get(name).to(dtype).to(torch.float32)  # the weight as a 16-bit model holds it, as HF's
        # TransformerLens rounded 1 + weight once (from the source's precision): within one step of 16 bits
        if w.shape != module.w.shape or not torch.allclose(w, module.w.detach().cpu().float(), rtol=0, atol=ULP):
            return _skip(f"{name} does not give TransformerLens' own {type(module).__name__} weight")
        exact.append(w)
    for (module, _), w in zip(plan, exact):
        module.register_buffer("w_exact", w.to(module.w.device), persistent=False)
        module.forward = types.MethodType(_forward, module)
    return len(plan)


def _submodule(block: Any, name: str) -> Any:
    try:
        return block.get_submodule(name)
    except AttributeError:
        return None


def _skip(why: str) -> int:
    log.info("Gemma norms stay TransformerLens' own (%s)", why)
    return 0
