"""GlobalOpinionQA PilotSet and unseen set (culture language -> English prompt)."""

from __future__ import annotations

from pathlib import Path

from xtl.tasks.files import check_parallel, languages_in, read_jsonl, split_folder
from xtl.tasks.item import Item


def load_globalopinionqa(root: Path, langs=None, limit=None, variant: str = "") -> list[Item]:
    """Items of the PilotSet, or of the unseen set with ``variant="unseen"``."""
    unseen = variant == "unseen"
    folder = split_folder(root, "GlobalOpinionQA", unseen)
    items = []
    for lang in languages_in(folder / "split", "{lang}.json", langs):
        files = {"split": folder / "split" / f"{lang}.json", "translated": folder / "translated" / f"{lang}.json"}
        check_parallel(files)
        for k, (row, translated) in enumerate(zip(read_jsonl(files["split"]), read_jsonl(files["translated"]))):
            if limit is not None and k >= limit:
                break
            probs = row["label"]
            gold = chr(ord("A") + max(range(len(probs)), key=probs.__getitem__))
            options = {chr(ord("A") + n): chr(ord("A") + n) for n in range(len(probs))}
            items.append(Item(f"{k}", "globalopinionqa", lang, translated, row["input_text"], gold,
                              "choice", options, {"country": row.get("country"), "label": probs,
                                                   "out_lang": "en", "src_lang": lang}))
    return items


