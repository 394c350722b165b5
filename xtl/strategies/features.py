"""Gold-free features of each candidate configuration of an item: what a strategy may know
without the answer — the first token's confidence, the response's likelihood, whether it
changes the vanilla answer, how many other candidates agree with it, its layers, the item's
language group."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

__all__ = ["FEATURES", "answer_key", "candidate_features"]

#: Feature columns :func:`features` adds (what the learned strategy reads).
FEATURES = ("f_entropy", "f_margin", "f_loglik", "f_d_entropy", "f_d_margin", "f_changes", "f_agree",
            "f_src", "f_tgt", "f_src_last", "f_tgt_first", "f_vanilla", "f_high", "f_mid", "f_low")

_MARKER = re.compile(r"[(（]\s*([A-Za-z0-9])\s*[)）]")


def answer_key(response: str, answer: str = "") -> str:
    """What a response answers, without the gold: a logits-mode row's candidate, else the first
    option marker ``(k)`` in it, else its first words (case and spacing folded)."""
    if answer:
        return str(answer).strip().strip("()（）").upper()
    text = " ".join(str(response or "").split())
    m = _MARKER.search(text)
    return m.group(1).upper() if m else text[:40].lower()


def candidate_features(rows: pd.DataFrame, n_layers: int) -> pd.DataFrame:
    """``rows`` (vanilla and candidate configurations of some items) with ``answer_key`` and
    the :data:`FEATURES` columns; nothing here reads ``correct``."""
    out = rows.copy()
    answers = out["answer"] if "answer" in out.columns else pd.Series("", index=out.index)
    out["answer_key"] = [answer_key(r, a) for r, a in zip(out["response"].fillna(""), answers.fillna(""))]
    for col in ("entropy", "margin", "loglik"):
        if col not in out.columns:
            out[col] = np.nan
    n_tok = out["n_tokens"].clip(lower=1) if "n_tokens" in out.columns else 1
    van = out[out["is_vanilla"]].drop_duplicates("item_key").set_index("item_key")
    v_ent = out["item_key"].map(van["entropy"])
    v_mar = out["item_key"].map(van["margin"])
    v_ans = out["item_key"].map(van["answer_key"])
    agree = out.groupby(["item_key", "answer_key"])["answer_key"].transform("size")
    size = out.groupby("item_key")["answer_key"].transform("size")
    last = max(n_layers - 1, 1)
    group = out["group"] if "group" in out.columns else pd.Series("", index=out.index)
    out = out.assign(
        f_entropy=out["entropy"], f_margin=out["margin"], f_loglik=out["loglik"] / n_tok,
        f_d_entropy=out["entropy"] - v_ent, f_d_margin=out["margin"] - v_mar,
        f_changes=(out["answer_key"] != v_ans).astype(float), f_agree=agree / size,
        f_src=np.where(out["is_vanilla"], -1.0, out["src_layer"] / last),
        f_tgt=np.where(out["is_vanilla"], -1.0, out["tgt_layer"] / last),
        f_src_last=((out["src_layer"] == n_layers - 1) & ~out["is_vanilla"]).astype(float),
        f_tgt_first=((out["tgt_layer"] == 0) & ~out["is_vanilla"]).astype(float),
        f_vanilla=out["is_vanilla"].astype(float), f_high=(group == "high").astype(float),
        f_mid=(group == "mid").astype(float), f_low=(group == "low").astype(float))
    out[list(FEATURES)] = out[list(FEATURES)].astype(float).fillna(0.0)
    return out
