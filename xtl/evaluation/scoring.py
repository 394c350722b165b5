"""Scoring rules of the paper (section 3): is a response right?

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

import string
from typing import TYPE_CHECKING, Mapping, Sequence

from xtl.options import RULES as OPTION_RULES
from xtl.options import check_option
from xtl.tasks.registry import TASKS, scoring_for

if TYPE_CHECKING:
    from xtl.tasks import Item

__all__ = ["RULES", "check_rules", "score_choice", "score_qa", "score", "LETTER_TASKS"]

FULLWIDTH = str.maketrans({"（": "(", "）": ")"})

#: Scoring profiles: the authors' released scripts (default) and a lenient variant.
RULES = OPTION_RULES


def check_rules(rules: str) -> str:
    """``rules`` if it names a scoring profile, else an error that lists them."""
    return check_option("rules", rules, RULES)


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


#: Datasets scored like GlobalOpinionQA (upper-cased, every letter A-Z an option), from the
#: task records.
LETTER_TASKS = tuple(name for name, task in TASKS.items() if task.scoring.letters)


def score(item: "Item", response: str, rules: str = "authors") -> bool:
    """Score one response against an :class:`xtl.tasks.Item` with its dataset's rule (the
    task record's :class:`xtl.tasks.Scoring`; plain choice or QA for JSONL items).

    ``rules="authors"`` reads full-width parentheses only where the released scripts do
    (XNLI); ``"lenient"`` does it for every multiple-choice task.
    """
    check_rules(rules)
    rule = scoring_for(item.dataset, item.kind)
    if item.kind == "qa" or rule.kind == "qa":
        return score_qa(response, item.gold)
    fullwidth = rules == "lenient" or rule.fullwidth
    if rule.letters:
        return score_choice(response, item.gold, string.ascii_uppercase, ignore_case=rule.ignore_case,
                            fullwidth=fullwidth)
    labels = list(item.options) or [item.gold]
    words = {label: word for label, word in item.options.items() if word and word != label}
    return score_choice(response, item.gold, labels, words, ignore_case=rule.ignore_case, fullwidth=fullwidth)
