"""MKQA (``apple/mkqa``): open-domain QA, English -> other language like XQuAD."""

from __future__ import annotations

from xtl.errors import DataError
from xtl.tasks.hub import _hub
from xtl.tasks.item import Item


def load_mkqa(langs=None, limit=None, dataset=None, source_lang: str = "en") -> list[Item]:
    """MKQA (``apple/mkqa``) as generative QA, English -> other language like XQuAD.

    ``dataset``: a ``datasets.Dataset`` with MKQA's schema (``example_id``, ``queries`` and
    ``answers`` keyed by language); default: the hub's. Items without a text answer are skipped.
    """
    ds = _hub(dataset, "apple/mkqa")
    template = "Human: Please answer the following question.\n\nQuestion: {q}\n\nAssistant: My answer would be:"
    items, per_lang = [], {}
    for n, row in enumerate(ds):
        for field_ in ("queries", "answers"):
            if field_ not in row:
                raise DataError(f"MKQA row {n} lacks {field_!r}; pass a dataset with MKQA's schema")
        use = langs or sorted(l for l in row["queries"] if l != source_lang)
        for lang in use:
            if lang not in row["queries"]:
                raise DataError(f"MKQA has no language {lang!r}; available: {', '.join(sorted(row['queries']))}")
            answers = [a.get("text") for a in row["answers"].get(lang, []) if a.get("text")]
            if not answers or per_lang.get(lang, 0) >= (limit or 10**12):
                continue
            per_lang[lang] = per_lang.get(lang, 0) + 1
            items.append(Item(str(row.get("example_id", n)), "mkqa", lang,
                              template.format(q=row["queries"][source_lang]),
                              template.format(q=row["queries"][lang]), answers[0], "qa",
                              meta={"src_lang": source_lang}))
    return items


