"""Typed options: every setting that takes one of a few words, with one checker each.

A light module (no torch), so that the CLI can check options before anything heavy loads.
"""

from __future__ import annotations

import difflib
from typing import Literal, TypeVar, get_args

from xtl.errors import XtlError

__all__ = ["Mode", "Average", "Rules", "Positions", "SiteKind", "Groups", "check_option",
           "MODES", "AVERAGES", "RULES", "SITE_KINDS",
           "GROUPINGS", "GridKind", "GRIDS", "POSITIONS", "PlotlyJs", "PLOTLYJS", "DTYPE_NAMES",
           "canonical_dtype"]

Mode = Literal["generate", "logits"]
"""``generate``: greedy responses; ``logits``: first-token statistics only (screening)."""
Average = Literal["language", "pooled"]
"""``language``: the paper's group means (mean over languages); ``pooled``: mean over items."""
Rules = Literal["authors", "lenient"]
"""``authors``: the released scoring scripts; ``lenient``: full-width markers read everywhere."""
Positions = Literal["last", "generated"]
"""Logit-lens positions: the last prompt token, or it and every generated step."""
SiteKind = Literal["attn", "attn-authors", "mlp", "block", "heads"]
"""What a transplant replaces (see :mod:`xtl.patching.sites`)."""
GridKind = Literal["full", "cross"]
"""Which configurations a sweep runs: ``full`` (every source × every target) or ``cross`` (the
last source layer into every target and every source into target 0: the 2N − 1 that the
bounds SourceLast and TargetFirst need, what the authors' UpperBound runner sweeps)."""
Groups = Literal["paper", "lang2tax"]
"""Resource grouping of languages: ``paper`` (the paper's table headers per dataset, lang2tax
for languages it does not print) or ``lang2tax`` (Joshi et al.'s classes: 5 high, 4 mid)."""

PlotlyJs = Literal["inline", "shared", "cdn"]
"""How a saved figure gets plotly.js: inlined (a standalone file), one ``plotly.min.js`` shared by
the files of a folder, or plotly's CDN (needs the network to display)."""

MODES: tuple[str, ...] = get_args(Mode)
AVERAGES: tuple[str, ...] = get_args(Average)
RULES: tuple[str, ...] = get_args(Rules)
SITE_KINDS: tuple[str, ...] = get_args(SiteKind)
GROUPINGS: tuple[str, ...] = get_args(Groups)
GRIDS: tuple[str, ...] = get_args(GridKind)
POSITIONS: tuple[str, ...] = get_args(Positions)
PLOTLYJS: tuple[str, ...] = get_args(PlotlyJs)

_MEANING = {
    "mode": "'generate' (responses) or 'logits' (first-token statistics only)",
    "average": "'language' (the paper's: mean over languages of each language's score) or "
               "'pooled' (mean over items)",
    "rules": "'authors' (the paper's scripts, default) or 'lenient' (full-width parentheses "
             "normalised for every task; not the paper's)",
    "positions": "'last', 'generated' or a list of prompt positions",
    "grid": "'full' (every source × target) or 'cross' (last source × every target and every source × target 0)",
    "groups": "'paper' (the paper's table headers per dataset) or 'lang2tax' (Joshi et al.'s classes)",
}

T = TypeVar("T", bound=str)


def check_option(name: str, value: object, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``, else an :class:`XtlError` that lists them."""
    if isinstance(value, str) and value in allowed:
        return value
    meaning = _MEANING.get(name, " or ".join(repr(a) for a in allowed))
    close = difflib.get_close_matches(str(value), allowed, n=1) if isinstance(value, str) else []
    hint = f" Did you mean {close[0]!r}?" if close else ""
    if name == "rules":
        raise XtlError(f"unknown scoring rules {value!r}; use {meaning}.{hint}")
    raise XtlError(f"{name} must be {meaning}, not {value!r}.{hint}")


#: Model dtype spellings -> the canonical name stores record (one table for the loader and the CLI).
DTYPE_NAMES = {"float32": "float32", "fp32": "float32", "float64": "float64", "bfloat16": "bfloat16",
               "bf16": "bfloat16", "float16": "float16", "fp16": "float16"}


def canonical_dtype(name: str) -> str:
    """``"bf16"`` -> ``"bfloat16"``; an unknown spelling is returned as given (the loader refuses it)."""
    return DTYPE_NAMES.get(name, name)

