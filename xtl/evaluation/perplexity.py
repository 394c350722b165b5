"""Response perplexity under the unpatched model, one shared prompt pass per item."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from xtl.patching.ops import broadcast_cache, prefix_cache

__all__ = ["response_perplexity"]


@torch.no_grad()
def response_perplexity(model, prompt_tokens: torch.Tensor, responses: Sequence[Sequence[int]],
                        batch_size: int = 32) -> list[float]:
    """exp(mean NLL) of each response's tokens given the prompt, under the unpatched model.

    The prompt pass is computed once and shared (as broadcast views) by every response; rows
    are right-padded with their own last token, whose outputs are never read, so no attention
    mask is needed under causal attention. Empty responses give NaN.
    """
    device = model.cfg.device
    prefix = prefix_cache(model, prompt_tokens)
    first = torch.log_softmax(
        model(prompt_tokens[-1].reshape(1, 1).to(device), past_kv_cache=prefix)[0, -1].double(), -1)
    out = [math.nan] * len(responses)
    todo = [k for k, r in enumerate(responses) if len(r) > 0]
    for start in range(0, len(todo), batch_size):
        rows = todo[start:start + batch_size]
        length = max(len(responses[k]) for k in rows)
        nll = np.zeros(len(rows))
        if length > 1:
            ids = torch.tensor([list(responses[k][:-1]) + [responses[k][-1]] * (length - len(responses[k]))
                                for k in rows], device=device)
            cache = broadcast_cache(prefix, len(rows))
            logits = model(ids, past_kv_cache=cache)
            logprobs = torch.log_softmax(logits.double(), -1)
        for r, k in enumerate(rows):
            resp = list(responses[k])
            total = -float(first[resp[0]])
            for pos in range(1, len(resp)):
                total -= float(logprobs[r, pos - 1, resp[pos]])
            nll[r] = total / len(resp)
        for r, k in enumerate(rows):
            out[k] = float(math.exp(nll[r]))
    return out
