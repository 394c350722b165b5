"""One cell of the gain heatmap, item by item: what each item answered under configuration
(i, j) against vanilla, the items the transplant fixed or broke first (what the explorer and
the report's click-through show)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from xtl.analysis.grids import _need
from xtl.errors import XtlError

__all__ = ["STATUS_ORDER", "cell_items", "cell_index", "cell_index_json", "script_json"]

#: How a cell's items are ordered: what the transplant changed comes first.
STATUS_ORDER = ("fixed", "broken", "right", "wrong")
COLUMNS = ["item_key", "lang", "gold", "vanilla_answer", "answer", "status", "vanilla_correct", "correct",
           "margin", "entropy"]


def _text(value: Any, width: int | None) -> str:
    text = " ".join(str(value or "").split())
    return text if width is None or len(text) <= width else text[:width] + "…"


def _status_order(vanilla_correct: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Index into :data:`STATUS_ORDER` of each row: fixed, broken, right or wrong."""
    return np.select([~vanilla_correct & correct, vanilla_correct & ~correct, correct], [0, 1, 2], 3)


def _annotated(df: pd.DataFrame, rest: pd.DataFrame, width: int | None) -> pd.DataFrame:
    """``rest`` (configuration rows) with the COLUMNS of :func:`cell_items`, vectorised."""
    van = df[df["is_vanilla"]].drop_duplicates("item_key").set_index("item_key")
    van_text = van["response"].fillna("")
    if "answer" in van.columns:
        van_text = van_text.where(van_text != "", van["answer"].fillna(""))
    text = rest["response"].fillna("")
    if "answer" in rest.columns:
        text = text.where(text != "", rest["answer"].fillna(""))
    out = pd.DataFrame({
        "src_layer": rest["src_layer"].astype(int).to_numpy(), "tgt_layer": rest["tgt_layer"].astype(int).to_numpy(),
        "item_key": rest["item_key"].to_numpy(),
        "lang": rest["lang"].astype(str).to_numpy() if "lang" in rest else "",
        "gold": rest["gold"].astype(str).to_numpy() if "gold" in rest else "",
        "vanilla_answer": [_text(t, width) for t in rest["item_key"].map(van_text).fillna("")],
        "answer": [_text(t, width) for t in text],
        "vanilla_correct": rest["item_key"].map(van["correct"]).fillna(False).astype(bool).to_numpy(),
        "correct": rest["correct"].astype(bool).to_numpy(),
        "margin": rest["margin"].to_numpy(float) if "margin" in rest else np.nan,
        "entropy": rest["entropy"].to_numpy(float) if "entropy" in rest else np.nan})
    out["_order"] = _status_order(out["vanilla_correct"].to_numpy(), out["correct"].to_numpy())
    out["status"] = np.asarray(STATUS_ORDER, dtype=object)[out["_order"].to_numpy()]
    return out.sort_values(["src_layer", "tgt_layer", "_order", "lang", "item_key"], kind="stable")


def cell_items(df: pd.DataFrame, src: int, tgt: int, width: int | None = None) -> pd.DataFrame:
    """The items of configuration (``src``, ``tgt``) of an evaluated results table: language,
    gold, vanilla and transplanted answers, status (``fixed``: wrong → right, ``broken``: right →
    wrong, else ``right``/``wrong``), first-token margin and entropy; fixed first, then broken,
    then the rest (by language and item). ``width`` truncates answers."""
    _need(df, ["item_key", "src_layer", "tgt_layer", "is_vanilla", "correct", "response"])
    cell = df[(~df["is_vanilla"]) & (df["src_layer"] == src) & (df["tgt_layer"] == tgt)]
    if cell.empty:
        raise XtlError(f"configuration ({src}, {tgt}) is not in these results")
    return _annotated(df, cell, width)[COLUMNS].reset_index(drop=True)


def cell_index(df: pd.DataFrame, per_cell: int = 20, width: int = 80) -> dict[str, Any]:
    """Every cell's counts and its first ``per_cell`` items (fixed and broken first), answers
    cut to ``width`` characters and shared through one string table: what the report embeds so
    a click shows a cell's items without a server, in a page whose size stays bounded by
    cells × ``per_cell`` rather than by the number of items."""
    _need(df, ["item_key", "src_layer", "tgt_layer", "is_vanilla", "correct", "response"])
    rest = df[~df["is_vanilla"]]
    van = df[df["is_vanilla"]].drop_duplicates("item_key").set_index("item_key")
    src, tgt = rest["src_layer"].to_numpy(int), rest["tgt_layer"].to_numpy(int)
    vc = rest["item_key"].map(van["correct"]).fillna(False).to_numpy(bool)
    ok = rest["correct"].to_numpy(bool)
    order = _status_order(vc, ok)
    item_code, _ = pd.factorize(rest["item_key"], sort=True)
    lang_code, _ = pd.factorize(rest["lang"] if "lang" in rest else pd.Series([""] * len(rest)), sort=True)
    perm = np.lexsort((item_code, lang_code, order, tgt, src))
    s_src, s_tgt = src[perm], tgt[perm]
    start = np.r_[True, (s_src[1:] != s_src[:-1]) | (s_tgt[1:] != s_tgt[:-1])]
    group = np.cumsum(start) - 1
    rank = np.arange(len(perm)) - np.flatnonzero(start)[group]
    keep = perm[rank < per_cell]
    head = _annotated(df, rest.iloc[keep], width)
    counts = pd.DataFrame({"s": src, "t": tgt, "o": order}).groupby(["s", "t", "o"]).size().unstack(fill_value=0)
    strings: dict[str, int] = {}
    codes = {col: [strings.setdefault(v, len(strings)) for v in head[col].astype(str)]
             for col in ("item_key", "lang", "gold", "vanilla_answer", "answer")}
    status = head["_order"].to_numpy()
    cells: dict[str, Any] = {}
    for (s_, t_), c in counts.iterrows():
        cells[f"{s_},{t_}"] = {"n": int(c.sum()), **{st: int(c.get(k, 0)) for k, st in enumerate(STATUS_ORDER)},
                               "rows": []}
    for k, (s_, t_) in enumerate(zip(head["src_layer"], head["tgt_layer"])):
        cells[f"{s_},{t_}"]["rows"].append([codes["item_key"][k], codes["lang"][k], codes["gold"][k],
                                            codes["vanilla_answer"][k], codes["answer"][k], int(status[k])])
    return {"strings": list(strings), "status": list(STATUS_ORDER), "cells": cells, "per_cell": per_cell}


#: Characters written as JSON escapes inside an HTML ``<script>`` element: ``<`` (``</script>``,
#: ``<!--`` and ``<script`` all start with it), ``>`` and ``&``, and the two line separators
#: JavaScript once read as line ends. JSON.parse reads the escapes back as the characters.
_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_json(data: Any) -> str:
    """``data`` as compact JSON that can sit in an HTML ``<script>`` element whatever its strings
    hold: no ``<`` (nor ``>``, ``&``) is left raw, so no text ends or comments out the element."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for char, escape in _SCRIPT_ESCAPES.items():
        text = text.replace(char, escape)
    return text


def cell_index_json(df: pd.DataFrame, per_cell: int = 20, width: int = 80) -> str:
    """:func:`cell_index` as compact JSON, safe inside a ``<script>`` element (:func:`script_json`)."""
    return script_json(cell_index(df, per_cell, width))
