"""The paper's finding on one swept set: vanilla, the best single pair chosen out of sample,
and the instance-aware upper bounds (section E, Table 4), each bound beside the same bound with
the right answers shuffled across items (what many chances alone would give)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from xtl.analysis.bounds import Bounds, shuffled_bounds, upper_bounds
from xtl.analysis.grids import Grid
from xtl.analysis.records import _Record
from xtl.analysis.selection import CrossFit, cross_fit

__all__ = ["Finding", "finding"]


@dataclass(frozen=True)
class Finding(_Record):
    """Vanilla, the held-out pair and the bounds of one grid (percent)."""

    vanilla: float
    cross: CrossFit
    bounds: Bounds
    shuffled: Bounds
    n_items: int
    langs: tuple[str, ...]
    coarse: tuple[int, ...] | None = None  # the swept layers, where the bounds run over a coarse grid

    def rows(self) -> list[tuple[str, float, float | None]]:
        """(name, value, value with right answers shuffled) in Table 4's order."""
        b, s = self.bounds, self.shuffled
        return [("vanilla", self.vanilla, None),
                ("best pair, held out", self.cross.accuracy, None),
                ("SourceLast (eq. 4)", b.source_last, s.source_last),
                ("TargetFirst (eq. 5)", b.target_first, s.target_first),
                ("full grid (any of N²)", b.oracle, s.oracle)]

    def summary(self) -> str:
        """The finding in a few terminal lines."""
        f1, f2 = self.cross.folds
        lines = [f"vanilla     : {self.vanilla:.1f}% right ({self.n_items} items, {' '.join(self.langs)}; "
                 "the option with the most likely first token)",
                 f"best pair   : {self.cross.accuracy:.1f}% held out ({self.cross.gain:+.1f} points): the best "
                 f"(source, target) on half the questions, scored on the other half and the other way round "
                 f"(chosen: {f1.src_layer} -> {f1.tgt_layer} and {f2.src_layer} -> {f2.tgt_layer})"]
        if self.coarse is not None:
            lines.append(f"layers      : every bound over the swept layers {', '.join(map(str, self.coarse))} "
                         "(a coarse grid: a lower estimate of the bound over every layer)")
        for name, (_, value, shuffled) in zip(("SourceLast", "TargetFirst", "full grid"), self.rows()[2:]):
            if value != value:  # NaN: its reason
                lines.append(f"{name:<12}: {value}")
                continue
            lines.append(f"{name:<12}: {value:.1f}% upper bound (right answers shuffled across items: "
                         f"{shuffled:.1f}%)")
        gap = self.bounds.oracle - self.shuffled.oracle
        lines.append("reading     : an upper bound counts an item when any of its configurations answers it right; "
                     + ("far above the shuffled one, the right answers gather on particular items"
                        if gap > 5 else "near the shuffled one, the right answers spread like noise over many "
                        "chances, so the bound says little about what one layer pair can do"))
        return "\n".join(lines)


def _swept(g: Grid) -> Grid | None:
    """A complete coarse grid (the same layers as sources and targets, the first and the last
    among them) re-indexed as a model of that many layers, so that the bounds run over the
    swept layers; None for any other grid."""
    n, layers = g.n_layers, g.src_layers
    if (g.is_full or n is None or layers != g.tgt_layers or 0 not in layers or n - 1 not in layers
            or np.isnan(g.correct).any()):
        return None
    k = list(range(len(layers)))
    return replace(g, src_layers=k, tgt_layers=k, n_layers=len(k))


def _relabel(b: Bounds, g: Grid) -> Bounds:
    return replace(b, src_layers=list(g.src_layers), tgt_layers=list(g.tgt_layers),
                   grid=b.grid.replace(_swept_text(b), g.describe()))


def _swept_text(b: Bounds) -> str:
    return b.grid.split("; right answers")[0]


def finding(g: Grid) -> Finding:
    """The finding of an evaluated grid: the full N x N, or a coarse grid whose sources and
    targets are the same layers, the first and the last among them (the bounds then run over
    the swept layers: a lower estimate of the bounds over every layer)."""
    coarse = _swept(g)
    on = coarse if coarse is not None else g
    bounds, shuffled = upper_bounds(on), shuffled_bounds(on)
    if coarse is not None:
        bounds, shuffled = _relabel(bounds, g), _relabel(shuffled, g)
    return Finding(100 * g.vanilla_accuracy, cross_fit(g), bounds, shuffled, len(g.items),
                   tuple(sorted(set(g.langs))), None if coarse is None else tuple(g.src_layers))
