"""The transplant primitive and its sites: what is read at the source, what is written at the
target, and the shared pieces (prompts, caches, decoding) every path is built from."""

from xtl._lazy import lazy_exports

_EXPORTS = {
    "greedy_decode": "xtl.patching.decode",
    "greedy_loop": "xtl.patching.decode",
    "Next": "xtl.patching.ops",
    "broadcast_cache": "xtl.patching.ops",
    "decode_resid": "xtl.patching.ops",
    "first_token_stats": "xtl.patching.ops",
    "patch_hook": "xtl.patching.ops",
    "prefix_cache": "xtl.patching.ops",
    "write_site": "xtl.patching.ops",
    "check_layer": "xtl.patching.prompts",
    "check_site": "xtl.patching.prompts",
    "format_prompt": "xtl.patching.prompts",
    "stop_token_ids": "xtl.patching.prompts",
    "tokenize": "xtl.patching.prompts",
    "Capture": "xtl.patching.single",
    "TransplantResult": "xtl.patching.single",
    "VanillaResult": "xtl.patching.single",
    "capture": "xtl.patching.single",
    "capture_tokens": "xtl.patching.single",
    "last_token_logits": "xtl.patching.single",
    "transplant": "xtl.patching.single",
    "vanilla": "xtl.patching.single",
    "SITES": "xtl.patching.sites",
    "SOURCE_HOOKS": "xtl.patching.sites",
    "Site": "xtl.patching.sites",
}

__all__ = ["Site", "SITES", "SOURCE_HOOKS", "Capture", "TransplantResult", "VanillaResult", "capture", "capture_tokens", "transplant", "vanilla", "last_token_logits", "format_prompt", "tokenize", "stop_token_ids", "check_layer", "check_site", "write_site", "patch_hook", "prefix_cache", "broadcast_cache", "decode_resid", "Next", "first_token_stats", "greedy_loop", "greedy_decode"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
