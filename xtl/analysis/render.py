"""Rendering a paper table as Markdown, LaTeX (booktabs) or CSV."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["PaperTable", "to_markdown", "to_latex", "to_csv", "frame_markdown"]


@dataclass(frozen=True)
class PaperTable:
    """A table in the paper's layout: titled blocks (one per dataset, usually) and notes."""

    number: int
    title: str
    blocks: list[tuple[str, pd.DataFrame]]
    notes: list[str] = field(default_factory=list)
    decimals: int = 1  # the paper prints Table 1 with two


def _cell(value: Any, decimals: int = 1, p_value: bool = False) -> str:
    """A number as the tables print it: ``–`` for NaN, p-values to three places (``< 0.001``)."""
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "–"
        if p_value:
            return "< 0.001" if value < 0.001 else f"{value:.3f}"
        return f"{value:.{decimals}f}"
    return str(value)


def frame_markdown(frame: pd.DataFrame, decimals: int = 1) -> str:
    """A plain table (one row per row, no index) as a Markdown pipe table, numbers as the paper
    tables print them; columns named ``McNemar ...`` hold p-values."""
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |",
             "|" + "|".join("--:" if frame[c].dtype.kind == "f" else ":--" for c in frame.columns) + "|"]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_cell(v, decimals, "McNemar" in str(c)) for c, v in row.items()) + " |")
    return "\n".join(lines)


def to_markdown(table: PaperTable) -> str:
    """The table as Markdown: a heading, one pipe table per block, the notes."""
    out = [f"### Table {table.number}: {table.title}", ""]
    for caption, frame in table.blocks:
        named = frame.index.name is not None or not isinstance(frame.index, pd.RangeIndex)
        header = ([""] if named else []) + [str(c) for c in frame.columns]
        out += [f"**{caption}**", "", "| " + " | ".join(header) + " |",
                "|" + "|".join([":--"] * named + ["--:" if frame[c].dtype.kind == "f" else ":--"
                                                   for c in frame.columns]) + "|"]
        for idx, row in frame.iterrows():
            cells = ([str(idx)] if named else []) + [_cell(v, table.decimals) for v in row]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out += [f"- {note}" for note in table.notes]
    return "\n".join(out) + "\n"


def _tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("→", r"$\rightarrow$"), ("Δ", r"$\Delta$"), ("²", r"$^2$")):
        text = text.replace(a, b)
    return text


def to_latex(table: PaperTable) -> str:
    """The table as a LaTeX ``table`` environment (booktabs), one ``tabular`` per block."""
    out = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex(table.title)}}}"]
    for caption, frame in table.blocks:
        named = not isinstance(frame.index, pd.RangeIndex)
        cols = ("l" if named else "") + "".join("r" if frame[c].dtype.kind == "f" else "l" for c in frame.columns)
        header = ([""] if named else []) + [_tex(str(c)) for c in frame.columns]
        out += [rf"\par\smallskip\textbf{{{_tex(caption)}}}\par", rf"\begin{{tabular}}{{{cols}}}",
                r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
        for idx, row in frame.iterrows():
            cells = ([_tex(str(idx))] if named else []) + [_tex(_cell(v, table.decimals)) for v in row]
            out.append(" & ".join(cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}"]
    out += [r"\par\footnotesize " + _tex(note) for note in table.notes]
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def to_csv(table: PaperTable) -> str:
    """All blocks in one CSV, the block's caption in the first column."""
    frames = []
    for caption, frame in table.blocks:
        f = frame.copy()
        if not isinstance(f.index, pd.RangeIndex):
            f = f.rename_axis("row").reset_index()
        f.insert(0, "block", caption)
        frames.append(f)
    return pd.concat(frames, ignore_index=True).to_csv(index=False, float_format="%.2f") if frames else ""
