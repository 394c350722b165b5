"""The TransformerLens path of one item: every step through TransformerLens' own forward on
broadcast views of the prompt cache, for models the shared-prefix kernel does not cover
(:func:`xtl.engine.engines.unsupported`) and as a reference for it."""

from __future__ import annotations

from typing import Callable

from xtl.models.adapters import adapter_of
from xtl.models.backends import Model

from xtl.engine.schedule import ConfigResult, ItemInputs
from xtl.patching.decode import greedy_decode
from xtl.patching.ops import broadcast_cache, first_token_stats
from xtl.patching.variants import variant_hooks
from xtl.schema import VANILLA, Config

__all__ = ["run_item_reference"]


def run_item_reference(model: Model, inp: ItemInputs, configs: list[Config],
                       batch_size: int, done: Callable[[int], None] = lambda k: None,
                       alpha: float = 1.0) -> dict[Config, ConfigResult]:
    """Every configuration of one item plus :data:`VANILLA`, target layer by target layer,
    ``batch_size`` sources at a time; the variant's hooks (:func:`xtl.patching.variants.variant_hooks`)
    write the span's layers, and with ``positions`` > 1 the rows start from the prefix before the
    first patched position (:attr:`ItemInputs.tail`)."""
    out: dict[Config, ConfigResult] = {}

    def record(keys: list[Config], logits, cache) -> None:
        nxt = first_token_stats(logits, inp.cand_ids)
        if inp.generate:
            ids, loglik, stopped = greedy_decode(model, cache, logits, inp.max_new_tokens, inp.stop)
        else:
            ids, loglik, stopped = [[] for _ in keys], [float("nan")] * len(keys), [False] * len(keys)
        for r, key in enumerate(keys):
            out[key] = ConfigResult(cand_logprobs=nxt.cand_logprobs[r].tolist(), entropy=float(nxt.entropy[r]),
                                    margin=float(nxt.margin[r]), token_ids=ids[r], loglik=loglik[r],
                                    stopped=stopped[r])
        done(len(keys))

    record([VANILLA], inp.vanilla_logits, broadcast_cache(inp.vanilla))
    for tgt in sorted({c.tgt for c in configs}):
        sources = sorted({c.src for c in configs if c.tgt == tgt})  # not a product for grid="cross"
        for start in range(0, len(sources), batch_size):
            chunk = sources[start:start + batch_size]
            b = len(chunk)
            hooks = variant_hooks(inp.site, inp.hook_values(chunk), tgt, alpha)
            if inp.positions > 1:  # every row recomputes the patched positions on the shared tail cache
                cache = broadcast_cache(inp.tail, b)
                tokens = inp.tail_tokens.reshape(1, -1).expand(b, -1)
                with model.hooks(fwd_hooks=hooks):
                    logits = model(tokens, past_kv_cache=cache)[:, -1]
            elif adapter_of(model).starts_mid_model:  # start at the target layer
                cache = broadcast_cache(inp.vanilla, b, upper=inp.prefix_cache, from_layer=tgt)
                x = inp.resid_pre[tgt].expand(b, -1, -1)
                with model.hooks(fwd_hooks=hooks):
                    logits = model(x, start_at_layer=tgt, past_kv_cache=cache)[:, -1]
            else:  # rows are the vanilla pass below the target layer
                cache = broadcast_cache(inp.prefix_cache, b)
                with model.hooks(fwd_hooks=hooks):
                    logits = model(inp.last_token.reshape(1, 1).expand(b, 1), past_kv_cache=cache)[:, -1]
            record([Config(src, tgt) for src in chunk], logits, cache)
    return out
