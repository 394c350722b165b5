"""XQuAD PilotSet and unseen set (extractive QA, English -> other language)."""

from __future__ import annotations

from pathlib import Path

from xtl.tasks.files import check_parallel, languages_in, read_jsonl, split_folder
from xtl.tasks.item import Item


def load_xquad(root: Path, langs=None, limit=None, variant: str = "", source: str = "en") -> list[Item]:
    """Items of the PilotSet, or of the unseen set with ``variant="unseen"``, transplanted from
    the ``source`` language's parallel prompts (English by default; any language of the set)."""
    unseen = variant == "unseen"
    folder = split_folder(root, "XQuAD", unseen)
    languages_in(folder / "split", "xquad.{lang}.json", [source], role="source")
    en = read_jsonl(folder / "split" / f"xquad.{source}.json")
    english = folder / "ans" / "xquad.en.json"  # the gold answers in English, for the language lens
    en_golds = read_jsonl(english) if english.is_file() else []
    items = []
    for lang in languages_in(folder / "split", "xquad.{lang}.json", langs):
        files = {"split": folder / "split" / f"xquad.{lang}.json", "ans": folder / "ans" / f"xquad.{lang}.json"}
        check_parallel({**files, source: folder / "split" / f"xquad.{source}.json"})
        for k, (src, tgt, gold) in enumerate(zip(en, read_jsonl(files["split"]), read_jsonl(files["ans"]))):
            if limit is not None and k >= limit:
                break
            meta = {"src_lang": source}
            if k < len(en_golds):
                meta["answers"] = {"en": str(en_golds[k]), lang: str(gold)}
            items.append(Item(f"{k}", "xquad", lang, src, tgt, str(gold), "qa", meta=meta))
    return items


