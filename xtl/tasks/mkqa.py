"""MKQA (``apple/mkqa``): open-domain QA, English -> other language like XQuAD."""

from __future__ import annotations

from xtl.errors import DataError
from xtl.tasks.hub import _hub
from xtl.tasks.item import Item


#: The paper's 17 MKQA languages (Table 3). ``zh`` is MKQA's ``zh_cn`` locale (Simplified
#: Chinese); ``en`` is transplanted from itself, as the paper reports it. Every other MKQA
#: locale (``da``, ``zh_tw``, ...) loads on request.
MKQA_LANGS = ("ar", "de", "en", "es", "fr", "ja", "zh", "it", "ko", "pt", "tr", "vi",
              "fi", "he", "hu", "nl", "no")
#: Languages named by a code MKQA files under a locale.
MKQA_LOCALES = {"zh": "zh_cn"}


def load_mkqa(langs=None, limit=None, dataset=None, source_lang: str = "en") -> list[Item]:
    """MKQA (``apple/mkqa``) as generative QA, English -> other language like XQuAD.

    ``langs``: default the paper's 17 (:data:`MKQA_LANGS`), with ``zh`` read from MKQA's
    ``zh_cn``; the English item is an English -> English transplant. ``dataset``: a
    ``datasets.Dataset`` with MKQA's schema (``example_id``, ``queries`` and ``answers`` keyed by
    language); default: the hub's. Items without a text answer are skipped.
    """
    ds = _hub(dataset, "apple/mkqa")
    template = "Human: Please answer the following question.\n\nQuestion: {q}\n\nAssistant: My answer would be:"
    items, per_lang = [], {}
    for n, row in enumerate(ds):
        for field_ in ("queries", "answers"):
            if field_ not in row:
                raise DataError(f"MKQA row {n} lacks {field_!r}; pass a dataset with MKQA's schema")
        for lang in langs or MKQA_LANGS:
            locale = lang if lang in row["queries"] else MKQA_LOCALES.get(lang, lang)
            if locale not in row["queries"] and not langs:
                continue  # a dataset of fewer languages than the paper's: use what it has
            if locale not in row["queries"]:
                raise DataError(f"MKQA has no language {lang!r}; available: {', '.join(sorted(row['queries']))} "
                                f"(zh is zh_cn)")
            answers = [a.get("text") for a in row["answers"].get(locale, []) if a.get("text")]
            if not answers or per_lang.get(lang, 0) >= (limit or 10**12):
                continue
            per_lang[lang] = per_lang.get(lang, 0) + 1
            items.append(Item(str(row.get("example_id", n)), "mkqa", lang,
                              template.format(q=row["queries"][source_lang]),
                              template.format(q=row["queries"][locale]), answers[0], "qa",
                              meta={"src_lang": source_lang, "locale": locale}))
    return items


