"""CulturalBench-Easy (``kellycyy/CulturalBench``): culture language -> English, 4-way choice."""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path

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




#: The file of culture-language prompts the ``culturalbench`` task reads from its data folder.
PROMPTS_FILE = "prompts.jsonl"
#: CulturalBench's own questions, when the Hub is out of reach (its Easy configuration, as JSON Lines).
QUESTIONS_FILE = "questions.jsonl"
PROMPTS_FORMAT = ('one JSON object per line: {"id": "<CulturalBench data_idx>", "prompt": "<the '
                  'GlobalOpinionQA-style prompt of that question in the culture\'s language>"}')


@functools.lru_cache(maxsize=1)
def country_languages() -> dict[str, str]:
    """CulturalBench country -> language, for the paper's 16 languages (shipped with xtl)."""
    text = resources.files("xtl").joinpath("data/culturalbench_countries.json").read_text("utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def load_culturalbench_task(root: Path, langs=None, limit=None, variant: str = "") -> list[Item]:
    """The ``culturalbench`` task: CulturalBench-Easy questions (``questions.jsonl`` in the data
    folder, else the Hub's ``kellycyy/CulturalBench``) with the culture-language source prompts of
    ``prompts.jsonl``; countries map to languages by :func:`country_languages`. Questions of
    other countries, or without a translated prompt, are left out."""
    del variant
    folder = root / "culturalbench" if (root / "culturalbench").is_dir() else root
    prompts_path = folder / PROMPTS_FILE
    if not prompts_path.is_file():
        raise DataError(f"CulturalBench needs its questions translated into each culture's language: put "
                        f"{PROMPTS_FILE} in {folder} ({PROMPTS_FORMAT}); docs/reproduce.md shows how to make it")
    from xtl.tasks.files import read_jsonl

    prompts = {}
    for n, row in enumerate(read_jsonl(prompts_path), 1):
        if not isinstance(row, dict) or not {"id", "prompt"} <= set(row) or not str(row["prompt"]).strip():
            raise DataError(f"{prompts_path}:{n}: expected {PROMPTS_FORMAT}")
        prompts[str(row["id"])] = str(row["prompt"])
    if (folder / QUESTIONS_FILE).is_file():
        questions = read_jsonl(folder / QUESTIONS_FILE)
    else:
        questions = _hub(None, "kellycyy/CulturalBench", "CulturalBench-Easy", "test")
    mapping = country_languages()
    rows = [{**row, "translated_prompt": prompts[str(row.get("data_idx"))]} for row in questions
            if row.get("country") in mapping and str(row.get("data_idx")) in prompts]
    if not rows:
        raise DataError(f"no CulturalBench question has a prompt in {prompts_path} and a country of "
                        f"{', '.join(mapping)}; check the ids (CulturalBench's data_idx)")
    return load_culturalbench(langs, limit, rows, mapping)
