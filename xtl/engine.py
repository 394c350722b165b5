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

from xtl import fastpath, schedule
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
    wide = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
    return cand.cpu().tolist(), entropy.cpu().tolist(), fastpath.first_token_margin(wide).cpu().tolist()


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

    def row(i: int, j: int, cand, ent, gap, ids, loglik, stopped) -> dict:
        return {"item_id": pair.id, "src_layer": i, "tgt_layer": j, "is_vanilla": i < 0,
                "response": tok.decode(ids, skip_special_tokens=True) if ids else "",
                "token_ids": ids, "n_tokens": len(ids), "stopped": stopped,
                "loglik": loglik, "entropy": ent, "margin": gap, "cand_logprobs": cand}

    def emit(configs, cand, ent, gap, decode):
        if mode == "generate":
            ids, loglik, stopped = decode()
        else:
            ids, loglik, stopped = [[] for _ in configs], [float("nan")] * len(configs), [False] * len(configs)
        for r, (i, j) in enumerate(configs):
            rows.append(row(i, j, cand[r], ent[r], gap[r], ids[r], loglik[r], stopped[r]))
        if on_rows is not None:
            on_rows(len(configs))

    if fast:
        configs = sorted((j, i) for j in tgt_layers for i in src_layers)
        inputs = schedule.ItemInputs(
            model, fastpath.prefix_from_cache(model, prefix), vanilla,
            [resid[layer] for layer in range(model.cfg.n_layers)],
            fastpath.next_from_logits(van_logits, cand_ids), site, src_acts, cand_ids, stop,
            max_new_tokens, mode == "generate")
        results = schedule.run_item(inputs, configs, batch_size, on_rows or (lambda k: None))
        for j, i in [schedule.VANILLA, *configs]:
            rows.append(row(i, j, *results[j, i]))
        return rows

    def tl_emit(logits, configs, cache):
        cand, ent, gap = _first_token_stats(logits, cand_ids)
        emit(configs, cand, ent, gap, lambda: greedy_decode(model, cache, logits, max_new_tokens, stop))

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
          batch_size: int | None = None, candidates: Sequence[str] = (), chat: bool = False,
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
        batch_size: configurations decoded together (memory knob); default: 512 on a CPU, as
            many as fit in half the free memory of a GPU (the whole grid when it fits).
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

    if batch_size is not None and batch_size < 1:
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
    if batch_size is None:
        batch_size = schedule.default_batch_size(model, len(srcs) * len(tgts) + 1, max_new_tokens)
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
