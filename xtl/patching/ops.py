"""The primitives every path shares: write a site, share a cache, decode the residual stream,
and summarise a first token. The single transplant, the sweep kernel, the TransformerLens
path and the logit lens all call these, so they cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor
from xtl.models.backends import Model
from transformer_lens.utilities.activation_functions import apply_softcap

from xtl.models.adapters import adapter_of, cache_adapter
from xtl.models.facts import scale_logits
from xtl.patching.sites import Site

__all__ = ["write_site", "patch_hook", "prefix_cache", "broadcast_cache", "select_rows", "decode_resid",
           "apply_softcap", "Next", "log_probs", "first_token_stats", "first_token_margin"]


def write_site(act: Tensor, values: Tensor, heads: tuple[int, ...] | None = None,
               rows: slice = slice(None), pos: int | None = -1) -> Tensor:
    """A copy of ``act`` whose ``rows`` at position ``pos`` hold ``values``.

    ``act``: ``[batch, pos, ...]`` (``pos=None``: ``[batch, ...]`` with no position axis);
    ``values``: ``[rows, ...]``. With ``heads``, only those heads (axis after the position)
    are written, from the same heads of ``values``.
    """
    out = act.clone()
    v = values.to(out.device, out.dtype)
    view = out[rows] if pos is None else out[rows, pos]
    if heads is None:
        view[...] = v
    else:
        idx = list(heads)
        view[:, idx] = v[:, idx]
    return out


def patch_hook(site: Site, values: Tensor, pos: int = -1) -> Callable:
    """A TransformerLens hook that writes ``values`` (``[batch, ...]``) into position ``pos``."""

    def hook(act: Tensor, hook=None) -> Tensor:  # noqa: ARG001
        return write_site(act, values, site.heads, pos=pos)

    return hook


def prefix_cache(model: Model, tokens: Int[Tensor, "pos"]) -> Any:
    """KV cache of every prompt position but the last (vanilla, batch 1), of the model's backend
    (:mod:`xtl.models.adapters`)."""
    cache = adapter_of(model).new_cache(model)
    if tokens.shape[0] > 1:
        model(tokens[None, :-1].to(model.cfg.device), past_kv_cache=cache, return_type=None)
    return cache


def broadcast_cache(cache: Any, batch: int = 1, upper: Any = None, from_layer: int | None = None) -> Any:
    """A cache whose entries view ``cache``'s tensors broadcast to ``batch`` rows (no copy);
    appending to it leaves ``cache`` as it was.

    With ``upper``, layers from ``from_layer`` up take ``upper``'s entries instead (rows that
    join at target layer j: vanilla below j, the prompt prefix from j up); the attention mask
    is ``cache``'s.
    """
    return cache_adapter(cache).expand_cache(cache, batch, upper, from_layer)


def select_rows(cache: Any, idx: Tensor) -> None:
    """Keep only rows ``idx`` of ``cache``, in place (rows that stopped leave the batch)."""
    cache_adapter(cache).select_cache(cache, idx)


def decode_resid(model: Model, resid: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch vocab"]:
    """Final norm, unembedding, the model's logit scale and soft-cap of residual vectors: for the
    last layer's residual, the model's own output logits.

    ``W_U^T x^T`` is the faster GEMM shape on CPU for a few dozen rows against a large
    vocabulary (same products and sums as ``x W_U``).
    """
    h = model.ln_final(resid[:, None, :])[:, 0]
    w_u, b_u = model.unembed.W_U, model.unembed.b_U
    logits = (torch.mm(w_u.T, h.T.to(w_u.dtype)).T + b_u).contiguous()
    return apply_softcap(scale_logits(model, logits), model.cfg.output_logits_soft_cap)


@dataclass
class Next:
    """Greedy next token of each row, its log-prob, and (first step only) the entropy,
    candidate log-probs and top-1 minus top-2 margin."""

    token: Tensor
    logprob: Tensor
    entropy: Tensor | None = None
    cand_logprobs: Tensor | None = None  # [batch, n_candidates]
    margin: Tensor | None = None


def first_token_margin(logits: Float[Tensor, "batch vocab"]) -> Float[Tensor, "batch"]:
    """Top-1 minus top-2 logit of each row: how near the greedy choice is to a tie."""
    top = logits.topk(2, dim=-1).values
    return top[:, 0] - top[:, 1]


def log_probs(logits: Float[Tensor, "batch vocab"]) -> Float[Tensor, "batch vocab"]:
    """Log-softmax in float32 at least (float64 logits stay float64): the one precision rule
    for every first-token statistic xtl reports."""
    return torch.log_softmax(logits if logits.dtype == torch.float64 else logits.float(), dim=-1)


def first_token_stats(logits: Float[Tensor, "batch vocab"], cand_ids: list[int] | None = None) -> Next:
    """Greedy token and its log-prob from full logits (float32 at least); with ``cand_ids``
    also entropy, candidate log-probs and margin."""
    wide = logits if logits.dtype == torch.float64 else logits.float()
    logprobs = log_probs(wide)
    token = wide.argmax(dim=-1)
    out = Next(token, logprobs.gather(1, token[:, None])[:, 0])
    if cand_ids is not None:
        out.entropy = -(logprobs.exp() * logprobs).sum(-1)
        out.cand_logprobs = logprobs[:, cand_ids]
        out.margin = first_token_margin(wide)
    return out
