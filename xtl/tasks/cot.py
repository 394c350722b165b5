"""Section F's chain-of-thought baseline: "Let's think step by step" in each language."""

from __future__ import annotations

import re
from dataclasses import replace

from xtl.errors import DataError
from xtl.tasks.item import Item

__all__ = ["COT_SUFFIX", "COT_MAX_NEW_TOKENS", "base_language", "cot_suffix", "cot_items"]

#: "Let's think step by step" in each language (section F's CoT baseline), by language code.
COT_SUFFIX = {
    "en": "Let's think step by step.", "zh": "让我们一步一步地思考。", "zh-CN": "让我们一步一步地思考。",
    "ar": "دعونا نفكر خطوة بخطوة.", "bg": "Нека помислим стъпка по стъпка.",
    "de": "Lass uns Schritt für Schritt denken.", "el": "Ας σκεφτούμε βήμα προς βήμα.",
    "es": "Pensemos paso a paso.", "fr": "Réfléchissons étape par étape.",
    "hi": "आइए चरण दर चरण सोचें।", "ru": "Давайте подумаем шаг за шагом.",
    "sw": "Hebu tufikirie hatua kwa hatua.", "th": "ลองคิดทีละขั้นตอน", "tr": "Adım adım düşünelim.",
    "ur": "آئیے قدم بہ قدم سوچتے ہیں۔", "vi": "Hãy suy nghĩ từng bước một.",
    "ro": "Să ne gândim pas cu pas.", "am": "ደረጃ በደረጃ እናስብ።",
    "id": "Mari berpikir langkah demi langkah.", "ja": "段階的に考えてみましょう。",
    "pt": "Vamos pensar passo a passo.", "sv": "Låt oss tänka steg för steg.",
    "tl": "Pag-isipan natin nang hakbang-hakbang.", "uk": "Давайте подумаємо крок за кроком.",
    "it": "Pensiamo passo dopo passo.", "ht": "Ann reflechi etap pa etap.",
    "ta": "படிப்படியாக யோசிப்போம்.", "et": "Mõtleme samm-sammult.", "ko": "단계별로 생각해 봅시다.",
    "nl": "Laten we stap voor stap nadenken.", "bn": "চলুন ধাপে ধাপে চিন্তা করি।",
    "fi": "Ajatellaan askel askeleelta.", "he": "בואו נחשוב צעד אחר צעד.",
    "hu": "Gondolkodjunk lépésről lépésre.", "no": "La oss tenke steg for steg.",
    "da": "Lad os tænke trin for trin.", "km": "ចូរយើងគិតម្តងមួយជំហាន។",
    "qu": "Paso pasomanta yuyaymanasun.",
    "ms": "Mari kita fikir langkah demi langkah.", "pl": "Pomyślmy krok po kroku.",
}

#: New tokens under CoT (section F).
COT_MAX_NEW_TOKENS = 200


def base_language(lang: str) -> str:
    """A language code without its region: ``zh-CN``, MKQA's ``zh_cn`` -> ``zh``."""
    return re.split(r"[-_]", str(lang))[0].lower()


def cot_suffix(lang: str) -> str | None:
    """The CoT suffix of a language code, regional variants (``zh_cn``, ``zh-TW``) included."""
    return COT_SUFFIX.get(lang) or COT_SUFFIX.get(base_language(lang))


def cot_items(items: list[Item]) -> list[Item]:
    """The CoT baseline: each prompt gets "Let's think step by step" in its own language,
    appended after the prompt (separated by a space)."""
    out = []
    for item in items:
        src_lang = item.src_lang
        missing = [l for l in (item.out_lang, src_lang) if cot_suffix(l) is None]
        if missing:
            raise DataError(f"no CoT suffix for language(s) {missing}; add them to xtl.tasks.COT_SUFFIX")
        out.append(replace(item, source=f"{item.source} {cot_suffix(src_lang)}",
                           target=f"{item.target} {cot_suffix(item.out_lang)}",
                           meta={**item.meta, "cot": True}))
    return out


