"""The transplant primitive and its sites: what is read at the source, what is written at the
target, and the shared pieces (prompts, caches, decoding) every path is built from."""

from xtl.patching.decode import greedy_decode, greedy_loop
from xtl.patching.ops import (Next, broadcast_cache, decode_resid, first_token_stats, patch_hook,
                              prefix_cache, write_site)
from xtl.patching.prompts import check_layer, check_site, format_prompt, stop_token_ids, tokenize
from xtl.patching.single import (Capture, TransplantResult, capture, capture_tokens,
                                 last_token_logits, transplant, vanilla)
from xtl.patching.sites import SITES, SOURCE_HOOKS, Site

__all__ = ["Site", "SITES", "SOURCE_HOOKS", "Capture", "TransplantResult", "capture", "capture_tokens",
           "transplant", "vanilla", "last_token_logits", "format_prompt", "tokenize", "stop_token_ids",
           "check_layer", "check_site", "write_site", "patch_hook", "prefix_cache", "broadcast_cache",
           "decode_resid", "Next", "first_token_stats", "greedy_loop", "greedy_decode"]
