"""XCOPA, transplanted from the English COPA originals into each language (section D)."""

from __future__ import annotations

from pathlib import Path

from xtl.errors import DataError
from xtl.tasks.files import read_jsonl
from xtl.tasks.item import Item

XCOPA_PROMPT = ("You are assigned to complete a two-category classification task.\n\n"
                "Premise: {premise}\nOptions: (1) {choice1}\n(2) {choice2}\n\n"
                "Please determine which of the two options is more likely to be the {question} of "
                "the given premise.\n\nYour Answer:")


#: The paper's XCOPA languages (Table 3); et, qu and th are there on request. ``en`` is the
#: English COPA original transplanted into itself (source prompt = target prompt), as the paper
#: reports it (53.6 -> 56.7; in xtl that transplant reproduces vanilla exactly, see
#: docs/reproduce.md).
XCOPA_LANGS = ("en", "ht", "id", "it", "sw", "ta", "tr", "vi", "zh")


def load_xcopa(root: Path, langs=None, limit=None, variant: str = "", pivot: str = "en") -> list[Item]:
    """XCOPA, transplanted from the English COPA original (``pivot``) into each language.

    Every prompt, source and target, asks for the English COPA question type of its ``idx``:
    the XCOPA files' own ``question`` field is wrong in several languages (th says "effect"
    throughout). The pivot language as a target is an English -> English self-transplant.
    """
    split = variant or "test"
    folder = root / "data" if (root / "data").is_dir() else root
    found = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    pivot_file = folder / pivot / f"{split}.{pivot}.jsonl"
    if not pivot_file.exists():
        raise DataError(f"missing XCOPA source-language file {pivot_file}; XCOPA is transplanted "
                        f"from {pivot} (the English COPA originals aligned to XCOPA's idx)")
    pivot_rows = {r["idx"]: r for r in read_jsonl(pivot_file)}
    use = list(langs) if langs else [l for l in XCOPA_LANGS if l in found]
    items = []
    for lang in use:
        if lang not in found:
            raise DataError(f"XCOPA language {lang!r} missing in {folder}; available: "
                            f"{', '.join(found)}")
        for k, row in enumerate(read_jsonl(folder / lang / f"{split}.{lang}.jsonl")):
            if limit is not None and k >= limit:
                break
            src = pivot_rows.get(row["idx"])
            if src is None:
                raise DataError(f"{folder / lang}: idx {row['idx']} has no parallel {pivot} item")
            question = src["question"]
            items.append(Item(str(row["idx"]), "xcopa", lang, XCOPA_PROMPT.format(**src),
                              XCOPA_PROMPT.format(**{**row, "question": question}),
                              str(row["label"] + 1), "choice", {"1": "1", "2": "2"},
                              {"pivot": pivot, "src_lang": pivot, "question": question,
                               "file_question": row.get("question")}))
    return items


