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

__all__ = ["Finding", "finding_of"]


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
                (self.grid_name, b.oracle, s.oracle)]

    @property
    def grid_name(self) -> str:
        """The any-configuration bound's name: over the full N² grid, or over the swept layers."""
        return "full grid (any of N²)" if self.coarse is None else f"swept grid (any of {len(self.coarse)}²)"

    def reading(self) -> str:
        """The reading of the first bound that its shuffled twin does not saturate (the any-
        configuration one, else SourceLast, else TargetFirst): at 100 % both, they tell nothing."""
        b, s = self.bounds, self.shuffled
        grid = f"the {self.grid_name.split(' (')[0]} bound"
        pairs = [(grid, b.oracle, s.oracle), ("SourceLast", b.source_last, s.source_last),
                 ("TargetFirst", b.target_first, s.target_first)]
        known = [p for p in pairs if p[1] == p[1] and p[2] == p[2]]
        for name, observed, shuffled in known:
            if shuffled < SATURATED:
                return reading(observed, shuffled, name)
        if known:
            return ("every bound and its shuffled twin reach 100%: with this many configurations some answers each "
                    "item right whatever the items, so the bounds tell nothing here; see the held-out pair")
        return reading(b.oracle, s.oracle, grid)

    def summary(self, rule: str = "the option with the most likely first token") -> str:
        """The finding in a few terminal lines; ``rule``: how an answer was chosen, in words."""
        f1, f2 = self.cross.folds
        lines = [f"vanilla     : {self.vanilla:.1f}% right ({self.n_items} items, {' '.join(self.langs)}; {rule})",
                 f"best pair   : {self.cross.accuracy:.1f}% held out ({self.cross.gain:+.1f} points): the best "
                 f"(source, target) on half the questions, scored on the other half and the other way round "
                 f"(chosen: {f1.src_layer} -> {f1.tgt_layer} and {f2.src_layer} -> {f2.tgt_layer})"]
        if self.coarse is not None:
            lines.append(f"layers      : every bound over the swept layers {', '.join(map(str, self.coarse))} "
                         "(a coarse grid: a lower estimate of the bound over every layer)")
        names = ("SourceLast", "TargetFirst", "full grid" if self.coarse is None else "swept grid")
        for name, (_, value, shuffled) in zip(names, self.rows()[2:]):
            if value != value:  # NaN: its reason
                lines.append(f"{name:<12}: {value}")
                continue
            lines.append(f"{name:<12}: {value:.1f}% upper bound (right answers shuffled across items: "
                         f"{shuffled:.1f}%)")
        lines.append("reading     : " + self.reading())
        return "\n".join(lines)


#: Points between a bound and its shuffled twin below which the two read as the same.
NEAR = 5.0
#: A shuffled bound at or above this (percent) is saturated: no room to tell the two apart.
SATURATED = 99.5


def reading(observed: float, shuffled: float, name: str = "the bound") -> str:
    """What an any-configuration bound says beside the same bound with the right answers
    shuffled across items (each configuration keeping its count): near it, the right answers
    fall like noise; below it, the configurations fix the same items again and again; above it,
    different configurations fix different items, more than chance would."""
    head = "an upper bound counts an item when any of its configurations answers it right; "
    if observed != observed or shuffled != shuffled:
        return head + f"{name} or its shuffled twin is not computable here, so there is nothing to compare"
    gap = observed - shuffled
    if gap > NEAR:
        return head + (f"{name} lies {gap:.1f} points above its shuffled twin: different configurations fix "
                       "different items, more than chance would (the instance-aware structure the paper's bound "
                       "points to)")
    if gap < -NEAR:
        return head + (f"{name} lies {-gap:.1f} points below its shuffled twin: the configurations keep fixing "
                       "the same items right (those the model already or nearly knows) instead of spreading like "
                       "chance, so many chances do not inflate it; the items none fixes stay out of reach")
    return head + (f"{name} lies near its shuffled twin: the right answers spread like noise over many chances, "
                   "so it says little about what one layer pair can do")


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


def finding_of(g: Grid) -> Finding:
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
