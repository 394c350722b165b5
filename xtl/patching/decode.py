"""Greedy decoding: the bookkeeping shared by every decoder, and TransformerLens' cached one."""

from __future__ import annotations

from typing import Any, Callable

import torch
from jaxtyping import Float
from torch import Tensor
from xtl.models.backends import Model

from xtl.patching.ops import first_token_stats, select_rows

__all__ = ["greedy_loop", "greedy_decode"]

Decoded = tuple[list[list[int]], list[float], list[bool]]


def greedy_loop(token: Tensor, logprob: Tensor, max_new_tokens: int, stop_ids: set[int],
                step: Callable[[Tensor | None, Tensor], tuple[Tensor, Tensor]],
                steps: list[list[float]] | None = None) -> Decoded:
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


def greedy_decode(model: Model, cache: Any,
                  first_logits: Float[Tensor, "batch vocab"], max_new_tokens: int,
                  stop_ids: set[int]) -> Decoded:
    """Greedy continuation of a batch whose prompt pass is in ``cache``; rows leave at a stop id.

    Returns per row: generated ids (stop id excluded), summed log-likelihood, stopped flag.
    """

    def pick(logits: Tensor) -> tuple[Tensor, Tensor]:
        nxt = first_token_stats(logits)
        return nxt.token, nxt.logprob

    def step(idx: Tensor | None, token: Tensor) -> tuple[Tensor, Tensor]:
        if idx is not None:
            select_rows(cache, idx)
        return pick(model(token[:, None], past_kv_cache=cache)[:, -1])

    return greedy_loop(*pick(first_logits), max_new_tokens, stop_ids, step)
