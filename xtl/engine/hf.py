"""Shared-prefix decoding on Hugging Face modules: the engine for bridge models.

The same plan as :mod:`xtl.engine.kernel` (the prompt prefix kept once per layer, batch-free and
already rotated; each row owning only its suffix in a preallocated buffer; rows leaving at a stop
token; chunked unembedding), but the blocks are the Hugging Face model's own: the bridge's
components are taken off a view of the model (:func:`xtl.models.bridge.unbridged`, same weights),
and that view runs with an attention function registered in transformers' ``AttentionInterface``
and a cache of this module's own. Every architecture whose attention goes through the interface
is served at once, norms, scalings, soft-caps and sliding windows included, because its own code
runs everything except the attention of the one new position per row written here.

The first step of the transplanted rows runs the last prompt token through every layer, with
the site written by forward hooks on the plain view where the bridge's hook would act
(:func:`xtl.models.bridge.hf_site`); rows below their target layer compute what vanilla does.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from xtl.engine.kernel import Rows, greedy_rows, prefix_suffix_mix, prefix_suffix_scores, scan_logits
from xtl.errors import XtlError
from xtl.models.facts import facts_of
from xtl.models.hfconfig import shares_kv, text_config
from xtl.patching.ops import Next, write_site
from xtl.patching.sites import Site
from xtl.patching.variants import blend, span_writes

__all__ = ["ATTENTION", "unsupported", "HFPrefix", "PrefixCache", "HFEngine"]

#: The name the shared-prefix attention is registered under in transformers' interface.
ATTENTION = "xtl_shared_prefix"


@dataclass
class HFPrefix:
    """Rotated keys/values of the prompt prefix per layer ``[kv_head, kept, d_head]``; a sliding
    window layer may keep only the last positions (``kept <= length``)."""

    keys: list[Float[Tensor, "kv_head kept d_head"]]
    values: list[Float[Tensor, "kv_head kept d_head"]]
    length: int


@dataclass
class _Step:
    """What the attention function needs besides its module and tensors (passed by keyword)."""

    prefix: HFPrefix
    pos: int  # absolute position of the one query per row


def _shared_prefix_attention(module: Any, query: Tensor, key: Tensor, value: Tensor, attention_mask: Any,
                             scaling: float | None = None, dropout: float = 0.0, softcap: float | None = None,
                             sliding_window: int | None = None, xtl_step: _Step | None = None,
                             **kwargs: Any) -> tuple[Tensor, None]:
    """One query position per row over the shared prefix and the row's own suffix (``key``,
    ``value``: what :class:`PrefixCache` returned), as transformers' eager attention computes it
    (scaled scores, soft-cap, sliding window, softmax in float32 at least)."""
    if xtl_step is None:
        raise XtlError(f"the {ATTENTION!r} attention runs only inside xtl's shared-prefix engine")
    if query.shape[2] != 1:
        raise XtlError(f"the {ATTENTION!r} attention takes one new position per row, got {query.shape[2]}")
    prefix, pos = xtl_step.prefix, xtl_step.pos
    pk, pv = prefix.keys[module.layer_idx], prefix.values[module.layer_idx]
    scale = module.head_dim ** -0.5 if scaling is None else scaling
    q = query[:, :, 0]
    b, h, d = q.shape
    kept = pk.shape[1]
    scores = prefix_suffix_scores(q, pk, key) * scale
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if sliding_window is not None and pos - sliding_window >= 0:
        key_pos = torch.cat([torch.arange(prefix.length - kept, prefix.length, device=scores.device),
                             torch.arange(prefix.length, prefix.length + key.shape[2], device=scores.device)])
        scores = scores.masked_fill(key_pos <= pos - sliding_window, float("-inf"))
    wide = torch.float64 if scores.dtype == torch.float64 else torch.float32
    pattern = F.softmax(scores, dim=-1, dtype=wide).to(value.dtype)
    return prefix_suffix_mix(pattern, pv, value).reshape(b, h, 1, d).transpose(1, 2), None


def _register() -> None:
    """Make :data:`ATTENTION` known to transformers (idempotent; no mask function is registered,
    so transformers builds no mask for it: the attention above masks by position itself)."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION, _shared_prefix_attention)


def _cache_base() -> type:
    from transformers import Cache

    return Cache


class PrefixCache(_cache_base()):  # type: ignore[misc]
    """A transformers cache over :class:`~xtl.engine.kernel.Rows`: ``update`` writes the new
    position of the first ``batch`` rows into ``slot`` and returns the rows' suffix so far (the
    prefix is read by the attention function, once for all rows)."""

    def __init__(self, prefix: HFPrefix, rows: Rows, slot: int):
        try:
            super().__init__(layers=[])
        except TypeError:  # transformers 4.x: no layer objects
            super().__init__()
        self.prefix, self.rows, self.slot = prefix, rows, slot

    def update(self, key_states: Tensor, value_states: Tensor, layer_idx: int, *args: Any,
               **kwargs: Any) -> tuple[Tensor, Tensor]:
        b = key_states.shape[0]
        rk, rv = self.rows.keys[layer_idx][:b], self.rows.values[layer_idx][:b]
        rk[:, :, self.slot] = key_states[:, :, -1]
        rv[:, :, self.slot] = value_states[:, :, -1]
        return rk[:, :, :self.slot + 1], rv[:, :, :self.slot + 1]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.prefix.length + self.slot

    def get_mask_sizes(self, *args: Any, **kwargs: Any) -> tuple[int, int]:
        return self.prefix.length + self.slot + 1, 0

    @property
    def is_sliding(self) -> list[bool]:
        return [False] * len(self.rows.keys)


#: Model types whose decoder layers run attention through transformers' ``AttentionInterface``
#: with a cache ``update`` and a ``layer_idx``: what this engine needs of a model's own code
#: (checked by the conformance suite, tests/test_conformance.py). Others take the per-step path.
ENGINE_MODEL_TYPES = frozenset({
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2",
    "gemma3_text", "olmo2", "olmo3", "granite", "granitemoe", "cohere", "cohere2", "phi3", "smollm3",
})


def _feature_refusal(text: Any) -> str | None:
    """What in a text config this engine does not compute: read from the config, not the code."""
    if shares_kv(text):
        return "layers that reuse an earlier layer's keys and values (num_kv_shared_layers)"
    if getattr(text, "attention_chunk_size", None):
        return "chunked attention (attention_chunk_size)"
    if getattr(text, "model_type", "") == "bloom" or getattr(text, "alibi", False) or \
            getattr(text, "position_embedding_type", None) == "alibi":
        return "ALiBi position biases"
    if getattr(text, "model_type", "") not in ENGINE_MODEL_TYPES:
        return f"model type {getattr(text, 'model_type', '?')!r} is not in the engine's table (xtl.engine.hf.ENGINE_MODEL_TYPES)"
    return None


def unsupported(model: Any, site: Site | None = None) -> str | None:
    """Why the Hugging Face engine cannot run this bridge model, or this ``site`` of it (None
    when it can)."""
    hf = model.hf
    cfg = model.cfg
    text = text_config(hf.config)
    if cfg.n_devices > 1 or len({p.device for p in hf.parameters()}) > 1:
        return "model split over several devices"
    if any(getattr(hp, "has_hooks", lambda: False)() for hp in model.hook_dict.values()):
        return "hooks are attached to the model"
    reasons = {
        "attention sinks": any("sinks" in n for n, _ in hf.named_parameters()),
        "parallel attention and MLP": cfg.parallel_attn_mlp,
    }
    for reason, hit in reasons.items():
        if hit:
            return reason
    feature = _feature_refusal(text)
    if feature:
        return feature
    plain = model.plain()
    layers = getattr(plain.get_decoder(), "layers", None)
    if layers is None:
        return "no decoder layer list"
    for layer in layers:
        attn = getattr(layer, "self_attn", None)
        if attn is None or not hasattr(attn, "layer_idx"):
            return f"{type(layer).__name__} has no self_attn with a layer index"
        if not getattr(attn, "is_causal", True):
            return "non-causal attention"
    if site is not None:
        from xtl.models.bridge import hf_site

        for layer in range(cfg.n_layers):
            try:
                hf_site(model, site.hook_name(layer))
            except KeyError:
                return (f"the bridge computes {site.hook_name(layer)} of {cfg.original_architecture} inside its "
                        "own block code, where no Hugging Face module outputs it")
    return None


def _module(root: Any, path: str) -> Any:
    for part in path.split("."):
        root = getattr(root, part) if not part.isdigit() else root[int(part)]
    return root


class HFEngine:
    """The shared-prefix operations of one item on a bridge model's plain Hugging Face view
    (the same surface as :class:`xtl.engine.kernel.HookedEngine`)."""

    def __init__(self, inp: Any):
        _register()
        self.inp = inp
        self.model = inp.model
        self.plain = self.model.plain(ATTENTION)
        self.base = self.plain.get_decoder()
        head = self.plain.get_output_embeddings()
        self.w_t = head.weight  # [vocab, d_model]
        self.b_u = getattr(head, "bias", None)
        text = text_config(self.plain.config)
        self.cap = float(getattr(text, "final_logit_softcapping", None) or -1.0)
        facts = facts_of(self.model)
        self.div = facts.divide if facts.divide != 1.0 else None
        self.mul = facts.multiply if facts.multiply != 1.0 else None
        params = inspect.signature(type(self.base).forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        self.prefix = self._prefix(inp.prefix_cache)

    def _prefix(self, cache: Any) -> HFPrefix:
        keys, values = [], []
        n = self.model.cfg.n_layers
        layers = list(getattr(cache, "layers", []))
        length = int(cache.get_seq_length()) if layers else 0
        ref = self.w_t
        kvh = self.model.cfg.n_key_value_heads or self.model.cfg.n_heads
        for layer in range(n):
            entry = layers[layer] if layer < len(layers) else None
            if entry is None or getattr(entry, "keys", None) is None or not getattr(entry, "is_initialized", True):
                empty = ref.new_zeros(kvh, 0, self.model.cfg.d_head)
                keys.append(empty)
                values.append(empty)
                continue
            keys.append(entry.keys[0].contiguous())
            values.append(entry.values[0].contiguous())
        return HFPrefix(keys, values, length)

    def rows(self, batch: int, capacity: int) -> Rows:
        """Rows whose slot 0 holds the vanilla last prompt token's K/V."""
        rows = Rows([k.new_zeros(batch, k.shape[0], capacity, k.shape[2]) for k in self.prefix.keys],
                    [v.new_zeros(batch, v.shape[0], capacity, v.shape[2]) for v in self.prefix.values])
        for layer, entry in enumerate(self.inp.vanilla.layers):
            rows.keys[layer][:, :, 0] = entry.keys[:1, :, -1]
            rows.values[layer][:, :, 0] = entry.values[:1, :, -1]
        rows.filled = 1
        return rows

    def _hidden(self, tokens: Int[Tensor, "batch"], rows: Rows, slot: int) -> Float[Tensor, "batch d_model"]:
        pos = self.prefix.length + slot
        b = tokens.shape[0]
        position_ids = torch.full((b, 1), pos, dtype=torch.long, device=tokens.device)
        out = self.base(input_ids=tokens[:, None], position_ids=position_ids, use_cache=True,
                        xtl_step=_Step(self.prefix, pos), **{self.cache_kw: PrefixCache(self.prefix, rows, slot)})
        return out.last_hidden_state[:, -1]

    def _scan(self, h: Tensor, cand_ids: list[int] | None = None) -> Next:
        return scan_logits(h, self.w_t, self.b_u, self.cap, cand_ids, divide=self.div, multiply=self.mul)

    def first_step(self, rows: Rows, tgt_layers: list[int], values: Tensor,
                   cand_ids: list[int] | None = None, span: int = 1, alpha: float = 1.0) -> Next:
        """The last prompt token of rows transplanted at ``tgt_layers`` (sorted ascending), into
        slot 0 of the first ``len(tgt_layers)`` rows (``span``, ``alpha``: see
        :func:`xtl.engine.kernel.first_step`)."""
        site: Site = self.inp.site
        b = len(tgt_layers)
        handles = [self._patch(layer, site, seg, vals, alpha)
                   for layer, (seg, vals) in span_writes(tgt_layers, values, span).items()]
        try:
            tokens = self.inp.last_token.reshape(1).expand(b)
            h = self._hidden(tokens, rows, 0)
        finally:
            for handle in handles:
                handle.remove()
        return self._scan(h, cand_ids if cand_ids is not None else [])

    def _patch(self, layer: int, site: Site, seg: slice, vals: Tensor, alpha: float = 1.0) -> Any:
        from xtl.models.bridge import hf_site

        path, side = hf_site(self.model, site.hook_name(layer))
        module = _module(self.plain, path)
        if side == "in":  # heads: the o-projection's input, [batch, 1, head * d_head]
            def pre(mod, args):  # noqa: ARG001
                x = args[0]
                shaped = x.reshape(*x.shape[:-1], -1, self.model.cfg.d_head)
                out = write_site(shaped, blend(shaped[seg, -1], vals, alpha), site.heads, seg).reshape(x.shape)
                return (out, *args[1:])
            return module.register_forward_pre_hook(pre)

        def post(mod, args, out):  # noqa: ARG001
            t = out[0] if isinstance(out, tuple) else out
            new = write_site(t, blend(t[seg, -1], vals, alpha), None, seg)
            return (new, *out[1:]) if isinstance(out, tuple) else new
        return module.register_forward_hook(post)

    def greedy(self, rows: Rows, first: Next, max_new_tokens: int, stop_ids: set[int],
               steps: list[list[float]] | None = None, on_step: Callable[[int], None] | None = None
               ) -> tuple[list[list[int]], list[float], list[bool]]:
        def pick(rows: Rows, tokens: Tensor) -> Next:
            h = self._hidden(tokens, rows, rows.filled)
            rows.filled += 1
            return self._scan(h)

        return greedy_rows(rows, first, max_new_tokens, stop_ids, pick, steps, on_step)


engine = HFEngine  # what xtl.engine.engines builds for an item
