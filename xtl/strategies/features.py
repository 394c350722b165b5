"""Gold-free features of each candidate configuration of an item: what a strategy may know
without the answer — the first token's confidence, the response's likelihood, whether it
changes the vanilla answer, how many other candidates agree with it, its layers, the item's
language group."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

__all__ = ["FEATURES", "answer_key", "candidate_features", "mean_loglik"]

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


def mean_loglik(rows: pd.DataFrame) -> pd.Series:
    """Each response's mean log-probability per token; NaN for an empty response, which has no
    likelihood to compare (its sum, 0.0, would beat every real answer)."""
    n_tok = rows["n_tokens"] if "n_tokens" in rows.columns else pd.Series(1, index=rows.index)
    return (rows["loglik"] / n_tok.clip(lower=1)).where(n_tok > 0)


def candidate_features(rows: pd.DataFrame, n_layers: int) -> pd.DataFrame:
    """``rows`` (vanilla and candidate configurations of some items) with ``answer_key`` and
    the :data:`FEATURES` columns; nothing here reads ``correct``."""
    out = rows.copy()
    answers = out["answer"] if "answer" in out.columns else pd.Series("", index=out.index)
    out["answer_key"] = [answer_key(r, a) for r, a in zip(out["response"].fillna(""), answers.fillna(""))]
    for col in ("entropy", "margin", "loglik"):
        if col not in out.columns:
            out[col] = np.nan
    van = out[out["is_vanilla"]].drop_duplicates("item_key").set_index("item_key")
    v_ent = out["item_key"].map(van["entropy"])
    v_mar = out["item_key"].map(van["margin"])
    v_ans = out["item_key"].map(van["answer_key"])
    agree = out.groupby(["item_key", "answer_key"])["answer_key"].transform("size")
    size = out.groupby("item_key")["answer_key"].transform("size")
    last = max(n_layers - 1, 1)
    group = out["group"] if "group" in out.columns else pd.Series("", index=out.index)
    out = out.assign(
        f_entropy=out["entropy"], f_margin=out["margin"], f_loglik=_least_likely_if_empty(out),
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


def _least_likely_if_empty(rows: pd.DataFrame) -> pd.Series:
    """:func:`mean_loglik`, an empty response ranked below every real one (the lowest mean of the
    frame, less one): a missing feature is filled with 0.0, the likeliest value there is."""
    mean = mean_loglik(rows)
    empty = mean.isna() & rows["loglik"].notna()
    floor = mean.min() - 1.0 if mean.notna().any() else -1.0
    return mean.mask(empty, floor)
