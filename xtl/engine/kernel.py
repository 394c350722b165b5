"""Shared-prefix decoding: many rows that share one prompt prefix, without copying the prefix.

TransformerLens' cached decoding concatenates every row's keys with the whole cache, re-applies
rotary embeddings to every cached key and expands grouped K/V heads on every step, so B rows
that share one prompt cost B times the prompt's memory traffic per layer and step. Here the
prompt prefix is rotated once and kept grouped ([kv_head, pos, d_head], batch-free); each row
owns only its suffix (last prompt token + generated tokens) in a preallocated buffer.

The block is TransformerLens' own modules (norms, Q/K/V projection, q/k norms, rotary tables,
MLP, unembedding); only the attention of the single query position is written here. It also
runs the transplant's first step for rows whose target layers differ: rows sorted by target
layer join the batch at their layer with the vanilla residual, and the site is replaced in the
rows joining at that layer, exactly where :data:`xtl.patching.sites.SITES`' hooks act.

Architectures outside what this covers (see :func:`unsupported`) use TransformerLens' forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from xtl.models.adapters import adapter_of
from xtl.models.backends import Model
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from xtl.patching.decode import greedy_loop
from xtl.patching.ops import Next, apply_softcap, decode_resid, write_site
from xtl.patching.variants import blend, span_writes

__all__ = ["unsupported", "Prefix", "Rows", "SitePatch", "prefix_from_cache", "decode_step", "decode_pick",
           "first_step", "vanilla_rows", "greedy", "greedy_rows", "Next", "scan_vocab", "scan_logits",
           "HookedEngine"]

_POST_NORM = ("OlmoeForCausalLM", "Olmo2ForCausalLM", "Olmo3ForCausalLM")


def unsupported(model: Model, site: Any = None) -> str | None:  # noqa: ARG001 - every site is served
    """Why this kernel cannot run a HookedTransformer model (None when it can). Bridge models are
    served by :mod:`xtl.engine.hf`; :func:`xtl.engine.engines.unsupported` asks the right one."""
    if adapter_of(model).engine != "kernel":
        return "a bridge model: the engine on Hugging Face modules serves it (xtl.engine.engines.unsupported)"
    cfg = model.cfg
    reasons = {
        "positional embeddings are not rotary": cfg.positional_embedding_type != "rotary",
        "per-head attention inputs": cfg.use_attn_in or cfg.use_split_qkv_input,
        "parallel attention and MLP": cfg.parallel_attn_mlp,
        "attention-only model": cfg.attn_only,
        "post-norm blocks": cfg.original_architecture in _POST_NORM,
        "attention sinks": getattr(cfg, "use_attention_sinks", False),
        "log-n attention scaling": getattr(cfg, "use_logn_attn", False),
        "dynamic NTK rotary": getattr(cfg, "use_dynamic_ntk_rope", False),
        "q/k/v clipping": getattr(cfg, "clip_qkv", None) is not None,
        "4-bit weights": getattr(cfg, "load_in_4bit", False),
        "non-causal attention": cfg.attention_dir != "causal",
        "no normalisation layers": cfg.normalization_type is None,
        "model split over several devices": cfg.n_devices > 1,
    }
    for reason, hit in reasons.items():
        if hit:
            return reason
    for block in model.blocks:
        attn = block.attn
        if getattr(attn, "_attention_dir_override", None) not in (None, "causal"):
            return "non-causal attention"
        if getattr(attn, "attn_type", "global") not in ("global", "local"):
            return f"attention type {attn.attn_type!r}"
    if any(hp._forward_hooks or hp._forward_pre_hooks for hp in model.hook_dict.values()):
        return "hooks are attached to the model"
    return None


@dataclass
class Prefix:
    """Rotated keys and values of the shared prompt prefix, per layer ``[kv_head, pos, d_head]``."""

    keys: list[Float[Tensor, "kv_head pos d_head"]]
    values: list[Float[Tensor, "kv_head pos d_head"]]

    @property
    def length(self) -> int:
        return self.keys[0].shape[1]


@dataclass
class Rows:
    """Per-row suffix keys/values ``[batch, kv_head, capacity, d_head]`` per layer, rotated."""

    keys: list[Tensor]
    values: list[Tensor]
    filled: int = 0

    @classmethod
    def empty(cls, prefix: Prefix, batch: int, capacity: int) -> "Rows":
        def buf(t: Tensor) -> Tensor:
            return t.new_zeros(batch, t.shape[0], capacity, t.shape[2])
        return cls([buf(k) for k in prefix.keys], [buf(v) for v in prefix.values])

    def select(self, idx: Tensor) -> "Rows":
        """Keep the rows ``idx`` (rows that stopped leave the batch)."""
        return Rows([k.index_select(0, idx) for k in self.keys],
                    [v.index_select(0, idx) for v in self.values], self.filled)


def prefix_from_cache(model: Model, cache: TransformerLensKeyValueCache) -> Prefix:
    """Row 0 of a TransformerLens cache (keys cached before rotary), rotated once."""
    keys, values = [], []
    for block, entry in zip(model.blocks, cache.entries):
        k = block.attn.apply_rotary(entry.past_keys[:1], 0, None)
        keys.append(k[0].transpose(0, 1).contiguous())
        values.append(entry.past_values[0].transpose(0, 1).contiguous())
    return Prefix(keys, values)


def _attend(attn, q: Float[Tensor, "batch head d_head"], pk: Float[Tensor, "kv_head pos d_head"],
            pv: Float[Tensor, "kv_head pos d_head"], rk: Float[Tensor, "batch kv_head slot d_head"],
            rv: Float[Tensor, "batch kv_head slot d_head"],
            pos: int) -> Float[Tensor, "batch head d_head"]:
    """One query position per row over the shared prefix (pk, pv) and the row's suffix (rk, rv)."""
    scores = prefix_suffix_scores(q, pk, rk) / attn.attn_scale
    scores = apply_softcap(scores, attn.cfg.attn_scores_soft_cap)
    if attn.attn_type == "local" and pos - attn.cfg.window_size >= 0:
        key_pos = torch.arange(scores.shape[-1], device=scores.device)
        scores = scores.masked_fill(key_pos <= pos - attn.cfg.window_size, float("-inf"))
    pattern = F.softmax(scores, dim=-1)
    pattern = torch.where(torch.isnan(pattern), torch.zeros_like(pattern), pattern).to(pv.dtype)
    return prefix_suffix_mix(pattern, pv, rv)


def prefix_suffix_scores(q: Float[Tensor, "batch head d_head"], pk: Float[Tensor, "kv_head pos d_head"],
                         rk: Float[Tensor, "batch kv_head slot d_head"]) -> Float[Tensor, "batch kv_head group key"]:
    """Unscaled scores of one query per row against the shared prefix (one matmul for every row:
    the prefix is stored once) and against the row's own suffix, query heads grouped by the key
    head they share; keys ordered prefix then suffix. The shared-prefix engines' common step."""
    b, h, d = q.shape
    kvh, plen = pk.shape[0], pk.shape[1]
    g = h // kvh
    qg = q.reshape(b, kvh, g, d)
    s_pre = torch.matmul(qg.permute(1, 0, 2, 3).reshape(kvh, b * g, d), pk.transpose(1, 2))
    s_pre = s_pre.reshape(kvh, b, g, plen).permute(1, 0, 2, 3)
    return torch.cat([s_pre, torch.matmul(qg, rk.transpose(-1, -2))], dim=-1)


def prefix_suffix_mix(pattern: Float[Tensor, "batch kv_head group key"], pv: Float[Tensor, "kv_head pos d_head"],
                      rv: Float[Tensor, "batch kv_head slot d_head"]) -> Float[Tensor, "batch head d_head"]:
    """The attention pattern of :func:`prefix_suffix_scores` applied to the prefix's and the
    row's values: each row's mixed value per query head."""
    b, kvh, g, _ = pattern.shape
    plen, d = pv.shape[1], pv.shape[2]
    p_pre = pattern[..., :plen].permute(1, 0, 2, 3).reshape(kvh, b * g, plen)
    z = torch.matmul(p_pre, pv).reshape(kvh, b, g, d).permute(1, 0, 2, 3)
    z = z + torch.matmul(pattern[..., plen:], rv)
    return z.reshape(b, kvh * g, d)


@dataclass(frozen=True)
class SitePatch:
    """What the first step writes: rows ``rows`` of the batch get ``values`` at site ``kind``
    (``attn``, ``mlp``, ``block`` or ``heads``, the latter for ``heads`` only)."""

    kind: str
    rows: slice
    values: Tensor
    heads: tuple[int, ...] | None = None
    alpha: float = 1.0  # blend: (1 - alpha) x + alpha values

    def apply(self, kind: str, x: Tensor, pos: int | None = -1) -> Tensor:
        """``x`` with the patch written when ``kind`` is this patch's site (else unchanged)."""
        if kind != self.kind or self.rows.start == self.rows.stop:
            return x
        values = self.values
        if self.alpha != 1.0:
            values = blend(x[self.rows] if pos is None else x[self.rows, pos], values, self.alpha)
        return write_site(x, values, self.heads if kind == "heads" else None, self.rows, pos)


def _block(model: Model, layer: int, x: Float[Tensor, "batch 1 d_model"], prefix: Prefix, rows: Rows,
           slot: int, patch: SitePatch | None = None) -> Float[Tensor, "batch 1 d_model"]:
    """One block for one new position per row; writes the row's K/V into ``slot``."""
    block = model.blocks[layer]
    attn = block.attn
    b = x.shape[0]
    pos = prefix.length + slot
    h = block.ln1(x)
    q, k, v = attn.calculate_qkv_matrices(h, h, h)
    q = attn.apply_rotary(q, pos, None)
    k = attn.apply_rotary(k, pos, None)
    rk, rv = rows.keys[layer][:b], rows.values[layer][:b]
    rk[:, :, slot] = k[:, 0]
    rv[:, :, slot] = v[:, 0]
    z = _attend(attn, q[:, 0], prefix.keys[layer], prefix.values[layer],
                rk[:, :, :slot + 1], rv[:, :, :slot + 1], pos)
    if patch is not None:
        z = patch.apply("heads", z, pos=None)
    w = attn.W_O.permute(2, 0, 1).reshape(attn.W_O.shape[2], -1).contiguous()
    out = F.linear(z.reshape(b, 1, -1).to(w.dtype), w, attn.b_O)
    if model.cfg.use_normalization_before_and_after:
        out = block.ln1_post(out)
    if patch is not None:
        out = patch.apply("attn", out)
    mid = x + out
    mlp_out = block.apply_mlp(block.ln2(mid))
    if patch is not None:
        mlp_out = patch.apply("mlp", mlp_out)
    post = mid + mlp_out
    if patch is not None:
        post = patch.apply("block", post)
    return post


#: Vocabulary rows per chunk of the unembedding scan on a CPU (sized for its caches); on a GPU
#: the whole vocabulary is one product (fewer kernel launches; the logits fit in its memory).
CPU_VOCAB_CHUNK = 1024


def scan_vocab(model: Model, x: Float[Tensor, "batch 1 d_model"], cand_ids: list[int] | None = None,
               chunk: int | None = None) -> Next:
    """Final norm + unembedding of ``x``'s last position, reduced chunk by chunk of the vocabulary
    (:func:`scan_logits`)."""
    h = model.ln_final(x)[:, -1]
    return scan_logits(h, model.unembed.W_U.T, model.unembed.b_U, model.cfg.output_logits_soft_cap, cand_ids, chunk)


def scan_logits(h: Float[Tensor, "batch d_model"], w_t: Float[Tensor, "vocab d_model"], b_u: Tensor | None,
                cap: float, cand_ids: list[int] | None = None, chunk: int | None = None,
                divide: float | None = None, multiply: float | None = None) -> Next:
    """The greedy token, its log-prob (and with ``cand_ids`` the first-token statistics) of the
    logits ``(h w_t^T + b_u) * multiply / divide``, soft-capped at ``cap``, taken chunk by chunk of the vocabulary.

    Each chunk's logits stay in cache while its max, an online log-sum-exp and (when
    ``cand_ids`` is given) the entropy terms are taken, so [batch, vocab] logits never go through
    memory -- the largest cost of a step with a 256k vocabulary. Ties go to the lowest id, as
    ``argmax`` does. Entropy is ``log s - t / s`` with ``s = sum exp(l - m)`` and
    ``t = sum exp(l - m) (l - m)``, accurate for peaked distributions too.
    """
    chunk = chunk or (w_t.shape[0] if h.is_cuda else CPU_VOCAB_CHUNK)
    bias = b_u is not None and bool(torch.count_nonzero(b_u))
    stats = cand_ids is not None
    b = h.shape[0]
    # GEMMs whose row count is a multiple of 8 run up to ~25% faster per row on CPU (and suit
    # tensor cores); padding rows are zeros and are dropped at the end.
    h_t = F.pad(h.T.to(w_t.dtype), (0, -b % 8)).contiguous()
    cand_logits: dict[int, Tensor] = {}
    m = s = t = best = best_id = second = None
    for start in range(0, w_t.shape[0], chunk):
        logits = torch.mm(w_t[start:start + chunk], h_t)  # [chunk, batch]
        if bias:
            logits = logits + b_u[start:start + chunk, None]
        if multiply is not None:  # the model's output scale, in its forward's order
            logits = logits * multiply
        if divide is not None:
            logits = logits / divide
        logits = apply_softcap(logits, cap)
        if logits.dtype not in (torch.float32, torch.float64):
            logits = logits.float()
        for c in cand_ids or ():
            if start <= c < start + logits.shape[0]:
                cand_logits[c] = logits[c - start].clone()
        c_max, c_id = logits.max(dim=0)
        if stats:  # the runner-up, for the first-token margin
            c_two = logits.topk(2, dim=0).values[1] if logits.shape[0] > 1 else torch.full_like(c_max, -torch.inf)
            second = c_two if m is None else torch.maximum(torch.minimum(best, c_max), torch.maximum(second, c_two))
        if m is None:
            m, s, best, best_id = c_max, torch.zeros_like(c_max), c_max, c_id
            t = torch.zeros_like(c_max) if stats else None
        else:
            better = c_max > best
            best = torch.where(better, c_max, best)
            best_id = torch.where(better, c_id + start, best_id)
        new_m = torch.maximum(m, c_max)
        scale = torch.exp(m - new_m)
        shifted = logits.sub_(new_m)  # in place: the chunk is not needed afterwards
        if stats:
            e = torch.exp(shifted)
            t = scale * (t + (m - new_m) * s) + (e * shifted).sum(0)
        else:
            e = shifted.exp_()
        s = scale * s + e.sum(0)
        m = new_m
    m, s, best, best_id = m[:b], s[:b], best[:b], best_id[:b]
    t = t[:b] if stats else None
    lse = m + torch.log(s)
    out = Next(best_id, best - lse)
    if stats:
        out.entropy = torch.log(s) - t / s
        out.margin = best - second[:b]
        out.cand_logprobs = (torch.stack([cand_logits[c][:b] for c in cand_ids], dim=1) - lse[:, None]
                             if cand_ids else lse.new_zeros(lse.shape[0], 0))
    return out


def _advance(model: Model, prefix: Prefix, rows: Rows,
             tokens: Int[Tensor, "batch"]) -> Float[Tensor, "batch 1 d_model"]:
    x = model.hook_embed(model.embed(tokens[:, None]))
    slot = rows.filled
    for layer in range(model.cfg.n_layers):
        x = _block(model, layer, x, prefix, rows, slot)
    rows.filled += 1
    return x


def decode_step(model: Model, prefix: Prefix, rows: Rows,
                tokens: Tensor) -> Float[Tensor, "batch vocab"]:
    """Feed one token per row; appends its K/V to the rows' suffix and returns next logits."""
    return decode_resid(model, _advance(model, prefix, rows, tokens)[:, -1])


def decode_pick(model: Model, prefix: Prefix, rows: Rows, tokens: Int[Tensor, "batch"]) -> Next:
    """Like :func:`decode_step`, but returns only the greedy next token and its log-prob."""
    return scan_vocab(model, _advance(model, prefix, rows, tokens))


def first_step(model: Model, prefix: Prefix, rows: Rows, resid_pre: list[Float[Tensor, "1 1 d_model"]],
               tgt_layers: list[int], kind: str, values: Tensor,
               heads: tuple[int, ...] | None = None, cand_ids: list[int] | None = None,
               span: int = 1, alpha: float = 1.0) -> Next:
    """Recompute the last prompt token of rows transplanted at ``tgt_layers`` (ascending).

    Row r joins at layer ``tgt_layers[r]`` with the vanilla ``resid_pre`` of that layer and has
    its site replaced by ``values[r]`` there (with ``span`` > 1, ``values[r, m]`` at layer
    ``tgt_layers[r] + m``; with ``alpha`` < 1, blended); below its layer its slot-0 K/V must
    already hold the vanilla last token's (see :func:`vanilla_rows`).
    """
    if any(a > b for a, b in zip(tgt_layers, tgt_layers[1:])):
        raise ValueError("rows must be sorted by target layer")
    writes = span_writes(tgt_layers, values, span)
    x = None
    for layer in range(tgt_layers[0], model.cfg.n_layers):
        new = sum(1 for j in tgt_layers if j == layer)
        if new:
            add = resid_pre[layer].expand(new, -1, -1)
            x = add if x is None else torch.cat([x, add], dim=0)
        seg, vals = writes.get(layer, (slice(0, 0), values[:0]))
        x = _block(model, layer, x, prefix, rows, 0, SitePatch(kind, seg, vals, heads, alpha))
    return scan_vocab(model, x, cand_ids if cand_ids is not None else [])


def vanilla_rows(model: Model, prefix: Prefix, cache: TransformerLensKeyValueCache,
                 batch: int, capacity: int) -> Rows:
    """Rows whose slot 0 holds the vanilla last prompt token's K/V (last cache position)."""
    rows = Rows.empty(prefix, batch, capacity)
    pos = prefix.length
    for layer, (block, entry) in enumerate(zip(model.blocks, cache.entries)):
        k = block.attn.apply_rotary(entry.past_keys[:1, -1:], pos, None)
        rows.keys[layer][:, :, 0] = k[:, 0]
        rows.values[layer][:, :, 0] = entry.past_values[:1, -1]
    rows.filled = 1
    return rows


def greedy(model: Model, prefix: Prefix, rows: Rows, first: Next,
           max_new_tokens: int, stop_ids: set[int], steps: list[list[float]] | None = None,
           on_step: Callable[[int], None] | None = None
           ) -> tuple[list[list[int]], list[float], list[bool]]:
    """Greedy continuation of rows on a shared prefix from their first token; rows leave at a
    stop id. Returns per row: generated ids (stop id excluded), summed log-likelihood, stopped
    (``steps``: see :func:`xtl.patching.decode.greedy_loop`). ``on_step(k)`` is called after the
    k-th decode step (progress reporting).
    """
    return greedy_rows(rows, first, max_new_tokens, stop_ids,
                       lambda r, tokens: decode_pick(model, prefix, r, tokens), steps, on_step)


def greedy_rows(rows: Rows, first: Next, max_new_tokens: int, stop_ids: set[int],
                pick: Callable[[Rows, Tensor], Next], steps: list[list[float]] | None = None,
                on_step: Callable[[int], None] | None = None
                ) -> tuple[list[list[int]], list[float], list[bool]]:
    """:func:`greedy` over any decode step ``pick(rows, tokens) -> Next`` (which appends the
    tokens' K/V to ``rows``): rows that stop leave the batch."""
    taken = 0

    def step(idx: Tensor | None, tokens: Tensor) -> tuple[Tensor, Tensor]:
        nonlocal rows, taken
        if idx is not None:
            rows = rows.select(idx)
        nxt = pick(rows, tokens)
        taken += 1
        if on_step is not None:
            on_step(taken)
        return nxt.token, nxt.logprob

    return greedy_loop(first.token, first.logprob, max_new_tokens, stop_ids, step, steps)


class HookedEngine:
    """The shared-prefix operations of one item on HookedTransformer (the kernel above), bound
    to the item's inputs (:class:`xtl.engine.schedule.ItemInputs`)."""

    def __init__(self, inp):
        self.inp = inp
        self.model = inp.model
        self.prefix = prefix_from_cache(inp.model, inp.prefix_cache)

    def rows(self, batch: int, capacity: int) -> Rows:
        """Rows whose slot 0 holds the vanilla last prompt token's K/V."""
        return vanilla_rows(self.model, self.prefix, self.inp.vanilla, batch, capacity)

    def first_step(self, rows: Rows, tgt_layers: list[int], values: Tensor,
                   cand_ids: list[int] | None = None, span: int = 1, alpha: float = 1.0) -> Next:
        """The last prompt token of rows transplanted at ``tgt_layers`` (see :func:`first_step`)."""
        inp = self.inp
        return first_step(self.model, self.prefix, rows, inp.resid_pre, tgt_layers, inp.site.target_kind,
                          values, inp.site.heads, cand_ids, span, alpha)

    def greedy(self, rows: Rows, first: Next, max_new_tokens: int, stop_ids: set[int],
               steps: list[list[float]] | None = None, on_step: Callable[[int], None] | None = None
               ) -> tuple[list[list[int]], list[float], list[bool]]:
        return greedy(self.model, self.prefix, rows, first, max_new_tokens, stop_ids, steps, on_step)


engine = HookedEngine  # what xtl.engine.engines builds for an item
