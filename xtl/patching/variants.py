"""Transplant variants: blend (``alpha``), several layers (``span``), several positions
(``positions``) and several sources (``weights``), as one frozen :class:`Variant`.

The paper's transplant is the default: ``alpha=1`` (replace), ``span=1`` (one layer),
``positions=1`` (the last prompt token), one source. Every path (the single transplant, the
per-step path and the shared-prefix engines) writes a variant through the pieces here, so the
defaults are bitwise today's transplant (``blend`` and ``mix`` return their input unchanged) and
the variants cannot drift apart between paths. What each variant means: docs/extensions.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from xtl.errors import PromptError, SiteError, XtlError
from xtl.patching.ops import write_site
from xtl.patching.sites import Site
from xtl.schema import sources_label

__all__ = ["Variant", "check_alpha", "check_alphas", "check_span", "check_positions", "source_weights",
           "sources_label", "mix", "blend", "write_variant", "variant_hooks", "span_writes"]


def check_alpha(alpha: Any, extrapolate: bool = False) -> float:
    """``alpha`` as a float in [0, 1]; outside it only with ``extrapolate=True``."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise XtlError(f"alpha must be a finite number (1 replaces, 0 keeps the target), not {alpha!r}")
    if not 0 <= alpha <= 1 and not extrapolate:
        raise XtlError(f"alpha {alpha} is outside [0, 1]: that is no blend of the two activations but an "
                       "extrapolation past one of them (off the model's own activations); pass "
                       "extrapolate=True (--extrapolate) if that is what you want")
    return float(alpha)


def check_alphas(alphas: Any, extrapolate: bool = False) -> tuple[float, ...]:
    """A sweep's alpha axis: one number or a list of distinct numbers (each :func:`check_alpha`)."""
    values = (alphas,) if isinstance(alphas, (int, float)) else alphas
    try:
        out = tuple(check_alpha(a, extrapolate) for a in values)
    except TypeError:
        raise XtlError(f"alpha must be a number or a list of numbers, not {alphas!r}") from None
    if not out or len(set(out)) < len(out):
        raise XtlError(f"alpha must be one or more distinct numbers, e.g. [0.25, 0.5, 1.0], not {alphas!r}")
    return out


def _whole(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise XtlError(f"{what} must be a whole number of at least 1, not {value!r}")
    return value


def check_span(n_layers: int, span: int, src_layer: int | None = None, tgt_layer: int | None = None) -> int:
    """``span`` if layers ``i..i+span-1`` and ``j..j+span-1`` are in the model, else one clear line."""
    _whole(span, "span")
    if span > n_layers:
        raise SiteError(f"span {span} is longer than the model ({n_layers} layers); use at most {n_layers}")
    for layer, what in ((src_layer, "source"), (tgt_layer, "target")):
        if layer is not None and layer + span > n_layers:
            raise SiteError(f"span {span} from {what} layer {layer} leaves the model (layers 0..{n_layers - 1}); "
                            f"start at layer {n_layers - span} at most, or shorten the span")
    return span


def check_positions(positions: int, *lengths: tuple[str, int]) -> int:
    """``positions`` if every prompt (``(name, token count)``) has that many tokens."""
    _whole(positions, "positions")
    for name, n in lengths:
        if positions > n:
            raise PromptError(f"positions {positions} reach beyond the {name} ({n} tokens); use at most "
                              f"{min(k for _, k in lengths)}, the shorter prompt's length")
    return positions


def source_weights(names: Sequence[str], weights: "Sequence[float] | Mapping[str, float] | None") -> tuple[float, ...]:
    """Weights of the sources ``names``, normalised to sum 1 (None: equal weights)."""
    names = list(names)
    if not names:
        raise XtlError("sources is empty; give at least one source")
    if len(set(names)) < len(names):
        raise XtlError(f"sources {names} name one source twice")
    if weights is None:
        return tuple(1.0 / len(names) for _ in names)
    if isinstance(weights, Mapping):
        if set(weights) != set(names):
            raise XtlError(f"weights name {sorted(weights)}, the sources are {sorted(names)}; give one weight per source")
        weights = [weights[n] for n in names]
    weights = list(weights) if not isinstance(weights, (str, bytes)) else [weights]
    if len(weights) != len(names):
        raise XtlError(f"{len(weights)} weight(s) for {len(names)} source(s) {names}; give one weight per source")
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise XtlError(f"weights must be non-negative numbers, not {w!r}")
    total = float(sum(weights))
    if total <= 0:
        raise XtlError(f"weights {weights} sum to 0; give at least one positive weight")
    return tuple(float(w) / total for w in weights)


@dataclass(frozen=True)
class Variant:
    """How a transplant writes the source into the target (defaults: the paper's).

    Attributes:
        alpha: blend ``a_t <- (1 - alpha) a_t + alpha a_s``; 1 replaces.
        span: layers ``i..i+span-1`` into ``j..j+span-1``, one to one.
        positions: the last ``positions`` prompt positions, aligned from the end.
        weights: the normalised weights of several sources (None: one source).
    """

    alpha: float = 1.0
    span: int = 1
    positions: int = 1
    weights: tuple[float, ...] | None = None
    extrapolate: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", check_alpha(self.alpha, self.extrapolate))
        _whole(self.span, "span")
        _whole(self.positions, "positions")
        if self.weights is not None:
            object.__setattr__(self, "weights", tuple(self.weights))

    @property
    def is_default(self) -> bool:
        """The paper's transplant."""
        return self.alpha == 1.0 and self.span == 1 and self.positions == 1 and not self.weights


def mix(acts: Sequence[Tensor], weights: Sequence[float] | None = None) -> Tensor:
    """Weighted mean of the sources' activations (weights summing to 1), computed as
    ``a_0 + sum_k w_k (a_k - a_0)``: one source, or sources that are all one prompt, give
    ``a_0`` bitwise."""
    first = acts[0]
    if len(acts) == 1:
        return first
    weights = weights if weights is not None else [1.0 / len(acts)] * len(acts)
    wide = torch.float64 if first.dtype == torch.float64 else torch.float32
    out = first.to(wide)
    for a, w in zip(acts[1:], weights[1:]):
        out = out + w * (a.to(wide) - first.to(wide))
    return out.to(first.dtype)


def blend(current: Tensor, values: Tensor, alpha: float) -> Tensor:
    """``(1 - alpha) current + alpha values`` (``values`` itself when ``alpha`` is 1)."""
    if alpha == 1.0:
        return values
    return (1 - alpha) * current + alpha * values.to(current.device, current.dtype)


def write_variant(act: Tensor, values: Tensor, heads: tuple[int, ...] | None = None,
                  alpha: float = 1.0) -> Tensor:
    """A copy of ``act`` (``[batch, pos, ...]``) whose last ``k`` positions hold ``values``
    (``[batch, k, ...]``) blended by ``alpha``; with ``heads``, only those heads."""
    k = values.shape[1]
    if k == 1:
        return write_site(act, blend(act[:, -1], values[:, 0], alpha), heads)
    out = act.clone()
    for m in range(k):
        pos = m - k
        out = write_site(out, blend(out[:, pos], values[:, m], alpha), heads, pos=pos)
    return out


def variant_hooks(site: Site, values: Float[Tensor, "batch span positions ..."], tgt_layer: int,
                  alpha: float = 1.0) -> list[tuple[str, Callable]]:
    """TransformerLens hooks that write ``values[:, m]`` at target layer ``tgt_layer + m`` (the
    hooks' ``m``-th layer of the span), on the hooked forward's last positions."""
    def make(vals: Tensor) -> Callable:
        def hook(act: Tensor, hook=None) -> Tensor:  # noqa: ARG001
            return write_variant(act, vals, site.heads, alpha)
        return hook

    return [(site.hook_name(tgt_layer + m), make(values[:, m])) for m in range(values.shape[1])]


def span_writes(tgt_layers: Sequence[int], values: Tensor, span: int = 1) -> dict[int, tuple[slice, Tensor]]:
    """What the shared-prefix engines write at each layer of a first step: rows sorted by target
    layer, row ``r`` transplanted at ``tgt_layers[r]`` with ``values[r]`` (``[rows, ...]``; with
    ``span`` > 1 ``[rows, span, ...]``, ``values[r, m]`` written at layer ``tgt_layers[r] + m``).
    Returns layer -> (the rows written there, a contiguous slice; their values)."""
    out: dict[int, tuple[slice, Tensor]] = {}
    tgt = list(tgt_layers)
    if span == 1:
        start = 0
        for layer in sorted(set(tgt)):
            stop = start + tgt.count(layer)
            out[layer] = (slice(start, stop), values[start:stop])
            start = stop
        return out
    js = torch.tensor(tgt, device=values.device)
    for layer in range(min(tgt), max(tgt) + span):
        lo = sum(1 for j in tgt if j <= layer - span)
        hi = sum(1 for j in tgt if j <= layer)
        if lo == hi:
            continue
        offsets = layer - js[lo:hi]
        rows = torch.arange(lo, hi, device=values.device)
        out[layer] = (slice(lo, hi), values[rows, offsets])
    return out
