"""Instruction pairs for the ML-SFT baseline: Aya-style records read from JSONL, Parquet or the
Hub, and the seeded selection of N pairs stratified over languages (section F of the paper:
20,236 pairs from the Aya dataset, more than 60 languages)."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from xtl.hashing import file_sha256
from xtl.errors import DataError

__all__ = ["Pair", "PAPER_N", "AYA_HUB", "read_pairs", "select_pairs", "language_counts", "data_sha256"]

#: Pairs the paper selects from Aya for its ML-SFT baseline.
PAPER_N = 20_236
#: The Aya dataset's name on the Hugging Face Hub.
AYA_HUB = "CohereForAI/aya_dataset"
FIELDS = ("inputs", "targets", "language")


@dataclass(frozen=True)
class Pair:
    """One instruction pair: its id (the record's ``id`` or its row number), prompt, response
    and language."""

    id: str
    inputs: str
    targets: str
    language: str


def data_sha256(path: str | os.PathLike) -> str:
    """The data file's content hash (:func:`xtl.hashing.file_sha256`)."""
    return file_sha256(path)


def _records(source: str) -> tuple[list[dict], str]:
    """Rows of a JSONL/Parquet file or of a Hub dataset, and how each row is named in errors."""
    path = Path(source).expanduser()
    if path.suffix in (".jsonl", ".json"):
        from xtl.tasks.files import read_jsonl

        if not path.is_file():
            raise DataError(f"training data {path} does not exist; give a JSONL or Parquet file with "
                            f"{', '.join(FIELDS)} fields, or {AYA_HUB}")
        return read_jsonl(path), f"{path}:line"
    if path.suffix == ".parquet":
        if not path.is_file():
            raise DataError(f"training data {path} does not exist")
        import pandas as pd

        try:
            return pd.read_parquet(path).to_dict("records"), f"{path}: row"
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same problem
            raise DataError(f"cannot read {path} as Parquet ({type(exc).__name__}); give a Parquet or JSONL file") from exc
    if path.exists():
        raise DataError(f"{path} is neither a .jsonl nor a .parquet file")
    from xtl.tasks.hub import _hub

    return [dict(r) for r in _hub(None, source)], f"{source}: row"


def read_pairs(source: str) -> list[Pair]:
    """Every pair of ``source`` (a ``.jsonl``/``.parquet`` file or a Hub name such as
    :data:`AYA_HUB`) with Aya's field names ``inputs``, ``targets``, ``language``; a record
    without one of them, or with an empty one, is an error naming its line."""
    rows, where = _records(source)
    pairs = []
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise DataError(f"{where} {n}: expected a JSON object with {', '.join(FIELDS)}")
        for name in FIELDS:
            value = row.get(name)
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{where} {n}: field {name!r} is missing or empty; every pair needs "
                                f"{', '.join(FIELDS)} (Aya's field names)")
        pairs.append(Pair(str(row.get("id", n - 1)), row["inputs"], row["targets"], row["language"].strip()))
    if not pairs:
        raise DataError(f"{source} holds no pairs")
    return pairs


def select_pairs(pairs: Sequence[Pair], n: int = PAPER_N, langs: Sequence[str] | None = None,
                 seed: int = 0) -> list[Pair]:
    """``n`` pairs stratified over languages: each language's share proportional to its pairs
    (largest remainders, every language at least one while ``n`` allows), drawn with ``seed``;
    all of them when ``n`` is at least their number. The same seed gives the same pairs."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DataError(f"n must be a whole number of pairs (at least 1), not {n!r}")
    by_lang: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_lang.setdefault(pair.language, []).append(pair)
    if langs:
        missing = [l for l in langs if l not in by_lang]
        if missing:
            raise DataError(f"the data has no pairs in {missing}; it has {', '.join(sorted(by_lang))}")
        by_lang = {l: by_lang[l] for l in langs}
    total = sum(len(v) for v in by_lang.values())
    if total == 0:
        raise DataError("no pairs left to train on; check langs (--langs)")
    if n >= total:
        quota = {l: len(v) for l, v in by_lang.items()}
    else:
        names = sorted(by_lang)
        exact = {l: n * len(by_lang[l]) / total for l in names}
        quota = {l: min(len(by_lang[l]), max(1 if n >= len(names) else 0, int(exact[l]))) for l in names}
        left = n - sum(quota.values())
        order = sorted(names, key=lambda l: (-(exact[l] - int(exact[l])), l))
        while left > 0:
            grew = False
            for l in order:
                if left and quota[l] < len(by_lang[l]):
                    quota[l] += 1
                    left -= 1
                    grew = True
            if not grew:
                break
        while left < 0:  # the minimum of one per language overshot: take back from the largest
            l = max(names, key=lambda x: (quota[x], x))
            quota[l] -= 1
            left += 1
    rng = random.Random(seed)
    chosen = []
    for lang in sorted(quota):
        pool = list(by_lang[lang])
        rng.shuffle(pool)
        chosen.extend(pool[:quota[lang]])
    return chosen


def language_counts(pairs: Sequence[Pair]) -> dict[str, int]:
    """Pairs per language, most first."""
    counts: dict[str, int] = {}
    for pair in pairs:
        counts[pair.language] = counts.get(pair.language, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
