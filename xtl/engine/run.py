"""The N^2 sweep: every (source layer, target layer) configuration of many items.

A transplant at target layer ``j`` changes only the target's last prompt position, and only
from layer ``j`` upward. So, per item:

* one source pass captures the site at every layer;
* one target prompt pass (all tokens but the last) is shared by every configuration;
* one vanilla pass of the last token records the residual stream entering every layer;
* configurations, sorted by target layer and batched across target layers, recompute only the
  last token (each row joins at its layer ``j``) and then decode greedily on the shared prefix,
  rows leaving the batch at a stop token (:mod:`xtl.engine.schedule`, :mod:`xtl.engine.kernel`).

Models the shared-prefix kernel does not cover run each step through TransformerLens' forward
(:mod:`xtl.engine.reference`). Outputs are token-identical to :func:`xtl.transplant` (tested;
logits agree to float rounding, see docs/performance.md).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm
from xtl._calls import keyword_call
from xtl.models.backends import Model

from xtl.engine import engines, schedule
from xtl.engine.reference import run_item_reference
from xtl.engine.screening import gold_choice, screen_item, top_configs
from xtl.engine.screening import gold_margin as gold_margin_of
from xtl.engine.settings import EngineOptions, SweepRequest, candidate_token_ids, resolve
from xtl.engine.store import ResultsStore, read_store
from xtl.errors import XtlError
from xtl.patching.ops import broadcast_cache, prefix_cache
from xtl.patching.prompts import format_prompt, stop_token_ids, tokenize
from xtl.patching.single import capture_positions, capture_tokens, tail_cache
from xtl.patching.variants import check_positions, mix
from xtl.patching.sites import Site
from xtl.schema import VANILLA, Config, SweepSettings
from xtl.tasks.item import Item, as_items

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["sweep", "run_sweep", "sweep_item", "Prepared", "prepare", "item_inputs", "result_rows"]

log = logging.getLogger("xtl")


@dataclass(frozen=True)
class Prepared:
    """What every item of one sweep shares, worked out once from its settings."""

    settings: SweepSettings
    site: Site
    cand_ids: list[int]
    stop: set[int]
    fast: bool
    batch_size: int

    @property
    def configs(self) -> list[Config]:
        """Every configuration, ordered by target layer (the order rows join the batch)."""
        return schedule.by_target(self.settings.configs)


def prepare(model: Model, settings: SweepSettings, options: EngineOptions) -> Prepared:
    """Check the engine options against the model and fill in their defaults."""
    why_not = engines.unsupported(model, Site.parse(settings.site))
    if why_not is None and settings.positions > 1:
        why_not = (f"positions={settings.positions}: the patched positions are recomputed on the prefix "
                   "before them, through the model's own forward")
    if options.fast and why_not:
        raise XtlError(f"the shared-prefix path cannot run this model ({why_not}); use fast=False")
    fast = why_not is None if options.fast is None else options.fast
    batch = options.batch_size or schedule.default_batch_size(
        model, settings.configs_per_item, settings.max_new_tokens)
    if why_not:
        log.info("sweep: the per-step path runs this model (%s)", why_not)
    return Prepared(settings, Site.parse(settings.site), candidate_token_ids(model, settings.candidates),
                    stop_token_ids(model), fast, batch)


@torch.no_grad()
def item_inputs(model: Model, item: Item, prep: Prepared) -> schedule.ItemInputs:
    """The passes every configuration of ``item`` shares: the source capture, the target's
    prompt prefix, and the vanilla last-token pass with the residual entering every layer."""
    s = prep.settings
    k = s.positions
    tokens = tokenize(model, format_prompt(model, item.target, s.chat), s.max_new_tokens,
                      f"target prompt of item {item.id}")
    check_positions(k, (f"target prompt of item {item.id}", tokens.shape[0]))
    src_acts = None
    if s.src_layers and s.tgt_layers:  # vanilla-only runs (evaluation) need no source pass
        acts = []
        for what, prompt in item_sources(item, s.source_langs).items():
            src_tokens = tokenize(model, format_prompt(model, prompt, s.chat), what=f"{what} of item {item.id}")
            check_positions(k, (f"{what} of item {item.id}", src_tokens.shape[0]))
            acts.append(capture_tokens(model, src_tokens, prep.site) if k == 1
                        else capture_positions(model, src_tokens, prep.site, k))
        src_acts = mix(acts, s.weights)
    prefix = prefix_cache(model, tokens)
    resid: dict[int, Tensor] = {}

    def keep(layer: int) -> Callable:
        def hook(act: Tensor, hook=None) -> None:  # noqa: ARG001
            resid[layer] = act.detach()
        return hook

    vanilla = broadcast_cache(prefix)  # new entries over the prefix's tensors: the prefix stays T-1 long
    n = model.cfg.n_layers
    with model.hooks(fwd_hooks=[(f"blocks.{l}.hook_resid_pre", keep(l)) for l in range(n)]):
        logits = model(tokens[-1].reshape(1, 1).to(model.cfg.device), past_kv_cache=vanilla)[:, -1]
    return schedule.ItemInputs(
        model=model, prefix_cache=prefix, vanilla=vanilla, vanilla_logits=logits,
        resid_pre=[resid[layer] for layer in range(n)], site=prep.site, src_acts=src_acts,
        cand_ids=prep.cand_ids, stop=prep.stop, max_new_tokens=s.max_new_tokens,
        generate=s.mode == "generate",
        last_token=tokens[-1].to(model.cfg.device),
        span=s.span, positions=k, tail=tail_cache(model, tokens, k) if k > 1 else None,
        tail_tokens=tokens[-k:].to(model.cfg.device) if k > 1 else None)


def item_sources(item: Item, source_langs: Sequence[str] = ()) -> dict[str, str]:
    """The source prompt(s) of ``item`` by name: its own, or its parallel prompts in
    ``source_langs`` (``item.meta["sources"]``, what :func:`xtl.load_task` with ``source_langs`` adds)."""
    if not source_langs:
        return {"source prompt": item.source}
    have = item.meta.get("sources") or {}
    missing = [lang for lang in source_langs if lang not in have]
    if missing:
        raise XtlError(f"item {item.key} has no source prompt in {', '.join(missing)}; load the task with those "
                       f"source languages: xtl.load_task(..., source_langs={list(source_langs)}) "
                       f"(xtl sweep --source-langs {' '.join(source_langs)})")
    return {f"{lang} source prompt": have[lang] for lang in source_langs}


def result_rows(model: Model, item: Item, settings: SweepSettings,
                results: dict[Config, schedule.ConfigResult], estimates: dict[Config, float] | None = None,
                *, alpha: float = 1.0, vanilla: bool = True) -> list[dict[str, Any]]:
    """The results table's rows of one item (columns: :data:`xtl.schema.SWEEP`) at ``alpha``,
    vanilla first (``vanilla=False``: without it; its ``alpha`` is 1, nothing is blended in);
    ``estimates``: the gradient screen's estimate of each configuration (``screen_estimate``; at
    ``alpha`` it is ``alpha`` times the replacement's, the first-order estimate of the blend)."""
    decode = model.tokenizer.decode
    choice = _choice(item, settings.candidates)
    rows = []
    sources = settings.sources_label
    for config in [VANILLA, *sorted(c for c in results if c != VANILLA)]:
        if config == VANILLA and not vanilla:
            continue
        r = results[config]
        gold_margin = float("nan") if choice is None or not r.cand_logprobs else float(
            gold_margin_of(torch.tensor(r.cand_logprobs, dtype=torch.float64), *choice))
        rows.append({
            "item_key": item.key, "item_id": item.id, "dataset": item.dataset, "lang": item.lang,
            "gold": str(item.gold), "model": settings.model, "n_layers": settings.n_layers,
            "site": settings.site, "mode": settings.mode, "src_layer": config.src, "tgt_layer": config.tgt,
            "alpha": 1.0 if config == VANILLA else float(alpha), "span": settings.span,
            "positions": settings.positions, "sources": sources, "is_vanilla": config == VANILLA,
            "response": decode(r.token_ids, skip_special_tokens=True) if r.token_ids else "",
            "token_ids": r.token_ids, "n_tokens": len(r.token_ids), "stopped": r.stopped,
            "loglik": r.loglik, "entropy": r.entropy, "margin": r.margin, "cand_logprobs": r.cand_logprobs,
            "gold_margin": gold_margin, "screen_estimate": float(alpha) * (estimates or {}).get(config, float("nan"))})
    return rows


def _choice(item: Item, candidates: Sequence[str]) -> tuple[int, list[int]] | None:
    """The gold candidate and its rivals (:func:`xtl.engine.screening.gold_choice`), or None
    when the item's gold is not among the candidates."""
    if not candidates:
        return None
    try:
        return gold_choice(item, candidates)
    except XtlError:
        return None


@torch.no_grad()
def sweep_item(model: Model, item: Item, prep: Prepared,
               done: Callable[[int], None] = lambda k: None) -> list[dict[str, Any]]:
    """Every configuration of one item (and vanilla) as rows of the results table, once per
    alpha of the sweep (the item's passes are shared by every alpha)."""
    inputs = item_inputs(model, item, prep)
    configs, estimates = prep.configs, None
    if prep.settings.screen is not None and configs:
        estimates = screened(model, item, prep, inputs)
        configs = schedule.by_target(top_configs(estimates, prep.settings.screen))
    rows: list[dict[str, Any]] = []
    for k, alpha in enumerate(prep.settings.alpha):
        if prep.fast:
            results = schedule.run_item(inputs, configs, prep.batch_size, done if k == 0 else _no_vanilla(done), alpha)
        else:
            results = run_item_reference(model, inputs, configs, prep.batch_size,
                                         done if k == 0 else _no_vanilla(done), alpha)
        rows += result_rows(model, item, prep.settings, results, estimates, alpha=alpha, vanilla=k == 0)
    return rows


def screened(model: Model, item: Item, prep: Prepared, inputs: schedule.ItemInputs) -> dict[Config, float]:
    """The gradient screen's estimate of each of the sweep's configurations of ``item``
    (:mod:`xtl.engine.screening`; the source capture and the target's prefix are the sweep's own)."""
    s = prep.settings
    gold, others = gold_choice(item, s.candidates)
    srcs, tgts = sorted({c.src for c in prep.configs}), sorted({c.tgt for c in prep.configs})
    est, _ = screen_item(model, item, prep.site, prep.cand_ids, gold, others, srcs, tgts, s.chat,
                         inputs.src_acts, inputs.prefix_cache)
    return {c: float(est[srcs.index(c.src), tgts.index(c.tgt)]) for c in prep.configs}


def _no_vanilla(done: Callable[[int], None]) -> Callable[[int], None]:
    """Progress of a later alpha's run, whose vanilla row is not written again (one less)."""
    seen = {"left": 1}

    def report(k: int) -> None:
        skip = min(seen["left"], k)
        seen["left"] -= skip
        if k - skip:
            done(k - skip)
    return report


def _run_claimed(results: ResultsStore, todo: list[Item], run: Callable[[Item], None],
                 skip: Callable[[Item], None], wait: float) -> None:
    """Run the items of a store that no other process is running: an item claimed by a live
    process is skipped, then waited for (taken over if its process dies), so every item ends
    in the store exactly once. A wait is logged once per item, naming who holds it."""
    pending = list(todo)
    waiting: set[str] = set()
    while pending:
        later = []
        for it in pending:
            if results.has(it.key):  # finished by another process meanwhile
                skip(it)
                continue
            if not results.claim(it.key):
                if it.key not in waiting:
                    waiting.add(it.key)
                    who = results.claimant(it.key)
                    log.info("waiting for item %s: %s is running it (if that process is gone, delete %s)",
                             it.key, who.describe() if who else "another process", results.claim_file(it.key))
                later.append(it)
                continue
            try:
                if not results.has(it.key):
                    run(it)
                else:
                    skip(it)
            finally:
                results.release(it.key)
        if later:
            time.sleep(wait)
        pending = later


#: The manifest's name of each engine path (``Prepared.fast``): in float64 both give the same
#: tokens; in bfloat16 they may differ in the last bits (docs/semantics.md), so a store records
#: which one computed it, and a resume takes the same one.
ENGINE_PATHS = {True: "shared-prefix", False: "per-step"}


def _store_engine(store: str | os.PathLike | None, options: EngineOptions) -> EngineOptions:
    """``options`` with the engine path of the store being resumed, where the caller left it open."""
    from pathlib import Path

    from xtl.engine.store import MANIFEST, read_manifest

    if (not isinstance(store, (str, os.PathLike)) or options.fast is not None
            or not (Path(store) / MANIFEST).exists()):
        return options  # not a path: ResultsStore says so in one line
    recorded = read_manifest(store).get("engine")
    if recorded not in ENGINE_PATHS.values():
        return options
    return replace(options, fast=recorded == ENGINE_PATHS[True])


def run_sweep(model: Model, items: list[Item], settings: SweepSettings,
              options: EngineOptions = EngineOptions(), store: str | os.PathLike | None = None) -> "pd.DataFrame":
    """Sweep ``items`` with resolved ``settings``: the engine behind :func:`sweep` and the Ray
    workers. Finished items in ``store`` are skipped; each new one is written as it finishes."""
    import pandas as pd

    options = _store_engine(store, options)
    prep = prepare(model, settings, options)
    settings = settings.replace(engine=ENGINE_PATHS[prep.fast])
    prep = replace(prep, settings=settings)
    results = ResultsStore(store, settings) if store is not None else None
    todo = [it for it in items if results is None or not results.has(it.key)]
    per_item = settings.configs_per_item
    all_rows: list[dict] = []
    finished, computed = len(items) - len(todo), 0
    # the bar counts runs: each item's configurations and its vanilla run, and says so
    what = f"{per_item - 1} configuration{'s' * (per_item != 2)} + vanilla"

    def label() -> str:
        return f"sweep {settings.site}: {what} per item, {finished}/{len(items)} items done"

    bar = tqdm(total=len(todo) * per_item, unit="run", disable=not options.progress, desc=label())

    def advance(step: int) -> None:
        nonlocal finished
        finished += step
        bar.set_description(label())

    def skip(it: Item) -> None:  # done by another process
        bar.update(per_item)
        advance(1)

    def run(it: Item) -> None:
        nonlocal computed
        rows = sweep_item(model, it, prep, bar.update)
        if results is not None:
            results.write(it.key, rows)
        all_rows.extend(rows)
        computed += 1
        advance(1)

    try:
        if results is None:
            for it in todo:
                run(it)
        else:
            _run_claimed(results, todo, run, skip, options.claim_wait)
    finally:
        bar.close()
    if results is None:
        return with_settings(pd.DataFrame(all_rows), settings)
    log.info("%d item(s) computed here, %d already in the store or computed by another process",
             computed, len(items) - computed)
    return with_settings(read_store(results.path), settings)


def with_settings(df: "pd.DataFrame", settings: SweepSettings) -> "pd.DataFrame":
    """``df`` carrying its sweep's candidates and mode (``df.attrs``), so that evaluating it needs
    nothing restated (:func:`xtl.evaluate` reads them)."""
    df.attrs["candidates"] = list(settings.candidates)
    df.attrs["mode"] = settings.mode
    return df


@keyword_call("xtl.sweep", "xtl.sweep(model, items, site=..., store=..., ...)", positional=2,
              legacy=("site", "src_layers", "tgt_layers", "max_new_tokens", "mode", "store", "batch_size",
                      "candidates", "chat", "progress", "settings", "fast", "claim_wait", "grid", "screen"))
def sweep(model: Model, items: Iterable[Any], *, site: "str | Site" = "mlp",
          src_layers: Sequence[int] | None = None, tgt_layers: Sequence[int] | None = None,
          max_new_tokens: int = 20, mode: str = "generate", store: str | os.PathLike | None = None,
          batch_size: int | None = None, candidates: Sequence[str] = (), chat: bool | None = None,
          progress: bool = True, settings: dict[str, Any] | None = None,
          fast: bool | None = None, claim_wait: float = 1.0, grid: str = "full",
          screen: int | None = None,
          alpha: "float | Sequence[float]" = 1.0, span: int = 1, positions: int = 1,
          source_langs: Sequence[str] = (), weights: "Sequence[float] | dict[str, float] | None" = None,
          extrapolate: bool = False) -> "pd.DataFrame":
    """Run every (source layer, target layer) transplant for every item.

    Args:
        model: a Model from :func:`xtl.load_model`.
        items: :class:`xtl.Item` records (from :func:`xtl.load_task`), objects with
            ``source``/``target``, or tuples ``(source, target[, id, meta])``.
        site: ``"attn"``, ``"mlp"``, ``"block"``, ``"heads:0,3"`` or ``"attn-authors"``.
        src_layers: source layers to sweep (default: all).
        tgt_layers: target layers to sweep (default: all). Empty src_layers and tgt_layers
            both: vanilla rows only.
        max_new_tokens: greedy tokens per configuration.
        mode: ``"generate"`` (responses) or ``"logits"`` (first-token statistics only).
        store: directory of a results store; finished items are skipped, new ones appended.
        batch_size: configurations decoded together (memory knob); default: 512 on a CPU, as
            many as fit in half the free memory of a GPU (the whole grid when it fits).
        candidates: strings whose first-token log-probs are recorded (e.g. answer options).
        chat: apply the tokenizer's chat template.
        progress: show a progress bar with configurations/s and ETA.
        settings: extra settings recorded in the store manifest (``data``, ``langs``, ...).
        fast: use the shared-prefix kernel (:mod:`xtl.engine.kernel`); default: whenever the
            architecture allows it. ``False`` runs every step through TransformerLens' forward.
        claim_wait: seconds between looks at items another process is running into the same
            store (they are skipped, then waited for; see :meth:`ResultsStore.claim`).
        grid: ``"full"`` (every source × target) or ``"cross"``: the last source layer into
            every target and every source into target 0, the 2N − 1 configurations that the
            bounds SourceLast and TargetFirst need (63 instead of 1,024 for 32 layers).
        screen: run only each item's ``screen`` best configurations by the gradient screen
            (:func:`xtl.screen`: the estimated change of the gold option's first-token margin;
            needs ``candidates``), plus vanilla; every row records its estimate (``screen_estimate``).
        alpha: blend ``a_t <- (1 - alpha) a_t + alpha a_s`` (1: the paper's replacement); a list
            sweeps it as an axis, one row per configuration and value (column ``alpha``).
        span: layers ``i..i+span-1`` into ``j..j+span-1``; configurations whose span leaves the
            model are not run.
        positions: the last ``positions`` prompt positions, aligned from the end (runs on the
            per-step path when > 1).
        source_langs: mix several sources: each item's parallel prompts in these languages
            (``xtl.load_task(..., source_langs=...)`` adds them), their weighted mean transplanted.
        weights: the sources' weights (default equal), normalised to sum 1.
        extrapolate: allow ``alpha`` outside [0, 1] (an extrapolation, not a blend).

    Returns:
        A pandas DataFrame, one row per item x configuration plus one vanilla row per item
        (columns: :data:`xtl.schema.SWEEP`).
    """
    options = EngineOptions(batch_size=batch_size, fast=fast, claim_wait=claim_wait, progress=progress)
    request = SweepRequest(site=site, src_layers=src_layers, tgt_layers=tgt_layers,
                           max_new_tokens=max_new_tokens, mode=mode, candidates=tuple(candidates)
                           if not isinstance(candidates, str) else candidates, chat=chat,
                           recorded=settings or {}, grid=grid, screen=screen, alpha=alpha, span=span, positions=positions,
                           source_langs=tuple(source_langs) if not isinstance(source_langs, str) else source_langs,
                           weights=weights, extrapolate=extrapolate)
    items = as_items(items)
    records = {json.dumps(it.meta.get("task_record"), sort_keys=True) for it in items}
    if len(records) == 1 and items and items[0].meta.get("task_record") and "data" not in (settings or {}):
        request = replace(request, recorded={**items[0].meta["task_record"], **(settings or {})})
    resolved = resolve(model, request)
    return run_sweep(model, items, resolved, options, store)
