"""Reading the paper's data folders: the data root, JSON Lines, parallel files, splits."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from xtl.errors import DataError

__all__ = ["data_root", "read_jsonl", "check_parallel", "languages_in", "split_folder"]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root``, else ``$XTL_DATA``; must hold XNLI/, XQuAD/, ... folders."""
    value = root or os.environ.get("XTL_DATA")
    if not value:
        raise DataError("no data root; pass data_root=DIR (--data-root DIR) or set XTL_DATA to the authors' data/ "
                        "folder (git clone https://github.com/YYF-Tommy/XTransplant)")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DataError(f"data root {path} is not a directory")
    return path


def read_jsonl(path: Path) -> list[Any]:
    """JSON Lines, with the file and line named on a malformed line."""
    if not path.exists():
        raise DataError(f"missing data file {path}")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a JSON Lines file")
    rows = []
    for n, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            line = raw.decode("utf-8-sig" if n == 1 else "utf-8")  # a UTF-8 byte-order mark is read
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}:{n}: not UTF-8 text (byte {exc.start + 1} of the line); "
                            "save the file as UTF-8") from None
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{n}: malformed JSON line ({exc.msg})") from exc
    if not rows:
        raise DataError(f"{path} is empty; put one JSON object per line in it")
    return rows


def check_parallel(paths: dict[str, Path]) -> None:
    counts = {name: sum(1 for line in p.open(encoding="utf-8") if line.strip()) for name, p in paths.items()}
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{p} has {counts[n]}" for n, p in paths.items())
        raise DataError(f"parallel files differ in line count: {detail}")


def languages_in(folder: Path, pattern: str, langs: list[str] | None, role: str = "") -> list[str]:
    """The languages of ``folder``'s files named by ``pattern``; ``langs`` checked against them
    (``role="source"``: a task's ``@LANG`` source language, named so in the error)."""
    found = sorted(p.name[len(pattern.split('{')[0]):-len(pattern.split('}')[1])]
                   for p in folder.glob(pattern.replace("{lang}", "*")))
    if langs:
        missing = [l for l in langs if l not in found]
        if missing and role == "source":
            raise DataError(f"source language {missing[0]!r} (the '@{missing[0]}' of the task) has no prompts in "
                            f"{folder}; give one of: {', '.join(found)}")
        if missing:
            raise DataError(f"language(s) {missing} missing in {folder}; available: {', '.join(found)}")
        return list(langs)
    return found


def split_folder(root: Path, dataset: str, unseen: bool) -> Path:
    sub = f"{dataset}_unseen" if unseen else f"{dataset}_sample"
    folder = root / dataset / sub
    if not folder.is_dir():
        raise DataError(f"{folder} not found; is the data root the authors' data/ folder?")
    return folder


