"""CulturalBench-Easy (``kellycyy/CulturalBench``): culture language -> English, 4-way choice."""

from __future__ import annotations

from xtl.errors import DataError
from xtl.tasks.hub import _hub
from xtl.tasks.item import Item
from xtl.tasks.templates import render_prompt


def load_culturalbench(langs=None, limit=None, dataset=None,
                       country_lang: dict[str, str] | None = None) -> list[Item]:
    """CulturalBench-Easy (``kellycyy/CulturalBench``) as 4-way multiple choice, culture
    language -> English like GlobalOpinionQA.

    CulturalBench is English-only, so the source prompt must come with the data: a column
    ``translated_prompt`` holding the prompt in the culture's language. ``country_lang`` maps
    the ``country`` column to a language code.
    """
    ds = _hub(dataset, "kellycyy/CulturalBench", "CulturalBench-Easy", "test")
    mapping = country_lang or {}
    items, per_lang = [], {}
    for n, row in enumerate(ds):
        need = ["prompt_question", "prompt_option_a", "prompt_option_b", "prompt_option_c",
                "prompt_option_d", "answer", "country", "translated_prompt"]
        missing = [k for k in need if k not in row]
        if missing:
            raise DataError(f"CulturalBench row {n} lacks {missing}; the culture-language source "
                            "prompt goes in a 'translated_prompt' column")
        lang = mapping.get(row["country"])
        if lang is None:
            raise DataError(f"CulturalBench row {n}: no language for country {row['country']!r}; "
                            "pass country_lang={country: code}")
        if (langs and lang not in langs) or per_lang.get(lang, 0) >= (limit or 10**12):
            continue
        per_lang[lang] = per_lang.get(lang, 0) + 1
        options = [row[f"prompt_option_{c}"] for c in "abcd"]
        target = render_prompt("globalopinionqa", country=row["country"], question=row["prompt_question"],
                               options=options)
        items.append(Item(str(row.get("data_idx", n)), "culturalbench", lang, row["translated_prompt"],
                          target, str(row["answer"]).strip().upper(), "choice",
                          {c: c for c in "ABCD"}, {"out_lang": "en", "src_lang": lang}))
    return items


