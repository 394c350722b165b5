"""One adapter per backend: every difference between HookedTransformer and TransformerBridge
that a stage above ``models`` would otherwise ask about, in one small protocol.

Stages call :func:`adapter_of` (for a model) or :func:`cache_adapter` (for a key/value cache)
and use what it answers; none of them compares backend names. The facts a model's
configuration carries (stop tokens, logit scales) live in :mod:`xtl.models.facts`.

========================  ==========================================  ==========================================
what                      hooked (HookedTransformer, TL 3)            bridge (TransformerBridge, TL 3.9 / 4)
========================  ==========================================  ==========================================
key/value cache           TransformerLens' cache                      transformers' ``DynamicCache``
start mid-model           yes (``start_at_layer``)                    no: the last prompt token runs from layer 0
shared-prefix engine      :mod:`xtl.engine.kernel`                    :mod:`xtl.engine.hf` (on a plain HF view)
hooks a site may use      every hook of the model                     the hooks the bridge's adapter maps
========================  ==========================================  ==========================================
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

__all__ = ["Adapter", "HookedAdapter", "BridgeAdapter", "adapter_of", "cache_adapter"]


class Adapter:
    """The protocol (both adapters are stateless; one instance each)."""

    name: str
    #: whether a forward can start at layer j from a residual stream (``start_at_layer``)
    starts_mid_model: bool
    #: which shared-prefix engine of :mod:`xtl.engine.engines` serves the backend
    engine: str

    def new_cache(self, model: Any) -> Any:
        """An empty key/value cache of batch 1."""
        raise NotImplementedError

    def owns_cache(self, cache: Any) -> bool:
        """True when ``cache`` is this backend's kind of cache."""
        raise NotImplementedError

    def expand_cache(self, cache: Any, batch: int = 1, upper: Any = None, from_layer: int | None = None) -> Any:
        """A cache viewing ``cache``'s tensors broadcast to ``batch`` rows (no copy); with
        ``upper``, layers from ``from_layer`` up view ``upper``'s."""
        raise NotImplementedError

    def select_cache(self, cache: Any, idx: Tensor) -> None:
        """Keep rows ``idx`` of ``cache``, in place."""
        raise NotImplementedError

    def has_hook(self, model: Any, name: str) -> bool:
        """Whether the model provides the hook point ``name``."""
        raise NotImplementedError


class HookedAdapter(Adapter):
    name, starts_mid_model, engine = "hooked", True, "kernel"

    def new_cache(self, model: Any) -> Any:
        from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

        return TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, 1)

    def owns_cache(self, cache: Any) -> bool:
        return hasattr(cache, "entries") and hasattr(cache, "previous_attention_mask")

    def expand_cache(self, cache: Any, batch: int = 1, upper: Any = None, from_layer: int | None = None) -> Any:
        from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

        entries = []
        for layer, entry in enumerate(cache.entries):
            src = upper.entries[layer] if upper is not None and layer >= (from_layer or 0) else entry
            entries.append(type(src)(past_keys=src.past_keys.expand(batch, -1, -1, -1),
                                     past_values=src.past_values.expand(batch, -1, -1, -1)))
        mask = cache.previous_attention_mask.expand(batch, -1)
        return TransformerLensKeyValueCache(entries=entries, previous_attention_mask=mask)

    def select_cache(self, cache: Any, idx: Tensor) -> None:
        for e in cache.entries:
            e.past_keys = e.past_keys.index_select(0, idx.to(e.past_keys.device))
            e.past_values = e.past_values.index_select(0, idx.to(e.past_values.device))
        cache.previous_attention_mask = cache.previous_attention_mask.index_select(
            0, idx.to(cache.previous_attention_mask.device))

    def has_hook(self, model: Any, name: str) -> bool:
        return name in model.hook_dict


class BridgeAdapter(Adapter):
    name, starts_mid_model, engine = "bridge", False, "hf"

    def new_cache(self, model: Any) -> Any:
        return model.new_cache()

    def owns_cache(self, cache: Any) -> bool:
        return hasattr(cache, "layers")

    def expand_cache(self, cache: Any, batch: int = 1, upper: Any = None, from_layer: int | None = None) -> Any:
        from xtl.models.bridge import expand_cache

        return expand_cache(cache, batch, upper, from_layer)

    def select_cache(self, cache: Any, idx: Tensor) -> None:
        from xtl.models.bridge import select_cache

        select_cache(cache, idx)

    def has_hook(self, model: Any, name: str) -> bool:
        return model.has_hook(name)


HOOKED, BRIDGE = HookedAdapter(), BridgeAdapter()


def adapter_of(model: Any) -> Adapter:
    """The adapter of the backend serving ``model``."""
    return BRIDGE if getattr(model, "backend", None) == "bridge" else HOOKED


def cache_adapter(cache: Any) -> Adapter:
    """The adapter whose kind of key/value cache ``cache`` is."""
    return HOOKED if HOOKED.owns_cache(cache) else BRIDGE
