"""Response perplexity under the unpatched model, one shared prompt pass per item."""

from __future__ import annotations

import math
from typing import Sequence

import torch

from xtl.patching.ops import broadcast_cache, prefix_cache

__all__ = ["response_perplexity"]


#: Bytes of logits one forward of response rows may hold (in the model's dtype): rows per
#: forward follow from it, so a 262k vocabulary and long CoT responses stay within memory.
LOGITS_BUDGET = 1 << 30

#: Rows of ``[row, vocab]`` logits reduced at once (in float32, or float64 for float64 models).
_REDUCE_ROWS = 64


def _token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log_softmax(logits)[target]`` of each row of ``logits`` ``[rows, vocab]`` (model dtype),
    reduced in float32 at least, a few hundred rows at a time (no full-size upcast copy)."""
    wide = torch.float64 if logits.dtype == torch.float64 else torch.float32
    out = torch.empty(logits.shape[0], dtype=wide, device=logits.device)
    for start in range(0, logits.shape[0], _REDUCE_ROWS):
        chunk = logits[start:start + _REDUCE_ROWS].to(wide)
        picked = chunk.gather(1, targets[start:start + _REDUCE_ROWS, None])[:, 0]
        out[start:start + _REDUCE_ROWS] = picked - torch.logsumexp(chunk, dim=-1)
    return out


@torch.no_grad()
def response_perplexity(model, prompt_tokens: torch.Tensor, responses: Sequence[Sequence[int]],
                        batch_size: int = 32) -> list[float]:
    """exp(mean NLL) of each response's tokens given the prompt, under the unpatched model.

    The prompt pass is computed once and shared (as broadcast views) by every response; rows
    are right-padded with their own last token, whose outputs are never read, so no attention
    mask is needed under causal attention. Empty responses give NaN. Logits stay in the model's
    dtype (at most :data:`LOGITS_BUDGET` bytes per forward: ``batch_size`` is lowered for long
    responses and large vocabularies); log-probabilities are reduced in float32 (float64 for a
    float64 model).
    """
    device = model.cfg.device
    prefix = prefix_cache(model, prompt_tokens)
    last = prompt_tokens[-1].reshape(1, 1).to(device)
    first_logits = model(last, past_kv_cache=prefix)[0, -1]
    out = [math.nan] * len(responses)
    todo = [k for k, r in enumerate(responses) if len(r) > 0]
    if not todo:
        return out
    first = torch.log_softmax(first_logits.to(torch.float64 if first_logits.dtype == torch.float64 else torch.float32), -1)
    first_of = {k: float(first[responses[k][0]]) for k in todo}
    per_token = first_logits.element_size() * first_logits.shape[-1]
    start = 0
    while start < len(todo):
        length = max(len(responses[k]) for k in todo[start:start + batch_size])
        rows = todo[start:start + max(1, min(batch_size, LOGITS_BUDGET // max(1, per_token * length)))]
        start += len(rows)
        length = max(len(responses[k]) for k in rows)
        totals = {k: -first_of[k] for k in rows}
        if length > 1:
            ids = torch.tensor([list(responses[k][:-1]) + [responses[k][-1]] * (length - len(responses[k]))
                                for k in rows], device=device)
            logits = model(ids, past_kv_cache=broadcast_cache(prefix, len(rows)))  # [row, pos, vocab]
            picks = [(r, pos) for r, k in enumerate(rows) for pos in range(len(responses[k]) - 1)]
            if picks:
                r_idx = torch.tensor([r for r, _ in picks], device=logits.device)
                p_idx = torch.tensor([p for _, p in picks], device=logits.device)
                targets = torch.tensor([responses[rows[r]][p + 1] for r, p in picks], device=logits.device)
                lp = _token_logprobs(logits[r_idx, p_idx], targets).tolist()
                for (r, _), value in zip(picks, lp):
                    totals[rows[r]] -= value
            del logits
        for k in rows:
            out[k] = float(math.exp(totals[k] / len(responses[k])))
    return out
