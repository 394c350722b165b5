"""The transplant primitive: capture a site at the last prompt token, put it into another prompt.

Semantics (paper section 2.1 and the authors' code): the activation of ``site`` at layer ``i``
and the *last prompt token* of the source prompt replaces the same site at layer ``j`` and the
last prompt token of the target prompt, in the prompt pass only. Generation then continues
greedily with no further patching; the KV cache keeps what the patched prompt pass computed.

Every prompt pass in xtl is computed the same way, as a cached pass over all tokens but the
last, then a single-token pass for the last token. Capture, transplant and the sweep engine
share it, so transplanting a layer into itself from the same prompt is bitwise the vanilla run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from xtl.models.backends import Model

from xtl.errors import SiteError
from xtl.patching.decode import greedy_decode
from xtl.patching.ops import broadcast_cache, log_probs, patch_hook, prefix_cache
from xtl.patching.prompts import (check_count, check_layer, check_model, check_site, format_prompt,
                                  stop_token_ids, tokenize)
from xtl.patching.sites import Site

__all__ = ["Capture", "TransplantResult", "capture", "capture_tokens", "transplant", "vanilla",
           "last_token_logits"]


@dataclass(frozen=True)
class Capture:
    """A site's activations at a prompt's last token, for every layer (CPU or model device).

    ``acts`` has shape ``[layer, d_model]``, or ``[layer, n_heads, d_head]`` for heads.
    """

    site: Site
    acts: Float[Tensor, "layer ..."]
    prompt: str
    tokens: Int[Tensor, "pos"]


@dataclass(frozen=True)
class TransplantResult:
    """Vanilla and transplanted responses of one target prompt, plus first-token log-probs."""

    target_prompt: str
    site: Site
    src_layer: int
    tgt_layer: int
    vanilla_text: str
    vanilla_tokens: list[int]
    text: str
    tokens: list[int]
    first_logprobs: Float[Tensor, "vocab"] = field(repr=False)
    vanilla_first_logprobs: Float[Tensor, "vocab"] = field(repr=False)


def last_token_logits(model: Model, cache: Any,
                      last_token: Tensor, hooks: Sequence = ()) -> Float[Tensor, "batch vocab"]:
    """Run the last prompt token (batch 1) on ``cache`` with optional hooks; returns logits."""
    with model.hooks(fwd_hooks=list(hooks)):
        logits = model(last_token.reshape(1, 1).to(model.cfg.device), past_kv_cache=cache)
    return logits[:, -1]


@torch.no_grad()
def capture(model: Model, prompt: str, site: "str | Site", chat: bool | None = None) -> Capture:
    """The site's activation at the prompt's last token, for every layer.

    Args:
        model: a Model from :func:`xtl.load_model`.
        prompt: the source prompt (raw by default).
        site: ``"attn"``, ``"mlp"``, ``"block"`` or ``"heads:0,3"`` (all heads are captured).
        chat: wrap the prompt in the tokenizer's chat template.
    """
    check_model(model)
    site = Site.parse(site)
    check_site(model, site)
    tokens = tokenize(model, format_prompt(model, prompt, chat), what="source prompt")
    acts = capture_tokens(model, tokens, site)
    return Capture(site=site, acts=acts, prompt=prompt, tokens=tokens)


def capture_tokens(model: Model, tokens: Int[Tensor, "pos"], site: Site) -> Float[Tensor, "layer ..."]:
    """The site's source activation at the last of ``tokens``, for every layer (one pass)."""
    stored: dict[int, Tensor] = {}

    def make(layer: int):
        def hook(act: Tensor, hook=None) -> None:  # noqa: ARG001
            stored[layer] = act[0, -1].detach().clone()
        return hook

    hooks = [(site.source_hook_name(l), make(l)) for l in range(model.cfg.n_layers)]
    cache = prefix_cache(model, tokens)
    with model.hooks(fwd_hooks=hooks):  # no unembedding: only the sites are needed
        model(tokens[-1].reshape(1, 1).to(model.cfg.device), past_kv_cache=cache, return_type=None)
    return torch.stack([stored[l] for l in range(model.cfg.n_layers)])


@torch.no_grad()
def vanilla(model: Model, prompt: str, max_new_tokens: int = 20,
            chat: bool | None = None) -> tuple[str, list[int], Tensor]:
    """Greedy response of the unpatched model: (text, token ids, first-token log-probs)."""
    check_model(model)
    check_count(max_new_tokens, "max_new_tokens")
    tokens = tokenize(model, format_prompt(model, prompt, chat), max_new_tokens)
    cache = prefix_cache(model, tokens)
    logits = last_token_logits(model, cache, tokens[-1])
    ids, _, _ = greedy_decode(model, cache, logits, max_new_tokens, stop_token_ids(model))
    text = model.tokenizer.decode(ids[0], skip_special_tokens=True)
    return text, ids[0], log_probs(logits)[0].cpu()


@torch.no_grad()
def transplant(model: Model, target_prompt: str, source: "str | Capture",
               src_layer: int, tgt_layer: int, site: "str | Site" = "mlp",
               max_new_tokens: int = 20, chat: bool | None = None) -> TransplantResult:
    """Transplant ``site`` from layer ``src_layer`` of ``source`` into ``tgt_layer`` of the target.

    Args:
        model: a Model from :func:`xtl.load_model`.
        target_prompt: the prompt that is answered.
        source: the source prompt, or a :class:`Capture` of it (reused across calls).
        src_layer: source layer ``i`` (negative counts from the end).
        tgt_layer: target layer ``j``, independent of ``i``.
        site: ``"attn"``, ``"mlp"``, ``"block"`` or ``"heads:0,3"``.
        max_new_tokens: greedy tokens to generate (the paper uses 20).
        chat: apply the tokenizer's chat template to both prompts.
    """
    check_model(model)
    check_count(max_new_tokens, "max_new_tokens")
    site = Site.parse(site)
    check_site(model, site)
    i = check_layer(model, src_layer, "source layer")
    j = check_layer(model, tgt_layer, "target layer")
    if isinstance(source, Capture):
        if Site.parse(source.site).kind != site.kind:
            raise SiteError(f"the capture is of site {source.site}, not {site}; capture that site")
        src = source
    else:
        src = capture(model, source, Site(site.kind, None) if site.kind != "heads" else site, chat)
    tokens = tokenize(model, format_prompt(model, target_prompt, chat), max_new_tokens, "target prompt")
    stop = stop_token_ids(model)
    base = prefix_cache(model, tokens)

    van_cache = broadcast_cache(base)
    van_logits = last_token_logits(model, van_cache, tokens[-1])
    van_ids, _, _ = greedy_decode(model, van_cache, van_logits, max_new_tokens, stop)

    cache = broadcast_cache(base)
    hook = (site.hook_name(j), patch_hook(site, src.acts[i][None]))
    logits = last_token_logits(model, cache, tokens[-1], [hook])
    ids, _, _ = greedy_decode(model, cache, logits, max_new_tokens, stop)
    decode = model.tokenizer.decode
    return TransplantResult(
        target_prompt=target_prompt, site=site, src_layer=i, tgt_layer=j,
        vanilla_text=decode(van_ids[0], skip_special_tokens=True), vanilla_tokens=van_ids[0],
        text=decode(ids[0], skip_special_tokens=True), tokens=ids[0],
        first_logprobs=log_probs(logits)[0].cpu(),
        vanilla_first_logprobs=log_probs(van_logits)[0].cpu(),
    )
