"""Looking inside one prompt: the logit lens (vanilla or transplanted) and case studies."""

from xtl.interpret.case import CaseStudy, case_study
from xtl.interpret.logit_lens import LensResult, Patch, compare, lens
from xtl.interpret.tokens import merge_pieces, token_text

__all__ = ["Patch", "LensResult", "lens", "compare", "CaseStudy", "case_study", "token_text", "merge_pieces"]
