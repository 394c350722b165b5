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
from typing import Any, Mapping, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from xtl.models.backends import Model

from xtl._calls import deprecated, keyword_call
from xtl.errors import PromptError, SiteError
from xtl.patching.decode import greedy_decode
from xtl.patching.ops import broadcast_cache, log_probs, prefix_cache
from xtl.patching.prompts import (check_count, check_layer, check_model, check_site, format_prompt,
                                  stop_token_ids, tokenize)
from xtl.patching.sites import Site
from xtl.patching.variants import (Variant, check_positions, check_span, mix, source_weights, sources_label,
                                   variant_hooks)

__all__ = ["Capture", "TransplantResult", "VanillaResult", "capture", "capture_tokens", "capture_positions", "tail_cache",
           "transplant", "vanilla", "last_token_logits"]


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

    source: str  # the source prompt (a Capture's prompt; empty with several sources)
    target: str
    site: Site
    src_layer: int
    tgt_layer: int
    vanilla_text: str
    vanilla_tokens: list[int]
    text: str
    tokens: list[int]
    first_logprobs: Float[Tensor, "vocab"] = field(repr=False)
    vanilla_first_logprobs: Float[Tensor, "vocab"] = field(repr=False)
    variant: Variant = Variant()
    sources: str = ""  # several sources: their names (and weights), as the results table's column

    @property
    def target_prompt(self) -> str:
        """Deprecated: ``target``."""
        deprecated("TransplantResult.target_prompt is now .target")
        return self.target


@dataclass(frozen=True)
class VanillaResult:
    """Greedy response of the unpatched model to one prompt, plus its first-token log-probs."""

    prompt: str
    text: str
    tokens: list[int]
    first_logprobs: Float[Tensor, "vocab"] = field(repr=False)

    def _old(self) -> tuple[str, list[int], Tensor]:
        deprecated("xtl.vanilla returns a VanillaResult; read .text, .tokens and .first_logprobs "
                   "instead of unpacking (text, tokens, logprobs)", stacklevel=4)
        return self.text, self.tokens, self.first_logprobs

    def __iter__(self):
        """Deprecated: ``text, tokens, logprobs = xtl.vanilla(...)`` (the old tuple)."""
        return iter(self._old())

    def __getitem__(self, index: int) -> Any:
        """Deprecated: ``xtl.vanilla(...)[1]`` (the old tuple)."""
        return self._old()[index]


def last_token_logits(model: Model, cache: Any,
                      last_token: Tensor, hooks: Sequence = ()) -> Float[Tensor, "batch vocab"]:
    """Run the last prompt token (batch 1) on ``cache`` with optional hooks; returns logits."""
    with model.hooks(fwd_hooks=list(hooks)):
        logits = model(last_token.reshape(1, 1).to(model.cfg.device), past_kv_cache=cache)
    return logits[:, -1]


@keyword_call("xtl.capture", "xtl.capture(model, prompt, site, chat=...)", positional=3, legacy=("chat",))
@torch.no_grad()
def capture(model: Model, prompt: str, site: "str | Site", *, chat: bool | None = None) -> Capture:
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


def tail_cache(model: Model, tokens: Int[Tensor, "pos"], positions: int = 1) -> Any:
    """KV cache of every prompt position before the last ``positions`` (vanilla, batch 1): the
    prefix shared up to the first patched position (:func:`prefix_cache` for ``positions=1``)."""
    return prefix_cache(model, tokens[:tokens.shape[0] - positions + 1])


def capture_positions(model: Model, tokens: Int[Tensor, "pos"], site: Site,
                      positions: int = 1) -> Float[Tensor, "layer positions ..."]:
    """The site's source activation at the last ``positions`` of ``tokens``, for every layer
    (``positions=1``: :func:`capture_tokens`; else one pass over those positions on
    :func:`tail_cache`, as the target's patched pass computes them)."""
    if positions == 1:
        return capture_tokens(model, tokens, site)[:, None]
    stored: dict[int, Tensor] = {}

    def make(layer: int):
        def hook(act: Tensor, hook=None) -> None:  # noqa: ARG001
            stored[layer] = act[0, -positions:].detach().clone()
        return hook

    hooks = [(site.source_hook_name(l), make(l)) for l in range(model.cfg.n_layers)]
    cache = tail_cache(model, tokens, positions)
    with model.hooks(fwd_hooks=hooks):
        model(tokens[None, -positions:].to(model.cfg.device), past_kv_cache=cache, return_type=None)
    return torch.stack([stored[l] for l in range(model.cfg.n_layers)])


@keyword_call("xtl.vanilla", "xtl.vanilla(model, prompt, max_new_tokens=..., chat=...)", positional=2,
              legacy=("max_new_tokens", "chat"))
@torch.no_grad()
def vanilla(model: Model, prompt: str, *, max_new_tokens: int = 20, chat: bool | None = None) -> VanillaResult:
    """Greedy response of the unpatched model (text, token ids, first-token log-probs).

    Args:
        model: a Model from :func:`xtl.load_model`.
        prompt: the prompt (raw by default).
        max_new_tokens: greedy tokens to generate.
        chat: apply the tokenizer's chat template.
    """
    check_model(model)
    check_count(max_new_tokens, "max_new_tokens")
    tokens = tokenize(model, format_prompt(model, prompt, chat), max_new_tokens)
    cache = prefix_cache(model, tokens)
    logits = last_token_logits(model, cache, tokens[-1])
    ids, _, _ = greedy_decode(model, cache, logits, max_new_tokens, stop_token_ids(model))
    text = model.tokenizer.decode(ids[0], skip_special_tokens=True)
    return VanillaResult(prompt, text, ids[0], log_probs(logits)[0].cpu())


TRANSPLANT_CALL = "xtl.transplant(model, source=..., target=..., src_layer=..., tgt_layer=..., site=...)"


@keyword_call("xtl.transplant", TRANSPLANT_CALL, renamed={"target_prompt": "target"})
@torch.no_grad()
def transplant(model: Model, *, source: "str | Capture | None" = None, target: str,
               src_layer: int, tgt_layer: int, site: "str | Site" = "mlp",
               max_new_tokens: int = 20, chat: bool | None = None, alpha: float = 1.0, span: int = 1,
               positions: int = 1, sources: "Mapping[str, str | Capture] | None" = None,
               weights: "Sequence[float] | Mapping[str, float] | None" = None,
               extrapolate: bool = False) -> TransplantResult:
    """Transplant ``site`` from layer ``src_layer`` of ``source`` into ``tgt_layer`` of ``target``.

    Everything after the model is keyword-only:
    ``xtl.transplant(model, source=src, target=tgt, src_layer=9, tgt_layer=3, site="mlp")``.

    Args:
        model: a Model from :func:`xtl.load_model`.
        source: the source prompt, or a :class:`Capture` of it (reused across calls); None
            with ``sources``.
        target: the prompt that is answered (``target_prompt=`` in xtl 0.3).
        src_layer: source layer ``i`` (negative counts from the end).
        tgt_layer: target layer ``j``, independent of ``i``.
        site: ``"attn"``, ``"mlp"``, ``"block"`` or ``"heads:0,3"``.
        max_new_tokens: greedy tokens to generate (the paper uses 20).
        chat: apply the tokenizer's chat template to both prompts.
        alpha: blend ``a_t <- (1 - alpha) a_t + alpha a_s`` (1: the paper's replacement).
        span: layers ``i..i+span-1`` into ``j..j+span-1``.
        positions: the last ``positions`` prompt positions, aligned from the end.
        sources: several source prompts by name, e.g. ``{"zh": ..., "ja": ...}``: the site's
            activation is their weighted mean.
        weights: the sources' weights (a list in their order, or by name; default equal),
            normalised to sum 1.
        extrapolate: allow ``alpha`` outside [0, 1] (an extrapolation, not a blend).
    """
    check_model(model)
    check_count(max_new_tokens, "max_new_tokens")
    site = Site.parse(site)
    check_site(model, site)
    i = check_layer(model, src_layer, "source layer")
    j = check_layer(model, tgt_layer, "target layer")
    variant = Variant(alpha=alpha, span=span, positions=positions, extrapolate=extrapolate)
    check_span(model.cfg.n_layers, span, i, j)
    named = _sources(source, sources, weights)
    w = source_weights(list(named), weights) if sources is not None else None
    tokens = tokenize(model, format_prompt(model, target, chat), max_new_tokens, "target prompt")
    check_positions(positions, ("target prompt", tokens.shape[0]))
    acts = [_source_acts(model, src, site, positions, chat, what) for what, src in named.items()]
    values = mix(acts, w)  # [layer, positions, ...]
    stop = stop_token_ids(model)
    base = prefix_cache(model, tokens)

    van_cache = broadcast_cache(base)
    van_logits = last_token_logits(model, van_cache, tokens[-1])
    van_ids, _, _ = greedy_decode(model, van_cache, van_logits, max_new_tokens, stop)

    hooks = variant_hooks(site, values[i:i + span][None], j, variant.alpha)
    if positions == 1:
        cache = broadcast_cache(base)
        logits = last_token_logits(model, cache, tokens[-1], hooks)
    else:
        cache = tail_cache(model, tokens, positions)
        with model.hooks(fwd_hooks=hooks):
            logits = model(tokens[None, -positions:].to(model.cfg.device), past_kv_cache=cache)[:, -1]
    ids, _, _ = greedy_decode(model, cache, logits, max_new_tokens, stop)
    decode = model.tokenizer.decode
    return TransplantResult(
        source="" if sources is not None else source.prompt if isinstance(source, Capture) else source,
        target=target, site=site, src_layer=i, tgt_layer=j,
        vanilla_text=decode(van_ids[0], skip_special_tokens=True), vanilla_tokens=van_ids[0],
        text=decode(ids[0], skip_special_tokens=True), tokens=ids[0],
        first_logprobs=log_probs(logits)[0].cpu(),
        vanilla_first_logprobs=log_probs(van_logits)[0].cpu(),
        variant=Variant(alpha=variant.alpha, span=span, positions=positions, weights=w, extrapolate=extrapolate),
        sources=sources_label(list(named), w) if sources is not None else "",
    )


def _sources(source: Any, sources: Any, weights: Any) -> dict[str, Any]:
    """The source(s) by name: ``{"source prompt": source}``, or ``sources`` checked."""
    if sources is None:
        if source is None:
            raise PromptError("give the source prompt (source=...), or several (sources={'zh': ..., 'ja': ...})")
        if weights is not None:
            raise PromptError("weights apply to several sources; give them as sources={'zh': ..., 'ja': ...}")
        return {"source prompt": source}
    if source is not None:
        raise PromptError("give one source prompt (source=...) or several (sources=...), not both")
    if not isinstance(sources, Mapping) or not sources:
        raise PromptError(f"sources must be a non-empty dict of name -> source prompt, not {sources!r}")
    return {f"source {name}": p for name, p in sources.items()}


def _source_acts(model: Model, source: "str | Capture", site: Site, positions: int, chat: bool | None,
                 what: str) -> Tensor:
    """One source's site at every layer and the last ``positions`` positions ``[layer, positions, ...]``."""
    if isinstance(source, Capture):
        if Site.parse(source.site).kind != site.kind:
            raise SiteError(f"the capture is of site {source.site}, not {site}; capture that site")
        if positions != 1:
            raise PromptError(f"a Capture holds the last position only; give the {what} as text for positions={positions}")
        return source.acts[:, None]
    tokens = tokenize(model, format_prompt(model, source, chat), what=what)
    check_positions(positions, (what, tokens.shape[0]))
    return capture_positions(model, tokens, Site(site.kind, None) if site.kind != "heads" else site, positions)
