"""The demo set shipped with xtl: ten general-knowledge questions, three options each, in
English (the source) and four target languages (``xtl/data/demo_set.json``, written for xtl).

It is small enough to sweep every (source, target) layer pair on a CPU in seconds per item
(first-token choice among the options), which is what ``xtl demo`` does after its single question.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from xtl.errors import DataError
from xtl.tasks.item import Item

__all__ = ["DEMO_LANGS", "DEMO_LABELS", "demo_set_info", "load_demo_set", "demo_prompt"]


@lru_cache(maxsize=1)
def _raw() -> str:
    return resources.files("xtl").joinpath("data/demo_set.json").read_text("utf-8")


def demo_set_info() -> dict:
    """The set's file as data: ``langs``, ``labels``, ``questions`` (a fresh copy)."""
    return json.loads(_raw())


DEMO_LANGS = ("de", "es", "zh", "sw")
DEMO_LABELS = ("A", "B", "C")


def demo_prompt(words: list[str], question: list[str], labels=DEMO_LABELS) -> str:
    """``Question: ...\\nOptions: (A) .. (B) .. (C) ..\\nAnswer: (`` in the language of ``words``:
    the prompt ends where the option's letter comes, so its first token is the answer."""
    options = " ".join(f"({label}) {text}" for label, text in zip(labels, question[1:]))
    return f"{words[0]}: {question[0]}\n{words[1]}: {options}\n{words[2]}: ("


def load_demo_set(langs=None, limit=None) -> list[Item]:
    """Items of the demo set: per target language, each question transplanted from English.

    ``limit``: questions per language (at most the set's ten); ``langs``: some of
    :data:`DEMO_LANGS`. Asking for more than the set holds is an error, not a silent cut.
    """
    info = demo_set_info()
    have, questions = info["langs"], info["questions"]
    use = list(langs) if langs else list(have)
    unknown = [l for l in use if l not in have]
    if unknown:
        raise DataError(f"the demo set has no language {', '.join(map(repr, unknown))}; it has {' '.join(have)}")
    if limit is not None and limit > len(questions):
        raise DataError(f"the demo set has {len(questions)} questions per language, not {limit}; "
                        f"ask for at most {len(questions)}")
    labels = info["labels"]
    src_words = info["words"][info["source_lang"]]
    items = []
    for lang in use:
        for q in questions[:limit]:
            options = dict(zip(labels, q[lang][1:]))
            items.append(Item(q["id"], "demo", lang, demo_prompt(src_words, q[info["source_lang"]], labels),
                              demo_prompt(info["words"][lang], q[lang], labels), q["gold"], "choice", options,
                              {"src_lang": info["source_lang"]}))
    return items
