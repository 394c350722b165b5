"""The N^2 sweep engine: every (source layer, target layer) configuration of many prompt pairs.

A transplant at target layer ``j`` changes only the target's last prompt position, and only
from layer ``j`` upward. So, per pair:

* one source pass captures the site at every layer;
* one target prompt pass (all tokens but the last) is shared by every configuration;
* one vanilla pass of the last token records the residual stream entering every layer;
* configurations, sorted by target layer and batched across target layers, recompute only the
  last token (each row joins at its layer ``j``) and then decode greedily on the shared prefix,
  rows leaving the batch at a stop token (:mod:`xtl.fastpath`).

Models the shared-prefix path does not cover run each step through TransformerLens' forward on
broadcast views of the prefix cache (``fast=False``). Outputs are token-identical to
:func:`xtl.transplant` (tested; logits agree to float rounding, see docs/performance.md).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

if TYPE_CHECKING:
    import pandas as pd
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from xtl import fastpath
from xtl.errors import XtlError
from xtl.store import ResultsStore
from xtl.transplant import (Site, _capture_tokens, _check_heads, check_layer, format_prompt,
                            greedy_decode, patch_hook, prefix_cache, stop_token_ids, tokenize)

__all__ = ["Pair", "sweep", "sweep_settings", "item_key", "as_pairs", "candidate_token_ids"]


@dataclass(frozen=True)
class Pair:
    """One parallel item: the source prompt is transplanted into the target prompt."""

    source: str
    target: str
    id: str
    meta: dict[str, Any] = field(default_factory=dict)


def candidate_token_ids(model: HookedTransformer, candidates: Sequence[str]) -> list[int]:
    """First token id of each candidate string (e.g. ``" (A"`` or ``"A"``), no special tokens."""
    ids = []
    for cand in candidates:
        toks = model.tokenizer(cand, add_special_tokens=False)["input_ids"]
        if not toks:
            raise XtlError(f"candidate {cand!r} tokenises to nothing; give a non-empty string")
        ids.append(toks[0])
    if len(set(ids)) < len(ids):
        pieces = [model.tokenizer.decode([i]) for i in ids]
        raise XtlError(
            f"candidates {list(candidates)} share first tokens {pieces}; first-token scoring "
            "needs candidates whose first tokens differ (e.g. 'A', 'B' instead of ' (A', ' (B')")
    return ids


def _as_pair(p: Any, k: int) -> Pair:
    """A :class:`Pair` from a Pair, an item with source/target, or a tuple; an item without an
    id gets a hash of its content (never its position, which another list would reuse)."""
    from xtl.tasks import content_id

    if isinstance(p, Pair):
        return p
    if hasattr(p, "source") and hasattr(p, "target"):
        meta = {key: getattr(p, key) for key in ("lang", "dataset", "gold") if hasattr(p, key)}
        pid = getattr(p, "id", None)
        return Pair(p.source, p.target, str(pid) if pid is not None else content_id(p.source, p.target), meta)
    if isinstance(p, (tuple, list)) and len(p) >= 2:
        if not (isinstance(p[0], str) and isinstance(p[1], str)):
            raise XtlError(f"pair #{k}: source and target must be strings")
        pid = str(p[2]) if len(p) > 2 and p[2] is not None else content_id(p[0], p[1])
        return Pair(p[0], p[1], pid, dict(p[3]) if len(p) > 3 else {})
    raise XtlError(f"pair #{k} is not (source, target[, id, meta]) nor a Pair; got {type(p).__name__}")


def _first_token_stats(logits: Float[Tensor, "batch vocab"], cand_ids: list[int]):
    logprobs = torch.log_softmax(logits.float(), dim=-1)  # float32, as xtl.transplant reports
    entropy = -(logprobs.exp() * logprobs).sum(-1)
    cand = logprobs[:, cand_ids] if cand_ids else logprobs[:, :0]
    return cand.cpu().tolist(), entropy.cpu().tolist()


def _rows_cache(vanilla: TransformerLensKeyValueCache, prefix: TransformerLensKeyValueCache,
                tgt_layer: int, batch: int) -> TransformerLensKeyValueCache:
    """Cache for configurations at target layer j: vanilla (all T positions) below j, prefix
    (T-1 positions, to be extended by the recomputed last token) from j up; broadcast views."""
    entries = []
    for layer, (v, p) in enumerate(zip(vanilla.entries, prefix.entries)):
        src = v if layer < tgt_layer else p
        entries.append(type(src)(past_keys=src.past_keys.expand(batch, -1, -1, -1),
                                 past_values=src.past_values.expand(batch, -1, -1, -1)))
    mask = vanilla.previous_attention_mask.expand(batch, -1)
    return TransformerLensKeyValueCache(entries=entries, previous_attention_mask=mask)


def _balanced(n: int, batch_size: int) -> list[int]:
    """Sizes of the fewest batches of at most ``batch_size`` that hold ``n`` rows, as equal as can be."""
    k = -(-n // batch_size)
    return [n // k + (r < n % k) for r in range(k)] if n else []


def _fast_configs(model: HookedTransformer, pre: fastpath.Prefix, vanilla: TransformerLensKeyValueCache,
                  resid_pre: list[Tensor], van_first: fastpath.Next, configs: list[tuple[int, int]],
                  site: Site, src_acts: Tensor | None, cand_ids: list[int], max_new_tokens: int,
                  stop: set[int], batch_size: int, generate: bool, done) -> dict:
    """First-token statistics and greedy responses of every configuration ``(j, i)`` of one pair
    on the shared prefix, in batches of at most ``batch_size`` rows; ``(-1, -1)`` is vanilla.

    A row transplanted at the last layer leaves every cached key and value as the vanilla pass
    wrote them (a site acts after its layer's keys and values), so after its first token it
    continues exactly as the vanilla row would from that token: one row per distinct first token
    is decoded for all of them, and each row's log-likelihood is summed from its own first
    log-prob and that row's later ones, in the order :func:`xtl.transplant.greedy_loop` sums.
    Returns ``{(j, i): (cand_logprobs, entropy, ids, loglik, stopped)}``.
    """
    n = model.cfg.n_layers
    cap = max(1, max_new_tokens) if generate else 1
    stats: dict[tuple[int, int], tuple] = {}
    first: dict[tuple[int, int], tuple[int, float]] = {}  # rows that continue like vanilla
    decoded: dict[tuple[int, int], tuple] = {}

    def step_one(keys: list[tuple[int, int]], rows: fastpath.Rows) -> fastpath.Next:
        nxt = fastpath.first_step(model, pre, rows, resid_pre, [j for j, _ in keys], site.target_kind,
                                  src_acts[[i for _, i in keys]], site.heads, cand_ids)
        for key, cand, ent in zip(keys, nxt.cand_logprobs.tolist(), nxt.entropy.tolist()):
            stats[key] = (cand, ent)
        return nxt

    stats[-1, -1] = (van_first.cand_logprobs[0].tolist(), float(van_first.entropy[0]))
    shared = n - 1 if generate else None  # target layer whose rows continue like vanilla
    tail = [c for c in configs if c[0] == shared]
    rest = [c for c in configs if c[0] != shared]
    if generate:
        first[-1, -1] = (int(van_first.token[0]), float(van_first.logprob[0]))
        for size in _balanced(len(tail), batch_size):
            keys, tail = tail[:size], tail[size:]
            nxt = step_one(keys, fastpath.vanilla_rows(model, pre, vanilla, size, 1))
            first.update(zip(keys, zip(nxt.token.tolist(), nxt.logprob.tolist())))
    reps = list(dict.fromkeys(t for t, _ in first.values()))  # one decoded row per first token
    items: list[tuple[int, int] | int] = [*rest, *reps]
    rep_out: dict[int, tuple] = {}
    for size in _balanced(len(items), batch_size):
        chunk, items = items[:size], items[size:]
        keys = [c for c in chunk if isinstance(c, tuple)]
        tokens = [t for t in chunk if not isinstance(t, tuple)]
        rows = fastpath.vanilla_rows(model, pre, vanilla, size, cap)
        parts = [step_one(keys, rows)] if keys else []  # configurations first: they join by layer
        if tokens:
            t = torch.tensor(tokens, device=van_first.token.device)
            like = parts[0].logprob if parts else van_first.logprob  # placeholder log-probs
            parts.append(fastpath.Next(t, like.new_zeros(len(tokens))))
        if generate:
            nxt = fastpath.Next(torch.cat([p.token for p in parts]), torch.cat([p.logprob for p in parts]))
            steps: list[list[float]] = []
            reported = 0

            def tick(k: int, share: int = len(keys)) -> None:  # progress within the batch
                nonlocal reported
                now = share * min(k, cap) // cap
                if now > reported:
                    done(now - reported)
                    reported = now
            ids, loglik, stopped = fastpath.greedy(model, pre, rows, nxt, max_new_tokens, stop, steps, tick)
            for r, key in enumerate(keys):
                decoded[key] = (ids[r], loglik[r], stopped[r])
            for r, token in enumerate(tokens, start=len(keys)):
                rep_out[token] = (ids[r], steps[r], stopped[r])
        else:
            reported = 0
            for key in keys:
                decoded[key] = ([], float("nan"), False)
        done(len(keys) - reported)
    for key, (token, logprob) in first.items():
        ids, steps, stopped = rep_out[token]
        loglik = 0.0
        for x in [logprob, *steps[1:]] if steps else []:
            loglik += x
        decoded[key] = (list(ids), loglik, stopped)
    if not generate:
        decoded[-1, -1] = ([], float("nan"), False)
    done(len(first) if generate else 1)
    return {key: (*stats[key], *decoded[key]) for key in decoded}


@torch.no_grad()
def _sweep_pair(model: HookedTransformer, pair: Pair, site: Site, src_layers: list[int],
                tgt_layers: list[int], max_new_tokens: int, mode: str, batch_size: int,
                cand_ids: list[int], stop: set[int], chat: bool, on_rows=None,
                fast: bool = False) -> list[dict]:
    tok = model.tokenizer
    src_acts = None
    if src_layers and tgt_layers:  # vanilla-only runs (evaluation) need no source pass
        src_tokens = tokenize(model, format_prompt(model, pair.source, chat), what=f"source prompt of item {pair.id}")
        src_acts = _capture_tokens(model, src_tokens, Site(site.kind, site.heads))
    tokens = tokenize(model, format_prompt(model, pair.target, chat), max_new_tokens, f"target prompt of item {pair.id}")
    prefix = prefix_cache(model, tokens)

    # Vanilla last-token pass: records resid_pre of every layer and the full vanilla cache.
    resid: dict[int, Tensor] = {}

    def keep(layer):
        def hook(act, hook=None):  # noqa: ARG001
            resid[layer] = act.detach()
        return hook

    vanilla = TransformerLensKeyValueCache(
        entries=[type(e)(e.past_keys, e.past_values) for e in prefix.entries],
        previous_attention_mask=prefix.previous_attention_mask)
    with model.hooks(fwd_hooks=[(f"blocks.{l}.hook_resid_pre", keep(l)) for l in range(model.cfg.n_layers)]):
        van_logits = model(tokens[-1].reshape(1, 1).to(model.cfg.device), past_kv_cache=vanilla)[:, -1]

    rows: list[dict] = []

    def row(i: int, j: int, cand, ent, ids, loglik, stopped) -> dict:
        return {"item_id": pair.id, "src_layer": i, "tgt_layer": j, "is_vanilla": i < 0,
                "response": tok.decode(ids, skip_special_tokens=True) if ids else "",
                "token_ids": ids, "n_tokens": len(ids), "stopped": stopped,
                "loglik": loglik, "entropy": ent, "cand_logprobs": cand}

    def emit(configs, cand, ent, decode):
        if mode == "generate":
            ids, loglik, stopped = decode()
        else:
            ids, loglik, stopped = [[] for _ in configs], [float("nan")] * len(configs), [False] * len(configs)
        for r, (i, j) in enumerate(configs):
            rows.append(row(i, j, cand[r], ent[r], ids[r], loglik[r], stopped[r]))
        if on_rows is not None:
            on_rows(len(configs))

    if fast:
        configs = sorted((j, i) for j in tgt_layers for i in src_layers)
        results = _fast_configs(
            model, fastpath.prefix_from_cache(model, prefix), vanilla,
            [resid[layer] for layer in range(model.cfg.n_layers)],
            fastpath.next_from_logits(van_logits, cand_ids), configs, site, src_acts, cand_ids,
            max_new_tokens, stop, batch_size, mode == "generate", on_rows or (lambda k: None))
        for j, i in [(-1, -1), *configs]:
            rows.append(row(i, j, *results[j, i]))
        return rows

    def tl_emit(logits, configs, cache):
        cand, ent = _first_token_stats(logits, cand_ids)
        emit(configs, cand, ent, lambda: greedy_decode(model, cache, logits, max_new_tokens, stop))

    base_vanilla = TransformerLensKeyValueCache(
        entries=[type(e)(e.past_keys, e.past_values) for e in vanilla.entries],
        previous_attention_mask=vanilla.previous_attention_mask)
    tl_emit(van_logits, [(-1, -1)], base_vanilla)
    for j in tgt_layers:
        for start in range(0, len(src_layers), batch_size):
            chunk = src_layers[start:start + batch_size]
            b = len(chunk)
            cache = _rows_cache(vanilla, prefix, j, b)
            values = src_acts[chunk]
            x = resid[j].expand(b, -1, -1)
            with model.hooks(fwd_hooks=[(site.hook_name(j), patch_hook(site, values))]):
                logits = model(x, start_at_layer=j, past_kv_cache=cache)[:, -1]
            tl_emit(logits, [(i, j) for i in chunk], cache)
    return rows


def sweep_settings(model: HookedTransformer, site: "str | Site", src_layers: Sequence[int] | None,
                   tgt_layers: Sequence[int] | None, max_new_tokens: int, mode: str,
                   candidates: Sequence[str], chat: bool, settings: dict[str, Any] | None) -> dict[str, Any]:
    """The settings a sweep records in its store (checked: site, layers, mode), shared by
    :func:`sweep` and :func:`xtl.distributed.sweep_ray` so that either resumes the other."""
    if mode not in ("generate", "logits"):
        raise XtlError(f"mode must be 'generate' or 'logits', not {mode!r}")
    site = Site.parse(site)
    _check_heads(model, site)
    n = model.cfg.n_layers
    srcs = sorted({check_layer(model, l, "source layer") for l in (src_layers if src_layers is not None else range(n))})
    tgts = sorted({check_layer(model, l, "target layer") for l in (tgt_layers if tgt_layers is not None else range(n))})
    return {"model": model.cfg.model_name, "n_layers": n, "site": str(site), "src_layers": srcs,
            "tgt_layers": tgts, "max_new_tokens": max_new_tokens, "mode": mode,
            "candidates": list(candidates), "chat": chat, **(settings or {})}


def item_key(p: Pair) -> str:
    """The results store's key of an item: ``dataset/lang/id``."""
    return f"{p.meta.get('dataset', '')}/{p.meta.get('lang', '')}/{p.id}"


def as_pairs(items: Iterable[Any]) -> list[Pair]:
    """Items as :class:`Pair` objects, refusing two with one key."""
    pairs = [_as_pair(p, k) for k, p in enumerate(items)]
    seen: dict[str, int] = {}
    for k, p in enumerate(pairs):
        if item_key(p) in seen:
            raise XtlError(f"items #{seen[item_key(p)]} and #{k} have the same key {item_key(p)!r}; give "
                           "every item its own id (items without one are keyed by their content)")
        seen[item_key(p)] = k
    return pairs


def _run_shared(results: ResultsStore, todo: list[Pair], key, run, skip, wait: float) -> None:
    """Run the items of a store that no other process is running: an item claimed by a live
    process is skipped, then waited for (taken over if its process dies), so every item ends
    in the store exactly once."""
    pending = list(todo)
    while pending:
        later = []
        for p in pending:
            k = key(p)
            if results.has(k):  # finished by another process meanwhile
                skip(p)
                continue
            if not results.claim(k):
                later.append(p)
                continue
            try:
                if not results.has(k):
                    run(p)
                else:
                    skip(p)
            finally:
                results.release(k)
        if later:
            time.sleep(wait)
        pending = later


def sweep(model: HookedTransformer, pairs: Iterable[Any], site: "str | Site" = "mlp",
          src_layers: Sequence[int] | None = None, tgt_layers: Sequence[int] | None = None,
          max_new_tokens: int = 20, mode: str = "generate", store: str | os.PathLike | None = None,
          batch_size: int = 512, candidates: Sequence[str] = (), chat: bool = False,
          progress: bool = True, settings: dict[str, Any] | None = None,
          fast: bool | None = None, claim_wait: float = 1.0) -> "pd.DataFrame":
    """Run every (source layer, target layer) transplant for every pair.

    Args:
        model: a HookedTransformer from :func:`xtl.load_model`.
        pairs: :class:`Pair` items, dataset items with ``source``/``target``, or tuples
            ``(source, target, id, meta)``.
        site: ``"attn"``, ``"mlp"``, ``"block"`` or ``"heads:0,3"``.
        src_layers: source layers to sweep (default: all).
        tgt_layers: target layers to sweep (default: all).
        max_new_tokens: greedy tokens per configuration.
        mode: ``"generate"`` (responses) or ``"logits"`` (first-token statistics only).
        store: directory of a results store; finished items are skipped, new ones appended.
        batch_size: configurations decoded together (memory knob).
        candidates: strings whose first-token log-probs are recorded (e.g. answer options).
        chat: apply the tokenizer's chat template.
        progress: show a progress bar with configurations/s and ETA.
        settings: extra settings recorded in the store manifest (dataset name, ...).
        fast: use the shared-prefix path (:mod:`xtl.fastpath`); default: whenever the
            architecture allows it. ``False`` runs every step through TransformerLens' forward.
        claim_wait: seconds between looks at items another process is running into the same
            store (they are skipped, then waited for; see :meth:`ResultsStore.claim`).

    Returns:
        A pandas DataFrame, one row per item x configuration plus one vanilla row per item.
    """
    import pandas as pd

    if batch_size < 1:
        raise XtlError("batch_size must be at least 1")
    meta = sweep_settings(model, site, src_layers, tgt_layers, max_new_tokens, mode, candidates,
                          chat, settings)
    site = Site.parse(meta["site"])
    n, srcs, tgts, model_name = meta["n_layers"], meta["src_layers"], meta["tgt_layers"], meta["model"]
    pairs = as_pairs(pairs)
    why_not = fastpath.unsupported(model)
    if fast and why_not:
        raise XtlError(f"the shared-prefix path cannot run this model ({why_not}); use fast=False")
    fast = why_not is None if fast is None else fast
    cand_ids = candidate_token_ids(model, candidates)
    stop = stop_token_ids(model)
    results = ResultsStore(store, meta) if store is not None else None
    key = item_key
    todo = [p for p in pairs if results is None or not results.has(key(p))]
    per_item = len(srcs) * len(tgts) + 1
    all_rows: list[dict] = []
    finished = len(pairs) - len(todo)
    bar = tqdm(total=len(todo) * per_item, unit="cfg", disable=not progress,
               desc=f"sweep {site} ({finished}/{len(pairs)} items done)")
    computed = 0

    def skip(p: Pair) -> None:  # done by another process
        nonlocal finished
        finished += 1
        bar.update(per_item)
        bar.set_description(f"sweep {site} ({finished}/{len(pairs)} items done)")

    def run(p: Pair) -> None:
        nonlocal finished, computed
        rows = _sweep_pair(model, p, site, srcs, tgts, max_new_tokens, mode, batch_size,
                           cand_ids, stop, chat, on_rows=bar.update, fast=fast)
        for r in rows:
            r.update(model=model_name, n_layers=n, site=str(site), item_key=key(p),
                     dataset=p.meta.get("dataset", ""), lang=p.meta.get("lang", ""),
                     gold=str(p.meta.get("gold", "")))
        if results is not None:
            results.write(key(p), rows)
        all_rows.extend(rows)
        finished += 1
        computed += 1
        bar.set_description(f"sweep {site} ({finished}/{len(pairs)} items done)")

    try:
        if results is None:
            for p in todo:
                run(p)
        else:
            _run_shared(results, todo, key, run, skip, claim_wait)
    finally:
        bar.close()
    if results is not None and progress:
        print(f"xtl: {computed} item(s) computed here, {len(pairs) - computed} already in the store "
              "or computed by another process", file=sys.stderr)
    if results is not None:
        from xtl.store import read_store

        return read_store(results.path)
    return pd.DataFrame(all_rows)
