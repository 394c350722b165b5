"""A gradient screen of the N² grid: a first-order estimate of every configuration's change of
the gold first-token margin, from one source pass and one forward and backward pass of the target.

The margin ``m`` of an item is the gold option's first-token logit minus the best other option's,
over the sweep's candidates that are options of the item (the choice logits mode makes:
``m > 0`` exactly when logits mode answers right). Writing the source's activation ``a_s^i``
over the target's ``a_t^j`` at the last prompt token changes ``m`` by, to first order,

    Δm(i, j) ≈ ∇_{a_t^j} m · (a_s^i − a_t^j)

with the gradient taken through every layer after ``j``. One backward pass gives ``∇_{a_t^j} m``
for every target layer ``j``, and every cell follows from one matrix product
``A_s G^T − diag(A_t G^T)``. For ``heads`` sites only the site's heads enter the product.
See docs/extensions.md for where the estimate is and is not reliable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from xtl._calls import keyword_call
from xtl.errors import XtlError
from xtl.models.backends import Model
from xtl.patching.ops import broadcast_cache, prefix_cache
from xtl.patching.prompts import check_count, check_model, check_site, format_prompt, tokenize
from xtl.patching.single import capture_tokens
from xtl.patching.sites import Site
from xtl.schema import Config
from xtl.tasks.item import Item, as_items, option_label

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ScreenResult", "screen", "screen_item", "gold_choice", "gold_margin", "top_configs", "default_candidates"]


def gold_choice(item: Item, candidates: Sequence[str]) -> tuple[int, list[int]]:
    """(index of the gold candidate, indices of the other candidates that are options of ``item``)."""
    if item.kind == "qa" or not candidates:
        raise XtlError(f"the screen estimates the gold option's first-token margin, but item {item.key} has no "
                       "options among the candidates; screen choice tasks (xnli, globalopinionqa, xcopa) "
                       "and give their candidates")
    labels = [option_label(c) for c in candidates]
    allowed = [k for k, lab in enumerate(labels) if not item.options or lab in item.options]
    gold = [k for k in allowed if labels[k] == str(item.gold).strip()]
    others = [k for k in allowed if k not in gold]
    if not gold or not others:
        raise XtlError(f"item {item.key}: its gold {item.gold!r} and another option must both be among the "
                       f"candidates {list(candidates)}; give the task's candidates")
    return gold[0], others


def gold_margin(values: Float[Tensor, "... cand"], gold: int, others: Sequence[int]) -> Float[Tensor, "..."]:
    """Gold candidate's value minus the best other's (logits or log-probs: the same difference)."""
    return values[..., gold] - values[..., list(others)].max(-1).values


def default_candidates(items: Sequence[Item]) -> tuple[str, ...]:
    """The candidates of the items' task (its record's), else the option labels they share."""
    from xtl.tasks.registry import find_task

    tasks = {find_task(it.dataset) for it in items if it.dataset}
    if len(tasks) == 1 and None not in tasks and next(iter(tasks)).candidates:
        return tuple(next(iter(tasks)).candidates)
    labels = sorted({label for it in items for label in it.options})
    return tuple(labels)


def _flat(acts: Tensor, heads: tuple[int, ...] | None) -> Tensor:
    """``[layer, d]`` rows of a site's activations: only the site's heads for ``heads`` sites."""
    if heads is not None:
        acts = acts[:, list(heads)]
    return acts.reshape(acts.shape[0], -1).double()


def screen_item(model: Model, item: Item, site: Site, cand_ids: Sequence[int], gold: int,
                others: Sequence[int], src_layers: Sequence[int], tgt_layers: Sequence[int],
                chat: bool = False, src_acts: Tensor | None = None,
                prefix: Any = None) -> tuple[Float[Tensor, "src tgt"], float]:
    """The estimated margin change of every (source, target) cell of one item, and its vanilla margin.

    Three passes at most: the source (skipped when ``src_acts``, the source's site at every layer,
    is given), the target prompt's prefix (skipped when ``prefix``, its cache, is given) and last
    token with gradients, and its backward pass.
    """
    if src_acts is None:
        src_tokens = tokenize(model, format_prompt(model, item.source, chat), what=f"source prompt of item {item.id}")
        with torch.no_grad():
            src_acts = capture_tokens(model, src_tokens, site)
    tokens = tokenize(model, format_prompt(model, item.target, chat), what=f"target prompt of item {item.id}")
    device = model.cfg.device
    if prefix is None:
        with torch.no_grad():
            prefix = prefix_cache(model, tokens)
    acts: dict[int, Tensor] = {}

    def keep(layer: int):
        def hook(act: Tensor, hook=None) -> Tensor:  # noqa: ARG001
            if not act.requires_grad:  # weights without gradients: the graph starts here
                act = act.detach().requires_grad_(True)
            acts[layer] = act
            return act
        return hook

    layers = sorted(set(tgt_layers))
    with torch.enable_grad(), model.hooks(fwd_hooks=[(site.hook_name(j), keep(j)) for j in layers]):
        logits = model(tokens[-1].reshape(1, 1).to(device), past_kv_cache=broadcast_cache(prefix))[0, -1]
        wide = logits if logits.dtype == torch.float64 else logits.float()
        margin = gold_margin(wide[list(cand_ids)], gold, others)
        grads = torch.autograd.grad(margin, [acts[j] for j in layers], allow_unused=True)
    g = torch.stack([torch.zeros_like(acts[j][0, -1]) if gr is None else gr[0, -1] for j, gr in zip(layers, grads)])
    a_t = torch.stack([acts[j][0, -1].detach() for j in layers])
    g, a_t = _flat(g, site.heads), _flat(a_t, site.heads)
    a_s = _flat(src_acts[list(src_layers)].to(g.device), site.heads)
    est = a_s @ g.T - (g * a_t).sum(-1)[None, :]  # [src, tgt]: ∇m · (a_s^i − a_t^j)
    cols = [layers.index(j) for j in tgt_layers]
    return est[:, cols].cpu(), float(margin.detach())


def top_configs(estimates: dict[Config, float], k: int) -> list[Config]:
    """The ``k`` configurations of highest estimate (ties: lower source, then lower target layer)."""
    return sorted(estimates, key=lambda c: (-estimates[c], c.src, c.tgt))[:k]


@dataclass(frozen=True)
class ScreenResult:
    """The estimated change of the gold first-token margin of every item × (source, target).

    ``estimate`` is ``[item, src, tgt]`` over ``src_layers`` × ``tgt_layers``; ``vanilla_margin``
    is each item's unpatched margin (an estimated margin after the transplant is their sum).
    """

    site: str
    items: list[str]
    langs: list[str]
    src_layers: list[int]
    tgt_layers: list[int]
    candidates: tuple[str, ...]
    estimate: Float[np.ndarray, "item src tgt"] = field(repr=False)
    vanilla_margin: Float[np.ndarray, "item"] = field(repr=False)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        want = (len(self.items), len(self.src_layers), len(self.tgt_layers))
        if self.estimate.shape != want or self.vanilla_margin.shape != want[:1]:
            raise XtlError(f"screen estimate of shape {self.estimate.shape} does not match {want}")

    def top(self, k: int) -> dict[str, list[Config]]:
        """Each item's ``k`` best-estimated configurations, best first."""
        check_count(k, "k")
        out = {}
        for n, key in enumerate(self.items):
            est = {Config(i, j): float(self.estimate[n, a, b]) for a, i in enumerate(self.src_layers)
                   for b, j in enumerate(self.tgt_layers)}
            out[key] = top_configs(est, k)
        return out

    def to_frame(self) -> "pd.DataFrame":
        """One row per item × configuration: ``item_key, lang, src_layer, tgt_layer, screen_estimate``
        and the estimated margin after the transplant (``vanilla_margin + screen_estimate``)."""
        import pandas as pd

        n, s, t = self.estimate.shape
        ii, si, ti = np.meshgrid(np.arange(n), np.arange(s), np.arange(t), indexing="ij")
        return pd.DataFrame({
            "item_key": np.asarray(self.items, dtype=object)[ii.ravel()],
            "lang": np.asarray(self.langs, dtype=object)[ii.ravel()],
            "src_layer": np.asarray(self.src_layers)[si.ravel()], "tgt_layer": np.asarray(self.tgt_layers)[ti.ravel()],
            "screen_estimate": self.estimate.ravel(),
            "estimated_margin": (self.estimate + self.vanilla_margin[:, None, None]).ravel()})

    def figure(self, item: str | None = None):
        """Heatmap of the estimate: one item's, or the mean over items."""
        from xtl.figures.extensions import screen_heatmap

        return screen_heatmap(self, item)


def _layers(model: Model, value: Sequence[int] | None, what: str) -> list[int]:
    from xtl.patching.prompts import check_layer

    n = model.cfg.n_layers
    if value is not None and (isinstance(value, (int, str)) or not isinstance(value, Iterable)):
        raise XtlError(f"{what} must be a list of layer numbers (or None for all), not {value!r}")
    return sorted({check_layer(model, layer, what) for layer in (range(n) if value is None else value)})


@keyword_call("xtl.screen", "xtl.screen(model, items, site=..., candidates=...)", positional=2,
              legacy=("site", "candidates", "src_layers", "tgt_layers", "chat", "progress"))
def screen(model: Model, items: Iterable[Any], *, site: "str | Site" = "mlp", candidates: Sequence[str] | None = None,
           src_layers: Sequence[int] | None = None, tgt_layers: Sequence[int] | None = None,
           chat: bool | None = None, progress: bool = True) -> ScreenResult:
    """Estimate every (source, target) cell's change of the gold first-token margin, per item.

    Args:
        model: a Model from :func:`xtl.load_model`.
        items: choice items (:func:`xtl.load_task` of xnli, globalopinionqa, xcopa, ...).
        site: ``"attn"``, ``"mlp"``, ``"block"``, ``"heads:0,3"`` or ``"attn-authors"``.
        candidates: answer strings whose first tokens compete (default: the task's).
        src_layers: the source layers screened (default: all).
        tgt_layers: the target layers screened (default: all).
        chat: apply the tokenizer's chat template.
        progress: show a progress bar over items.

    Returns:
        A :class:`ScreenResult`; ``.top(k)`` gives each item's best-estimated cells, which
        ``xtl.sweep(..., screen=k)`` runs exactly.
    """
    import time

    from xtl.engine.settings import candidate_token_ids
    from xtl.patching.prompts import resolve_chat

    check_model(model)
    site = Site.parse(site)
    check_site(model, site)
    items = as_items(items)
    if not items:
        raise XtlError("no items to screen; give at least one choice item")
    if isinstance(candidates, str):
        raise XtlError(f"candidates must be a list of strings, e.g. ['A', 'B'], not {candidates!r}")
    cands = tuple(candidates) if candidates is not None else default_candidates(items)
    cand_ids = candidate_token_ids(model, cands)
    srcs, tgts = _layers(model, src_layers, "source layer"), _layers(model, tgt_layers, "target layer")
    choices = [gold_choice(it, cands) for it in items]  # every item checked before any pass
    chat = resolve_chat(model, chat)
    est = np.zeros((len(items), len(srcs), len(tgts)))
    van = np.zeros(len(items))
    t0 = time.perf_counter()
    for n, (it, (gold, others)) in enumerate(tqdm(list(zip(items, choices)), desc=f"screen {site}", unit="item",
                                                    disable=not progress)):
        e, m = screen_item(model, it, site, cand_ids, gold, others, srcs, tgts, chat)
        est[n], van[n] = e.numpy(), m
    return ScreenResult(str(site), [it.key for it in items], [it.lang for it in items], srcs, tgts, cands,
                        est, van, time.perf_counter() - t0)
