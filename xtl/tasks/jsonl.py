"""Bring your own task: parallel prompts as JSON Lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xtl.errors import DataError
from xtl.tasks.files import read_jsonl
from xtl.tasks.item import Item, content_id


def _check_row(path: Path, n: int, row: Any) -> None:
    """A JSONL task line must be an object with fields of the right types."""
    where = f"{path}:{n}"
    if not isinstance(row, dict):
        raise DataError(f"{where}: each line must be a JSON object with source, target and gold, "
                        f"not {type(row).__name__} {json.dumps(row, ensure_ascii=False)[:40]}")
    missing = [k for k in ("source", "target", "gold") if k not in row]
    if missing:
        raise DataError(f"{where}: missing field(s) {missing}; each line needs source, target, gold")
    for key in ("source", "target"):
        if not isinstance(row[key], str) or not row[key].strip():
            raise DataError(f"{where}: {key!r} must be a non-empty string (the prompt text), "
                            f"not {json.dumps(row[key], ensure_ascii=False)[:40]}")
    gold = row["gold"]
    if isinstance(gold, bool) or not isinstance(gold, (str, int)) or str(gold) == "":
        raise DataError(f"{where}: 'gold' must be the answer as a string (a number in quotes, e.g. \"0.5\"), "
                        f"not {json.dumps(gold)}")
    for key in ("lang", "out_lang"):
        if key in row and not isinstance(row[key], str):
            raise DataError(f"{where}: {key!r} must be a language code string, not {json.dumps(row[key])}")
    if "id" in row and (isinstance(row["id"], bool) or not isinstance(row["id"], (str, int))):
        raise DataError(f"{where}: 'id' must be a string or an integer, not {json.dumps(row['id'])}")
    options = row.get("options", {})
    if not isinstance(options, dict) or not all(isinstance(v, (str, int)) for v in options.values()):
        raise DataError(f"{where}: 'options' must be an object of label -> option text, e.g. "
                        f'{{"A": "Osaka", "B": "Tokyo"}}, not {json.dumps(options, ensure_ascii=False)[:40]}')
    if row.get("kind", "qa") not in ("qa", "choice"):
        raise DataError(f"{where}: kind must be 'qa' or 'choice', not {row.get('kind')!r}")
    if row.get("lang") == "" or row.get("out_lang") == "":
        raise DataError(f"{where}: 'lang' is empty; give a language code such as 'de', or leave the field out")
    if row.get("kind", "qa") == "qa" and "kind" in row and options:
        raise DataError(f"{where}: a QA item (kind 'qa') has options; give \"kind\": \"choice\" to score it by "
                        "its options, or drop the options")
    if _kind(row) == "choice":
        if not options:
            raise DataError(f"{where}: a choice item needs its options, e.g. "
                            '"options": {"A": "Osaka", "B": "Tokyo"}')
        if str(row["gold"]) not in {str(k) for k in options}:
            raise DataError(f"{where}: gold {str(row['gold'])!r} is not one of the options "
                            f"{sorted(str(k) for k in options)}; gold is the label of the right option")


def _kind(row: dict) -> str:
    """A row's kind: as given, else ``choice`` when it has options (its gold is one), else ``qa``."""
    return row.get("kind") or ("choice" if row.get("options") else "qa")


def load_jsonl_task(path: Path, langs=None, limit=None) -> list[Item]:
    """Generic format: one JSON object per line with source, target, gold[, lang, id, kind,
    options, out_lang]; an item with options and no kind is a choice item. Items without an id are keyed by a hash of their content; two lines with
    the same id (and language) are refused."""
    items, per_lang, seen = [], {}, {}
    for n, row in enumerate(read_jsonl(path), 1):
        _check_row(path, n, row)
        lang = row.get("lang", "")
        item_id = str(row["id"]) if "id" in row else content_id(row["source"], row["target"])
        if (lang, item_id) in seen:
            what = f"id {item_id!r}" if "id" in row else "source and target"
            raise DataError(f"{path}: lines {seen[lang, item_id]} and {n} have the same {what}"
                            f"{f' in language {lang!r}' if lang else ''}; every item needs its own id")
        seen[lang, item_id] = n
        if langs and lang not in langs:
            continue
        per_lang[lang] = per_lang.get(lang, 0) + 1
        if limit is not None and per_lang[lang] > limit:
            continue
        items.append(Item(item_id, path.stem, lang, row["source"], row["target"], str(row["gold"]),
                          _kind(row), {str(k): str(v) for k, v in row.get("options", {}).items()},
                          {"out_lang": row.get("out_lang", lang)}))
    missing = [l for l in langs or () if l not in per_lang]
    if missing:
        have = sorted({lang for lang, _ in seen if lang})
        raise DataError(f"language(s) {missing} not in {path}; " + (f"its languages: {', '.join(have)}" if have else
                        "its lines give no 'lang': leave --langs out, or add \"lang\" to each line"))
    return items


