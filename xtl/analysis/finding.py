"""The paper's finding on one swept set: vanilla, the best single pair chosen out of sample,
and the instance-aware upper bounds (section E, Table 4), each bound beside the same bound with
the right answers shuffled across items (what many chances alone would give)."""

from __future__ import annotations

from dataclasses import dataclass

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


def finding(g: Grid) -> Finding:
    """The finding of an evaluated full grid (every bound needs the whole N x N)."""
    return Finding(100 * g.vanilla_accuracy, cross_fit(g), upper_bounds(g), shuffled_bounds(g), len(g.items),
                   tuple(sorted(set(g.langs))))
