"""Instance-aware upper bounds: equations (4) and (5) of the paper, and the N² oracle (Table 4, Figure 4)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from jaxtyping import Float

from xtl.analysis.grids import Grid
from xtl.analysis.records import _Record

__all__ = ["Bounds", "NotComputable", "upper_bounds", "shuffled_bounds", "format_bound", "bound_by_group",
           "group_order"]


class NotComputable(float):
    """A bound this grid cannot give: NaN in every computation, and its reason where it is shown
    (``print(upper_bounds(g).oracle)`` reads ``nan (not computable on this grid: ...)``)."""

    reason: str

    def __new__(cls, reason: str) -> "NotComputable":
        value = super().__new__(cls, math.nan)
        value.reason = reason
        return value

    def __repr__(self) -> str:
        return f"nan (not computable on this grid: {self.reason})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(float(self), spec) if spec else repr(self)

    def __reduce__(self):
        return (NotComputable, (self.reason,))


def _bound_reasons(g: Grid) -> dict[str, str]:
    """Why each bound cannot be computed on this grid (no entry: it can). Completeness is
    checked where each bound looks: SourceLast on the row of the last source layer, TargetFirst
    on the column of target layer 0, the oracle on the whole grid; so the 2N − 1 cross sweep
    (``grid="cross"``) gives both end-point bounds."""
    n = g.n_layers
    if n is None:
        why = ("the model's depth is not known (the results lack n_layers; pass grid(..., "
               "n_layers=N))")
        return {"source_last": why, "target_first": why, "oracle": why}
    every = list(range(n))
    missing = np.isnan(g.correct).any(axis=0)  # [src, tgt]: configuration not run for some item
    have = f"this grid has {g.describe()}"
    out = {}
    row_ok = (n - 1 in g.src_layers and g.tgt_layers == every
              and not missing[g.src_layers.index(n - 1)].any())
    if not row_ok:
        out["source_last"] = (f"SourceLast (eq. 4) needs source layer {n - 1} with every target layer "
                              f"0–{n - 1} for every item; {have}")
    col_ok = 0 in g.tgt_layers and g.src_layers == every and not missing[:, g.tgt_layers.index(0)].any()
    if not col_ok:
        out["target_first"] = (f"TargetFirst (eq. 5) needs target layer 0 with every source layer "
                               f"0–{n - 1} for every item; {have}")
    if not g.is_full:
        out["oracle"] = f"the N² oracle needs the full {n} × {n} grid for every item; {have}"
    return out


@dataclass(frozen=True)
class Bounds(_Record):
    """Instance-aware upper bounds (%): per source and per target layer, at the paper's end
    points, and the N² oracle; NaN where the grid does not allow one (``reasons`` says why)."""

    source: Float[np.ndarray, "src"]
    target: Float[np.ndarray, "tgt"]
    source_last: float
    target_first: float
    oracle: float
    vanilla: float
    src_layers: list[int]
    tgt_layers: list[int]
    reasons: dict[str, str]
    grid: str

    def __str__(self) -> str:
        lines = [f"upper bounds on {self.grid}: vanilla {self.vanilla:.1f}%"]
        for label, name in (("SourceLast (eq. 4)", "source_last"), ("TargetFirst (eq. 5)", "target_first"),
                            ("N² oracle", "oracle")):
            lines.append(f"  {label:<20}: {format_bound(getattr(self, name), name, self)}")
        return "\n".join(lines)


def upper_bounds(g: Grid) -> Bounds:
    """Instance-aware upper bounds, equations (4) and (5), and the full N^2 oracle, in percent.

    Source-wise at layer i: an item counts if any target layer j answers it right with source i
    (defined only where every target layer was swept); target-wise at layer j likewise over
    every source layer. ``source_last`` (eq. 4 at the last layer), ``target_first`` (eq. 5 at
    layer 0) and ``oracle`` are NaN when the grid lacks what they need; ``reasons`` says why and
    ``grid`` names the grid the numbers cover.
    """
    reasons = _bound_reasons(g)
    n = g.n_layers
    c = np.nan_to_num(g.correct, nan=0.0)
    missing = np.isnan(g.correct).any(axis=0)
    full_tgt = n is not None and g.tgt_layers == list(range(n))
    full_src = n is not None and g.src_layers == list(range(n))
    source = np.where(full_tgt & ~missing.any(axis=1), 100 * g.mean(c.max(axis=2)), np.nan)
    target = np.where(full_src & ~missing.any(axis=0), 100 * g.mean(c.max(axis=1)), np.nan)
    source_last = float(source[g.src_layers.index(n - 1)]) if "source_last" not in reasons else math.nan
    target_first = float(target[g.tgt_layers.index(0)]) if "target_first" not in reasons else math.nan
    oracle = 100 * float(g.mean(c.max(axis=(1, 2)))) if "oracle" not in reasons else math.nan
    return _bounds(g, source, target, source_last, target_first, oracle, reasons, g.describe())


def _bounds(g: Grid, source, target, source_last, target_first, oracle, reasons, grid_text) -> Bounds:
    def value(x: float, name: str) -> float:
        return NotComputable(reasons[name]) if name in reasons else x

    return Bounds(source, target, value(source_last, "source_last"), value(target_first, "target_first"),
                  value(oracle, "oracle"), 100 * g.vanilla_accuracy, g.src_layers, g.tgt_layers, reasons, grid_text)


def shuffled_bounds(g: Grid) -> Bounds:
    """The same bounds had every configuration's right answers fallen on random items: each
    configuration keeps how many items of each language it answers right, the items are drawn at
    random (the exact expectation, no sampling). Beside :func:`upper_bounds` it tells whether
    the right answers gather on particular items or spread like noise over many chances: an
    item is left out by a configuration right on ``k`` of a language's ``n`` items with
    probability ``1 - k/n``, independently across configurations."""
    reasons = _bound_reasons(g)
    n = g.n_layers
    c = np.nan_to_num(g.correct, nan=0.0)
    missing = np.isnan(g.correct).any(axis=0)
    langs = sorted(set(g.langs))
    weight = {l: float(sum(w for w, x in zip(g.weights, g.langs) if x == l)) for l in langs}
    # per language, the share of its items each configuration leaves out: [lang, src, tgt]
    out = np.stack([1.0 - c[[x == l for x in g.langs]].mean(axis=0) for l in langs]) if langs else np.ones((0,) + c.shape[1:])
    w = np.array([weight[l] for l in langs])

    def covered(left_out: np.ndarray) -> float:  # left_out: [lang, configurations]
        return 100 * float((w * (1.0 - left_out.prod(axis=1))).sum())

    full_tgt = n is not None and g.tgt_layers == list(range(n))
    full_src = n is not None and g.src_layers == list(range(n))
    source = np.array([covered(out[:, a, :]) if full_tgt and not missing[a].any() else np.nan
                       for a in range(len(g.src_layers))])
    target = np.array([covered(out[:, :, b]) if full_src and not missing[:, b].any() else np.nan
                       for b in range(len(g.tgt_layers))])
    source_last = float(source[g.src_layers.index(n - 1)]) if "source_last" not in reasons else math.nan
    target_first = float(target[g.tgt_layers.index(0)]) if "target_first" not in reasons else math.nan
    oracle = covered(out.reshape(len(langs), -1)) if "oracle" not in reasons else math.nan
    return _bounds(g, source, target, source_last, target_first, oracle, reasons,
                   f"{g.describe()}; right answers shuffled across items")


def format_bound(value: float, name: str, bounds: Bounds) -> str:
    """``61.2%``, or ``not computable on this grid: <reason>`` for a NaN bound."""
    if math.isnan(value):
        reason = getattr(value, "reason", None) or bounds.reasons.get(name, "no items")
        return f"not computable on this grid: {reason}"
    return f"{value:.1f}%"


def group_order(g: Grid) -> list[str]:
    return [x for x in ("high", "mid", "low") if x in g.groups] + sorted(
        {x for x in g.groups if x not in ("high", "mid", "low", "")})


def bound_by_group(g: Grid) -> pd.DataFrame:
    """Table 4: vanilla, SourceLast (source-wise bound at the last layer) and TargetFirst
    (target-wise bound at the first layer) by resource group, each the mean over the group's
    languages (``g.average``); NaN where the grid does not allow a bound."""
    rows = []
    for group in group_order(g) + ["all"]:
        sub = g if group == "all" else g.subset([x == group for x in g.groups])
        ub = upper_bounds(sub)
        rows.append({"group": group, "langs": len(set(sub.langs)), "n": len(sub.items),
                     "vanilla": ub.vanilla, "SourceLast": ub.source_last,
                     "TargetFirst": ub.target_first, "oracle": ub.oracle})
    return pd.DataFrame(rows)
