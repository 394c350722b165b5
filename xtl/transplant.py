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
from typing import Callable, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from xtl.errors import PromptError, SiteError
from xtl.sites import SITES, SOURCE_HOOKS, Site  # noqa: F401  (re-exported)

__all__ = ["Site", "Capture", "TransplantResult", "SITES", "capture", "transplant", "tokenize",
           "format_prompt", "stop_token_ids", "vanilla"]

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


def format_prompt(model: HookedTransformer, prompt: str, chat: bool = False) -> str:
    """The raw prompt (default: PilotSet strings are complete prompts), or its chat template."""
    if not chat:
        return prompt
    tok = model.tokenizer
    if getattr(tok, "chat_template", None) is None:
        raise PromptError("this tokenizer has no chat template; run without --chat")
    return tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                   add_generation_prompt=True)


def tokenize(model: HookedTransformer, prompt: str, max_new_tokens: int = 0,
             what: str = "prompt") -> Int[Tensor, "pos"]:
    """Token ids the way the model's own tokenizer makes them (one BOS at most).

    ``what`` names the prompt in errors (``"source prompt"``, ``"target prompt"``).
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise PromptError(f"the {what} is empty; give a non-empty prompt text")
    tok = model.tokenizer
    bos = getattr(tok, "bos_token", None)
    add_special = not (bos and prompt.startswith(bos))
    ids = tok(prompt, add_special_tokens=add_special)["input_ids"]
    if len(ids) > model.cfg.n_ctx:
        raise PromptError(f"the {what} has {len(ids)} tokens, more than the model's context of "
                          f"{model.cfg.n_ctx}; shorten it")
    if len(ids) + max_new_tokens > model.cfg.n_ctx:
        raise PromptError(
            f"the {what} of {len(ids)} tokens + {max_new_tokens} new tokens exceeds the model's "
            f"context of {model.cfg.n_ctx}; shorten the prompt or lower max_new_tokens")
    return torch.tensor(ids, dtype=torch.long)


def stop_token_ids(model: HookedTransformer) -> set[int]:
    """EOS plus the end-of-turn tokens of common chat formats present in the vocabulary."""
    tok = model.tokenizer
    ids = {tok.eos_token_id} if tok.eos_token_id is not None else set()
    for name in ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|endoftext|>"):
        tid = tok.convert_tokens_to_ids(name)  # a lookup; get_vocab() would build a 256k dict
        if isinstance(tid, int) and tid != tok.unk_token_id:
            ids.add(tid)
    return ids


def check_layer(model: HookedTransformer, layer: int, what: str) -> int:
    n = model.cfg.n_layers
    if not isinstance(layer, int) or not -n <= layer < n:
        raise SiteError(f"{what} {layer} is out of range; this model has layers 0..{n - 1}")
    return layer % n


def _check_heads(model: HookedTransformer, site: Site) -> None:
    """Check the site against the model: head indices in range, hooks the model has."""
    if site.kind == "attn-authors" and getattr(model.cfg, "parallel_attn_mlp", False):
        raise SiteError("site 'attn-authors' reads the residual stream between attention and MLP, "
                        "which this model (parallel attention and MLP) does not have; use 'attn'")
    if site.heads is not None:
        bad = [h for h in site.heads if not 0 <= h < model.cfg.n_heads]
        if bad:
            raise SiteError(f"head(s) {bad} out of range; this model has heads 0..{model.cfg.n_heads - 1}")


# ---------------------------------------------------------------- the shared prompt-pass pieces
def prefix_cache(model: HookedTransformer, tokens: Int[Tensor, "pos"]) -> TransformerLensKeyValueCache:
    """KV cache of every prompt position but the last (vanilla, batch 1)."""
    device = model.cfg.device
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, device, 1)
    if tokens.shape[0] > 1:
        model(tokens[None, :-1].to(device), past_kv_cache=cache, return_type=None)
    return cache


def clone_cache(cache: TransformerLensKeyValueCache, batch: int = 1) -> TransformerLensKeyValueCache:
    """A cache whose entries view ``cache``'s tensors, broadcast to ``batch`` rows (no copy)."""
    entries = [type(e)(past_keys=e.past_keys.expand(batch, -1, -1, -1),
                       past_values=e.past_values.expand(batch, -1, -1, -1)) for e in cache.entries]
    mask = cache.previous_attention_mask.expand(batch, -1)
    return TransformerLensKeyValueCache(entries=entries, previous_attention_mask=mask)


def patch_hook(site: Site, values: Tensor) -> Callable:
    """A hook that writes ``values`` ([batch, ...]) into the last position of the site."""

    def hook(act: Tensor, hook=None) -> Tensor:  # noqa: ARG001
        act = act.clone()
        v = values.to(act.device, act.dtype)
        if site.heads is None:
            act[:, -1] = v
        else:
            idx = list(site.heads)
            act[:, -1, idx] = v[:, idx]
        return act

    return hook


def last_token_logits(model: HookedTransformer, cache: TransformerLensKeyValueCache,
                      last_token: Tensor, hooks: Sequence = ()) -> Float[Tensor, "batch vocab"]:
    """Run the last prompt token (batch 1) on ``cache`` with optional hooks; returns logits."""
    with model.hooks(fwd_hooks=list(hooks)):
        logits = model(last_token.reshape(1, 1).to(model.cfg.device), past_kv_cache=cache)
    return logits[:, -1]


def greedy_loop(token: Tensor, logprob: Tensor, max_new_tokens: int, stop_ids: set[int],
                step: Callable[[Tensor | None, Tensor], tuple[Tensor, Tensor]],
                steps: list[list[float]] | None = None
                ) -> tuple[list[list[int]], list[float], list[bool]]:
    """Greedy bookkeeping shared by the decoders: rows leave the batch at a stop id.

    ``token``/``logprob``: each row's first greedy token and its log-prob. ``step(keep, tokens)``
    feeds ``tokens`` (after dropping the rows not in ``keep``, when ``keep`` is not None) and
    returns the next greedy token and log-prob per remaining row.
    Returns per row: generated ids (stop id excluded), summed log-likelihood, stopped flag;
    ``steps``, when given, receives each row's per-token log-probs in the order they were summed.
    """
    batch = token.shape[0]
    if steps is not None:
        steps[:] = [[] for _ in range(batch)]
    out: list[list[int]] = [[] for _ in range(batch)]
    loglik = [0.0] * batch
    stopped = [False] * batch
    active = list(range(batch))
    for n in range(max_new_tokens):
        chosen = logprob.tolist()
        keep = []
        for r, (row, t) in enumerate(zip(active, token.tolist())):
            if t in stop_ids:
                stopped[row] = True
                continue
            out[row].append(t)
            loglik[row] += chosen[r]
            if steps is not None:
                steps[row].append(chosen[r])
            keep.append(r)
        if n == max_new_tokens - 1 or not keep:
            break
        idx = None
        if len(keep) < len(active):
            idx = torch.tensor(keep, device=token.device)
            token = token[idx]
            active = [active[r] for r in keep]
        token, logprob = step(idx, token)
    return out, loglik, stopped


def greedy_decode(model: HookedTransformer, cache: TransformerLensKeyValueCache,
                  first_logits: Float[Tensor, "batch vocab"], max_new_tokens: int,
                  stop_ids: set[int]) -> tuple[list[list[int]], list[float], list[bool]]:
    """Greedy continuation of a batch whose prompt pass is in ``cache``; rows leave at a stop id.

    Returns per row: generated ids (stop id excluded), summed log-likelihood, stopped flag.
    """

    def pick(logits: Tensor) -> tuple[Tensor, Tensor]:
        logprobs = torch.log_softmax(logits if logits.dtype == torch.float64 else logits.float(), dim=-1)
        token = logits.argmax(dim=-1)
        return token, logprobs.gather(1, token[:, None])[:, 0]

    def step(idx: Tensor | None, token: Tensor) -> tuple[Tensor, Tensor]:
        if idx is not None:
            for e in cache.entries:
                e.past_keys = e.past_keys.index_select(0, idx.to(e.past_keys.device))
                e.past_values = e.past_values.index_select(0, idx.to(e.past_values.device))
            cache.previous_attention_mask = cache.previous_attention_mask.index_select(
                0, idx.to(cache.previous_attention_mask.device))
        return pick(model(token[:, None], past_kv_cache=cache)[:, -1])

    return greedy_loop(*pick(first_logits), max_new_tokens, stop_ids, step)


# ---------------------------------------------------------------- public API
@torch.no_grad()
def capture(model: HookedTransformer, prompt: str, site: "str | Site", chat: bool = False) -> Capture:
    """The site's activation at the prompt's last token, for every layer.

    Args:
        model: a HookedTransformer from :func:`xtl.load_model`.
        prompt: the source prompt (raw by default).
        site: ``"attn"``, ``"mlp"``, ``"block"`` or ``"heads:0,3"`` (all heads are captured).
        chat: wrap the prompt in the tokenizer's chat template.
    """
    site = Site.parse(site)
    _check_heads(model, site)
    tokens = tokenize(model, format_prompt(model, prompt, chat), what="source prompt")
    acts = _capture_tokens(model, tokens, site)
    return Capture(site=site, acts=acts, prompt=prompt, tokens=tokens)


def _capture_tokens(model: HookedTransformer, tokens: Tensor, site: Site) -> Tensor:
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
def vanilla(model: HookedTransformer, prompt: str, max_new_tokens: int = 20,
            chat: bool = False) -> tuple[str, list[int], Tensor]:
    """Greedy response of the unpatched model: (text, token ids, first-token log-probs)."""
    tokens = tokenize(model, format_prompt(model, prompt, chat), max_new_tokens)
    cache = prefix_cache(model, tokens)
    logits = last_token_logits(model, cache, tokens[-1])
    ids, _, _ = greedy_decode(model, cache, logits, max_new_tokens, stop_token_ids(model))
    text = model.tokenizer.decode(ids[0], skip_special_tokens=True)
    return text, ids[0], torch.log_softmax(logits[0].float(), -1).cpu()


@torch.no_grad()
def transplant(model: HookedTransformer, target_prompt: str, source: "str | Capture",
               src_layer: int, tgt_layer: int, site: "str | Site" = "mlp",
               max_new_tokens: int = 20, chat: bool = False) -> TransplantResult:
    """Transplant ``site`` from layer ``src_layer`` of ``source`` into ``tgt_layer`` of the target.

    Args:
        model: a HookedTransformer from :func:`xtl.load_model`.
        target_prompt: the prompt that is answered.
        source: the source prompt, or a :class:`Capture` of it (reused across calls).
        src_layer: source layer ``i`` (negative counts from the end).
        tgt_layer: target layer ``j``, independent of ``i``.
        site: ``"attn"``, ``"mlp"``, ``"block"`` or ``"heads:0,3"``.
        max_new_tokens: greedy tokens to generate (the paper uses 20).
        chat: apply the tokenizer's chat template to both prompts.
    """
    site = Site.parse(site)
    _check_heads(model, site)
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

    van_cache = clone_cache(base)
    van_logits = last_token_logits(model, van_cache, tokens[-1])
    van_ids, _, _ = greedy_decode(model, van_cache, van_logits, max_new_tokens, stop)

    cache = clone_cache(base)
    hook = (site.hook_name(j), patch_hook(site, src.acts[i][None]))
    logits = last_token_logits(model, cache, tokens[-1], [hook])
    ids, _, _ = greedy_decode(model, cache, logits, max_new_tokens, stop)
    decode = model.tokenizer.decode
    return TransplantResult(
        target_prompt=target_prompt, site=site, src_layer=i, tgt_layer=j,
        vanilla_text=decode(van_ids[0], skip_special_tokens=True), vanilla_tokens=van_ids[0],
        text=decode(ids[0], skip_special_tokens=True), tokens=ids[0],
        first_logprobs=torch.log_softmax(logits[0].float(), -1).cpu(),
        vanilla_first_logprobs=torch.log_softmax(van_logits[0].float(), -1).cpu(),
    )
