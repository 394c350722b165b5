"""Looking inside one prompt: the logit lens (vanilla or transplanted) and case studies."""

from xtl._lazy import lazy_exports

_EXPORTS = {
    "CaseStudy": "xtl.interpret.case",
    "Demo": "xtl.interpret.showcase",
    "demo": "xtl.interpret.showcase",
    "case_study": "xtl.interpret.case",
    "LensResult": "xtl.interpret.logit_lens",
    "Patch": "xtl.interpret.logit_lens",
    "compare": "xtl.interpret.logit_lens",
    "lens": "xtl.interpret.logit_lens",
    "merge_pieces": "xtl.interpret.tokens",
    "LanguageLens": "xtl.interpret.languages",
    "lens_languages": "xtl.interpret.languages",
    "token_text": "xtl.interpret.tokens",
}

__all__ = ["Patch", "LensResult", "lens", "compare", "CaseStudy", "case_study", "Demo", "demo", "token_text", "merge_pieces", "LanguageLens", "lens_languages"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
