"""Tasks as data: the paper's PilotSets / unseen sets, XCOPA, and a generic parallel JSONL format.

Every loader yields :class:`Item` records with source prompt, target prompt, gold answer,
language and the transplant direction the paper uses: English -> other for XNLI and XQuAD,
culture language -> English for GlobalOpinionQA.

Get the data by cloning the authors' repository (https://github.com/YYF-Tommy/XTransplant) and
pointing ``root`` (or ``$XTL_DATA``) at its ``data/`` folder.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from xtl.errors import DataError

__all__ = ["Item", "load_task", "TASKS", "data_root"]


@dataclass(frozen=True)
class Item:
    """One parallel item; ``source`` is transplanted into ``target``."""

    id: str
    dataset: str
    lang: str
    source: str
    target: str
    gold: str
    kind: str  # "choice" or "qa"
    options: dict[str, str] = field(default_factory=dict)  # label -> option word in target language
    meta: dict[str, Any] = field(default_factory=dict)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root``, else ``$XTL_DATA``; must hold XNLI/, XQuAD/, ... folders."""
    value = root or os.environ.get("XTL_DATA")
    if not value:
        raise DataError("no data root; pass --data-root DIR or set XTL_DATA to the authors' data/ "
                        "folder (git clone https://github.com/YYF-Tommy/XTransplant)")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DataError(f"data root {path} is not a directory")
    return path


def read_jsonl(path: Path) -> list[Any]:
    """JSON Lines, with the file and line named on a malformed line."""
    if not path.exists():
        raise DataError(f"missing data file {path}")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for n, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{n}: malformed JSON line ({exc.msg})") from exc
    return rows


def _parallel(paths: dict[str, Path]) -> None:
    counts = {name: sum(1 for line in p.open(encoding="utf-8") if line.strip()) for name, p in paths.items()}
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{p} has {counts[n]}" for n, p in paths.items())
        raise DataError(f"parallel files differ in line count: {detail}")


def _langs(folder: Path, pattern: str, langs: list[str] | None) -> list[str]:
    found = sorted(p.name[len(pattern.split('{')[0]):-len(pattern.split('}')[1])]
                   for p in folder.glob(pattern.replace("{lang}", "*")))
    if langs:
        missing = [l for l in langs if l not in found]
        if missing:
            raise DataError(f"language(s) {missing} missing in {folder}; available: {', '.join(found)}")
        return list(langs)
    return found


def _split(root: Path, dataset: str, unseen: bool) -> Path:
    sub = f"{dataset}_unseen" if unseen else f"{dataset}_sample"
    folder = root / dataset / sub
    if not folder.is_dir():
        raise DataError(f"{folder} not found; is the data root the authors' data/ folder?")
    return folder


def load_xnli(root: Path, langs=None, limit=None, unseen=False) -> list[Item]:
    folder = _split(root, "XNLI", unseen)
    en = read_jsonl(folder / "split" / "en.json")
    items = []
    for lang in _langs(folder / "split", "{lang}.json", langs):
        files = {"split": folder / "split" / f"{lang}.json", "ans": folder / "ans" / f"{lang}.json"}
        _parallel({**files, "en": folder / "split" / "en.json"})
        prompts, golds = read_jsonl(files["split"]), read_jsonl(files["ans"])
        words = read_jsonl(folder / "ans_lang" / f"{lang}.json")[0]
        for k, (src, tgt, gold) in enumerate(zip(en, prompts, golds)):
            if limit is not None and k >= limit:
                break
            items.append(Item(f"{k}", "xnli", lang, src, tgt, str(gold), "choice",
                              {str(a): w for a, w in words.items()}))
    return items


def load_xquad(root: Path, langs=None, limit=None, unseen=False) -> list[Item]:
    folder = _split(root, "XQuAD", unseen)
    en = read_jsonl(folder / "split" / "xquad.en.json")
    items = []
    for lang in _langs(folder / "split", "xquad.{lang}.json", langs):
        files = {"split": folder / "split" / f"xquad.{lang}.json", "ans": folder / "ans" / f"xquad.{lang}.json"}
        _parallel({**files, "en": folder / "split" / "xquad.en.json"})
        for k, (src, tgt, gold) in enumerate(zip(en, read_jsonl(files["split"]), read_jsonl(files["ans"]))):
            if limit is not None and k >= limit:
                break
            items.append(Item(f"{k}", "xquad", lang, src, tgt, str(gold), "qa"))
    return items


def load_globalopinionqa(root: Path, langs=None, limit=None, unseen=False) -> list[Item]:
    folder = _split(root, "GlobalOpinionQA", unseen)
    items = []
    for lang in _langs(folder / "split", "{lang}.json", langs):
        files = {"split": folder / "split" / f"{lang}.json", "translated": folder / "translated" / f"{lang}.json"}
        _parallel(files)
        for k, (row, translated) in enumerate(zip(read_jsonl(files["split"]), read_jsonl(files["translated"]))):
            if limit is not None and k >= limit:
                break
            probs = row["label"]
            gold = chr(ord("A") + max(range(len(probs)), key=probs.__getitem__))
            options = {chr(ord("A") + n): chr(ord("A") + n) for n in range(len(probs))}
            items.append(Item(f"{k}", "globalopinionqa", lang, translated, row["input_text"], gold,
                              "choice", options, {"country": row.get("country"), "label": probs}))
    return items


XCOPA_PROMPT = ("You are assigned to complete a two-category classification task.\n\n"
                "Premise: {premise}\nOptions: (1) {choice1}\n(2) {choice2}\n\n"
                "Please determine which of the two options is more likely to be the {question} of "
                "the given premise.\n\nYour Answer:")


def load_xcopa(root: Path, langs=None, limit=None, unseen=False, pivot: str = "en",
               split: str = "test") -> list[Item]:
    folder = root / "data" if (root / "data").is_dir() else root
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    use = langs or found
    if pivot not in found:
        pivot = "zh" if "zh" in found else found[0]
    pivot_rows = {r["idx"]: r for r in read_jsonl(folder / pivot / f"{split}.{pivot}.jsonl")}
    items = []
    for lang in use:
        if lang not in found:
            raise DataError(f"XCOPA language {lang!r} missing in {folder}; available: {', '.join(found)}")
        for k, row in enumerate(read_jsonl(folder / lang / f"{split}.{lang}.jsonl")):
            if limit is not None and k >= limit:
                break
            src = pivot_rows.get(row["idx"])
            if src is None:
                raise DataError(f"{folder / lang}: idx {row['idx']} has no parallel {pivot} item")
            items.append(Item(str(row["idx"]), "xcopa", lang, XCOPA_PROMPT.format(**src),
                              XCOPA_PROMPT.format(**row), str(row["label"] + 1), "choice",
                              {"1": "1", "2": "2"}, {"pivot": pivot}))
    return items


def load_jsonl_task(path: Path, langs=None, limit=None, unseen=False) -> list[Item]:
    """Generic format: one JSON object per line with source, target, gold[, lang, id, kind, options]."""
    items, per_lang = [], {}
    for n, row in enumerate(read_jsonl(path), 1):
        missing = [k for k in ("source", "target", "gold") if k not in row]
        if missing:
            raise DataError(f"{path}:{n}: missing field(s) {missing}; each line needs source, target, gold")
        lang = str(row.get("lang", ""))
        if langs and lang not in langs:
            continue
        per_lang[lang] = per_lang.get(lang, 0) + 1
        if limit is not None and per_lang[lang] > limit:
            continue
        items.append(Item(str(row.get("id", n - 1)), path.stem, lang, row["source"], row["target"],
                          str(row["gold"]), row.get("kind", "qa"), dict(row.get("options", {}))))
    return items


TASKS: dict[str, Callable[..., list[Item]]] = {
    "xnli": load_xnli, "xquad": load_xquad, "globalopinionqa": load_globalopinionqa,
    "xcopa": load_xcopa,
}


def load_task(spec: str, langs: list[str] | None = None, limit: int | None = None,
              root: str | os.PathLike | None = None) -> list[Item]:
    """Items of a registered task (``xnli``, ``xnli:unseen``, ``xquad``, ``globalopinionqa``,
    ``xcopa``) or of a parallel JSONL file."""
    if spec.endswith((".jsonl", ".json")) and Path(spec).exists():
        return load_jsonl_task(Path(spec), langs, limit)
    name, _, variant = spec.lower().partition(":")
    if name not in TASKS:
        close = difflib.get_close_matches(name, list(TASKS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DataError(f"unknown task {spec!r}; use one of {', '.join(TASKS)} or a .jsonl file.{hint}")
    base = data_root(root)
    if name == "xcopa" and (base / "xcopa").is_dir():
        base = base / "xcopa"
    elif name != "xcopa" and (base / "xtransplant").is_dir():
        base = base / "xtransplant"
    return TASKS[name](base, langs=langs, limit=limit, unseen=variant == "unseen")
