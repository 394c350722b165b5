"""The plan of one item's work on the shared-prefix path, and its execution.

Follow one configuration ``Config(src=i, tgt=j)`` from its first step to its row in the results:

1. :class:`ItemInputs` holds what every configuration of the item shares: the target prompt's
   prefix cache, the vanilla last-token cache and the residual stream entering every layer, the
   source activations of every layer, and vanilla's first token.
2. :func:`split_shared`: a configuration at the **last** target layer leaves every cached key
   and value as the vanilla pass wrote them (a site acts after its layer's keys and values), so
   after its first token it continues exactly as the vanilla row would from that token. Such
   "shared" configurations only get their first token computed, in batches of their own.
3. :func:`decode_batches`: the other configurations, plus one *continuation* row per distinct
   first token of the shared ones (vanilla's included), are packed into :class:`DecodeBatch`es of
   at most ``batch_size`` rows. Each batch recomputes the last prompt token of its configurations
   (each row joins at its own target layer, :func:`xtl.engine.kernel.first_step`; on the bridge
   every row runs the last token through the model, :class:`xtl.engine.hf.HFEngine`), then decodes
   all its rows greedily on the shared prefix.
4. :func:`run_item` gathers a :class:`ConfigResult` per configuration; a shared configuration
   takes its continuation's tokens, with its log-likelihood summed from its own first log-prob
   and the continuation's later ones, in the order :func:`xtl.patching.decode.greedy_loop` sums.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import torch
from jaxtyping import Float
from torch import Tensor
from xtl.models.backends import Model

from xtl.engine import engines
from xtl.engine import kernel as fastpath
from xtl.patching.ops import first_token_stats
from xtl.patching.sites import Site
from xtl.schema import VANILLA, Config

__all__ = ["Config", "ItemInputs", "DecodeBatch", "ConfigResult", "default_batch_size", "balanced", "split_shared",
           "decode_batches", "run_item", "by_target", "VANILLA"]



def by_target(configs: list[Config]) -> list[Config]:
    """Configurations ordered by target layer (then source): the order rows join the batch."""
    return sorted(configs, key=lambda c: (c.tgt, c.src))


@dataclass(frozen=True)
class ItemInputs:
    """What every configuration of one item shares (build it with keywords)."""

    model: Model
    prefix_cache: Any  # every target prompt position but the last
    vanilla: Any  # the prefix plus the vanilla last token
    vanilla_logits: Float[Tensor, "1 vocab"]
    resid_pre: list[Float[Tensor, "1 1 d_model"]]  # vanilla residual entering every layer
    site: Site
    src_acts: Float[Tensor, "layer ..."] | None  # the source's site at every layer
    cand_ids: list[int]
    stop: set[int]
    max_new_tokens: int
    generate: bool
    last_token: Tensor | None = None  # the target's last prompt token, for models that cannot start mid-model
    span: int = 1  # layers i..i+span-1 into j..j+span-1
    positions: int = 1  # src_acts is [layer, positions, ...] when > 1
    tail: Any = None  # positions > 1: the cache of every target position before the patched ones
    tail_tokens: Tensor | None = None  # positions > 1: the patched positions' tokens

    def values(self, srcs: list[int]) -> Tensor:
        """What the engines write for configurations from source layers ``srcs``: ``[rows, ...]``,
        or ``[rows, span, ...]`` with a span (source layers ``i..i+span-1``)."""
        if self.span == 1:
            return self.src_acts[srcs]
        idx = torch.tensor([[i + m for m in range(self.span)] for i in srcs], device=self.src_acts.device)
        return self.src_acts[idx]

    def hook_values(self, srcs: list[int]) -> Tensor:
        """The same as ``[rows, span, positions, ...]``, what
        :func:`xtl.patching.variants.variant_hooks` writes."""
        v = self.values(srcs)
        if self.span == 1:
            v = v[:, None]
        return v[:, :, None] if self.positions == 1 else v

    @property
    def engine(self) -> Any:
        """The shared-prefix engine over these inputs (:func:`xtl.engine.engines.engine_for`:
        HookedTransformer's kernel, or Hugging Face modules on the bridge), built on first use."""
        cached = self.__dict__.get("_engine")
        if cached is None:
            cached = engines.engine_for(self)
            object.__setattr__(self, "_engine", cached)
        return cached

    @property
    def vanilla_first(self) -> fastpath.Next:
        """Vanilla's first token and its statistics."""
        cached = self.__dict__.get("_vanilla_first")
        if cached is None:
            cached = first_token_stats(self.vanilla_logits, self.cand_ids)
            object.__setattr__(self, "_vanilla_first", cached)
        return cached


@dataclass(frozen=True)
class DecodeBatch:
    """One batch of rows decoded together: configurations recomputed from their target layer
    (sorted by it), then continuation rows that start from a given first token."""

    configs: list[Config]
    continuations: list[int] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.configs) + len(self.continuations)


class ConfigResult(NamedTuple):
    """One configuration's first-token statistics and greedy response."""

    cand_logprobs: list[float]
    entropy: float
    margin: float
    token_ids: list[int]
    loglik: float
    stopped: bool


#: Configurations decoded together on a CPU: larger batches amortise the per-step overhead and
#: the demo model's full grid fits in one (docs/performance.md).
CPU_BATCH = 512


def row_bytes(cfg: Any, max_new_tokens: int, on_gpu: bool) -> int:
    """Bytes one decoding row costs the shared-prefix engine at its peak (the budget of
    :func:`default_batch_size`, checked against the engine's own buffers in tests):

    * its key/value suffix, ``n_layers x 2 x kv_heads x d_head x (max_new_tokens + 1)`` in the
      model's dtype, twice: when a row stops, ``Rows.select`` copies every buffer before the old
      one is freed;
    * the vocabulary scan: on a GPU one chunk is the whole vocabulary, whose logits in the model's
      dtype, their float32 copy, the soft-cap/scale temporaries and the top-2 take about 14 bytes
      per token per row (measured); on a CPU chunks of ``CPU_VOCAB_CHUNK`` tokens, in float32;
    * the block's activations: residual, MLP hidden and gate, in the model's dtype, four times
      (inputs, outputs and the attention's temporaries).
    """
    from xtl.engine.kernel import CPU_VOCAB_CHUNK

    elt = torch.finfo(cfg.dtype).bits // 8
    kv_heads = cfg.n_key_value_heads or cfg.n_heads
    kv = cfg.n_layers * 2 * kv_heads * cfg.d_head * (max_new_tokens + 1) * elt
    scan = 14 * cfg.d_vocab if on_gpu else 4 * 4 * min(cfg.d_vocab, CPU_VOCAB_CHUNK)
    acts = 4 * (cfg.d_model + 2 * (cfg.d_mlp or 0)) * elt
    return 2 * kv + scan + acts


def default_batch_size(model: Model, rows: int, max_new_tokens: int) -> int:
    """Rows decoded together by default: :data:`CPU_BATCH` on a CPU; on a GPU as many as fit in
    half of its free memory (the whole grid of an item when it fits), at :func:`row_bytes` each."""
    cfg = model.cfg
    if not str(cfg.device).startswith("cuda") or not torch.cuda.is_available():
        return CPU_BATCH
    free, _ = torch.cuda.mem_get_info(torch.device(cfg.device))
    return max(1, min(rows, int(free * 0.5) // max(row_bytes(cfg, max_new_tokens, True), 1)))


def balanced(n: int, batch_size: int) -> list[int]:
    """Sizes of the fewest batches of at most ``batch_size`` that hold ``n`` rows, as equal as can be."""
    k = -(-n // batch_size)
    return [n // k + (r < n % k) for r in range(k)] if n else []


def split_shared(configs: list[Config], n_layers: int, generate: bool) -> tuple[list[Config], list[Config]]:
    """(shared, own): configurations at the last target layer continue like vanilla after their
    first token (only when generating), the others decode on their own."""
    if not generate:
        return [], list(configs)
    return [c for c in configs if c.tgt == n_layers - 1], [c for c in configs if c.tgt != n_layers - 1]


def decode_batches(own: list[Config], continuations: list[int], batch_size: int) -> list[DecodeBatch]:
    """Near-equal batches of the configurations followed by the continuation rows."""
    work: list[Config | int] = [*own, *continuations]
    batches = []
    for size in balanced(len(work), batch_size):
        chunk, work = work[:size], work[size:]
        batches.append(DecodeBatch([c for c in chunk if isinstance(c, tuple)],
                                   [t for t in chunk if not isinstance(t, tuple)]))
    return batches


def run_item(inp: ItemInputs, configs: list[Config], batch_size: int,
             done: Callable[[int], None] = lambda k: None, alpha: float = 1.0) -> dict[Config, ConfigResult]:
    """Every configuration of one item, plus :data:`VANILLA`; ``done(k)`` reports progress in
    configurations (also within a batch, per decode step). ``configs`` must be sorted by
    target layer (:func:`by_target`); ``alpha`` blends the source in (1: replace)."""
    model, eng, van = inp.model, inp.engine, inp.vanilla_first
    cap = max(1, inp.max_new_tokens) if inp.generate else 1
    stats: dict[Config, tuple[list[float], float, float]] = {
        VANILLA: (van.cand_logprobs[0].tolist(), float(van.entropy[0]), float(van.margin[0]))}
    decoded: dict[Config, tuple[list[int], float, bool]] = {}

    def first_tokens(keys: list[Config], rows: fastpath.Rows) -> fastpath.Next:
        tgts, values = [c.tgt for c in keys], inp.values([c.src for c in keys])
        if inp.span == 1 and alpha == 1.0:  # the paper's transplant
            nxt = eng.first_step(rows, tgts, values, inp.cand_ids)
        else:
            nxt = eng.first_step(rows, tgts, values, inp.cand_ids, span=inp.span, alpha=alpha)
        for key, cand, ent, gap in zip(keys, nxt.cand_logprobs.tolist(), nxt.entropy.tolist(),
                                       nxt.margin.tolist()):
            stats[key] = (cand, ent, gap)
        return nxt

    shared, own = split_shared(configs, model.cfg.n_layers, inp.generate)
    first: dict[Config, tuple[int, float]] = {}  # shared configurations: first token, its log-prob
    if inp.generate:
        first[VANILLA] = (int(van.token[0]), float(van.logprob[0]))
        for size in balanced(len(shared), batch_size):
            keys, shared = shared[:size], shared[size:]
            nxt = first_tokens(keys, eng.rows(size, 1))
            first.update(zip(keys, zip(nxt.token.tolist(), nxt.logprob.tolist())))
    continuations = list(dict.fromkeys(t for t, _ in first.values()))  # one row per first token
    continued: dict[int, tuple[list[int], list[float], bool]] = {}
    for batch in decode_batches(own, continuations, batch_size):
        rows = eng.rows(batch.size, cap)
        parts = [first_tokens(batch.configs, rows)] if batch.configs else []  # they join by layer
        if batch.continuations:
            t = torch.tensor(batch.continuations, device=van.token.device)
            like = parts[0].logprob if parts else van.logprob  # placeholder log-probs
            parts.append(fastpath.Next(t, like.new_zeros(len(batch.continuations))))
        reported = 0
        if inp.generate:
            nxt = fastpath.Next(torch.cat([p.token for p in parts]), torch.cat([p.logprob for p in parts]))
            steps: list[list[float]] = []

            def tick(k: int, share: int = len(batch.configs)) -> None:  # progress within the batch
                nonlocal reported
                now = share * min(k, cap) // cap
                if now > reported:
                    done(now - reported)
                    reported = now
            ids, loglik, stopped = eng.greedy(rows, nxt, inp.max_new_tokens, inp.stop, steps, tick)
            for r, key in enumerate(batch.configs):
                decoded[key] = (ids[r], loglik[r], stopped[r])
            for r, token in enumerate(batch.continuations, start=len(batch.configs)):
                continued[token] = (ids[r], steps[r], stopped[r])
        else:
            for key in batch.configs:
                decoded[key] = ([], float("nan"), False)
        done(len(batch.configs) - reported)
    for key, (token, logprob) in first.items():
        ids, steps, stopped = continued[token]
        loglik = 0.0
        for x in [logprob, *steps[1:]] if steps else []:
            loglik += x
        decoded[key] = (list(ids), loglik, stopped)
    if not inp.generate:
        decoded[VANILLA] = ([], float("nan"), False)
    done(len(first) if inp.generate else 1)
    out = {}
    for key, (ids, loglik, stopped) in decoded.items():
        cand, entropy, margin = stats[key]
        out[key] = ConfigResult(cand_logprobs=cand, entropy=entropy, margin=margin, token_ids=ids,
                                loglik=loglik, stopped=stopped)
    return out
