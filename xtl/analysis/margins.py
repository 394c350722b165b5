"""The gold's first-token margin: how far a transplant moves the model toward the right option,
whether or not the answer flips (a continuous view beside accuracy).

The margin of a row is the first-token log-prob of the gold option's candidate minus the best
other candidate's (``cand_logprobs`` of the results table, in the sweep's ``candidates`` order);
its gain is the configuration's margin minus the item's vanilla margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from jaxtyping import Float

from xtl.analysis.grids import _need, grid
from xtl.tasks.item import option_label

__all__ = ["gold_margins", "MarginPanel", "margin_panel", "margin_panels"]


def gold_margins(df: pd.DataFrame, candidates: Sequence[str] | None = None) -> Float[np.ndarray, "row"]:
    """Per row, the gold candidate's first-token log-prob minus the best other candidate's
    (NaN where the gold is not among the candidates, or the sweep recorded none). A table with the
    engine's ``gold_margin`` column (the same quantity, computed as it swept) gives that column;
    otherwise from ``cand_logprobs`` and ``candidates``: the sweep's (default:
    ``df.attrs["candidates"]``, which sweeps and stores attach; older stores: the manifest's)."""
    if isinstance(df, pd.DataFrame) and "gold_margin" in df.columns:
        recorded = pd.to_numeric(df["gold_margin"], errors="coerce").to_numpy(float)
        if np.isfinite(recorded).any() or not {"gold", "cand_logprobs"} <= set(df.columns):
            return recorded  # all NaN where nothing else records candidates: no margins
    _need(df, ["gold", "cand_logprobs"])
    labels = [option_label(c) for c in (candidates if candidates is not None else df.attrs.get("candidates") or [])]
    out = np.full(len(df), np.nan)
    if len(labels) < 2:
        return out
    index = {label: k for k, label in enumerate(labels)}
    for r, (gold, lp) in enumerate(zip(df["gold"].astype(str), df["cand_logprobs"])):
        k = index.get(gold.strip())
        if k is None or lp is None or len(lp) != len(labels):
            continue
        values = np.asarray(lp, float)
        out[r] = values[k] - np.max(np.delete(values, k))
    return out


@dataclass(frozen=True)
class MarginPanel:
    """The gold margin's gain over vanilla per (source, target) configuration, averaged over
    items as accuracy is (nats; positive: toward the gold option)."""

    name: str
    gain: Float[np.ndarray, "src tgt"]
    margin: Float[np.ndarray, "src tgt"]
    vanilla: float
    src_layers: list[int]
    tgt_layers: list[int]
    accuracy: Float[np.ndarray, "src tgt"] | None = None  # percent right, where known
    mark: tuple[int, int] | None = None  # the (source, target) to point out
    mark_label: str = ""

    def at(self, src: int, tgt: int) -> float:
        return float(self.gain[self.src_layers.index(src), self.tgt_layers.index(tgt)])


def margin_panel(df: pd.DataFrame, candidates: Sequence[str] | None = None, name: str = "all",
                 average: str = "language", mark: tuple[int, int] | None = None,
                 mark_label: str = "") -> MarginPanel | None:
    """The margin-gain panel of a results table (one site), or None when the sweep recorded no
    candidates among which the gold is (a QA task, a sweep without ``candidates``, a table
    without ``cand_logprobs`` or ``gold_margin``)."""
    _need(df, ["is_vanilla"])
    if "gold_margin" not in df.columns and not {"gold", "cand_logprobs"} <= set(df.columns):
        return None
    margins = gold_margins(df, candidates)
    if not np.isfinite(margins).any():
        return None
    frame = df.assign(gold_margin=margins)
    g = grid(frame, value="gold_margin", average=average)
    acc = None
    if "correct" in df.columns and df["correct"].notna().any():
        acc = 100 * grid(df, average=average).accuracy
    diff = g.correct - g.vanilla[:, None, None]
    return MarginPanel(name, g.mean(diff), g.mean(g.correct), float(g.mean(g.vanilla)), g.src_layers, g.tgt_layers,
                       acc, mark, mark_label)


def margin_panels(df: pd.DataFrame, candidates: Sequence[str] | None = None, average: str = "language",
                  mark: tuple[int, int] | None = None, mark_label: str = "") -> list[MarginPanel]:
    """The margin-gain panel of the whole table (``all``), then one per language where there are
    several (as :func:`xtl.analysis.views.gain_panels` gives the accuracy's); empty without margins."""
    whole = margin_panel(df, candidates, "all", average, mark, mark_label)
    if whole is None:
        return []
    langs = sorted(str(x) for x in df["lang"].unique()) if "lang" in df.columns else []
    per = [margin_panel(df[df["lang"].astype(str) == lang], candidates, lang, average, mark, mark_label)
           for lang in langs] if len(langs) > 1 else []
    return [whole, *(p for p in per if p is not None)]


#: ANSI 256-colour backgrounds from strong loss (red) through 0 (grey) to strong gain (blue).
_ANSI = (160, 203, 217, 252, 153, 75, 26)


def _level(x: float, top: float) -> int:
    """-3..3: the cell's gain against the largest |gain| of the panel."""
    if not np.isfinite(x) or top <= 0 or abs(x) < 0.1 * top:
        return 0
    step = 1 if abs(x) < 0.4 * top else 2 if abs(x) < 0.75 * top else 3
    return step if x > 0 else -step


def shade_grid(panel: MarginPanel, right: np.ndarray | None = None, color: bool = False) -> str:
    """The margin gain over source (rows) x target (columns) layers in a terminal: a shade per
    cell (``=`` ``-`` loss, ``.`` about none, ``+`` ``#`` gain; ANSI colours with ``color``),
    ``✓`` where the configuration answers right, ``@`` at the panel's mark; a legend below."""
    top = float(np.nanmax(np.abs(panel.gain))) if np.isfinite(panel.gain).any() else 0.0
    chars = {-3: "=", -2: "=", -1: "-", 0: ".", 1: "+", 2: "#", 3: "#"}
    width = max(len(str(x)) for x in panel.src_layers)
    tens = "".join((str(t // 10) if t % 10 == 0 and t else " ") + " " for t in panel.tgt_layers)
    ones = "".join(f"{t % 10} " for t in panel.tgt_layers)
    lines = [f"{'':>{width}}  {tens}".rstrip(), f"{'':>{width}}  {ones}".rstrip()]
    for a, src in enumerate(panel.src_layers):
        cells = []
        for b, tgt in enumerate(panel.tgt_layers):
            level = _level(panel.gain[a, b], top)
            ok = right is not None and bool(right[a, b])
            mark = "@" if panel.mark == (src, tgt) else "✓" if ok else None
            if color:
                cells.append(f"\033[48;5;{_ANSI[level + 3]}m{mark or ' '} \033[0m")
            else:
                cells.append(chars[level] + (mark or chars[level]))
        lines.append(f"{src:>{width}}  {''.join(cells)}")
    key = ("colour: red loss, grey about none, blue gain" if color else
           "= large loss  - loss  . about none  + gain  # large gain")
    lines.append(f"{'':>{width}}  {key} (largest |gain| {top:.2f} nats)"
                 + ("; ✓ answers right" if right is not None else "")
                 + (f"; @ {panel.mark_label or 'marked'}" if panel.mark is not None else ""))
    return "\n".join(line for line in lines if line.strip())
