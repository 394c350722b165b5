"""XNLI PilotSet and unseen set (natural language inference, English -> other language)."""

from __future__ import annotations

from pathlib import Path

from xtl.tasks.files import check_parallel, languages_in, read_jsonl, split_folder
from xtl.tasks.item import Item


def load_xnli(root: Path, langs=None, limit=None, variant: str = "", source: str = "en") -> list[Item]:
    """Items of the PilotSet, or of the unseen set with ``variant="unseen"``, transplanted from
    the ``source`` language's parallel prompts (English by default; any language of the set)."""
    unseen = variant == "unseen"
    folder = split_folder(root, "XNLI", unseen)
    languages_in(folder / "split", "{lang}.json", [source], role="source")  # a clear error for a missing source
    en = read_jsonl(folder / "split" / f"{source}.json")
    english = folder / "ans_lang" / "en.json"  # the option words in English, for the language lens
    en_words = {str(a): w for a, w in read_jsonl(english)[0].items()} if english.is_file() else {}
    items = []
    for lang in languages_in(folder / "split", "{lang}.json", langs):
        files = {"split": folder / "split" / f"{lang}.json", "ans": folder / "ans" / f"{lang}.json"}
        check_parallel({**files, source: folder / "split" / f"{source}.json"})
        prompts, golds = read_jsonl(files["split"]), read_jsonl(files["ans"])
        words = read_jsonl(folder / "ans_lang" / f"{lang}.json")[0]
        for k, (src, tgt, gold) in enumerate(zip(en, prompts, golds)):
            if limit is not None and k >= limit:
                break
            meta = {"src_lang": source}
            if str(gold) in en_words and str(gold) in words:
                meta["answers"] = {"en": en_words[str(gold)], lang: words[str(gold)]}
            items.append(Item(f"{k}", "xnli", lang, src, tgt, str(gold), "choice",
                              {str(a): w for a, w in words.items()}, meta))
    return items


