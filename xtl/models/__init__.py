"""Loading models whose activations match Hugging Face, on TransformerLens' ``HookedTransformer``
or its ``TransformerBridge``: the demo model, GGUF files, local folders and hub names."""

from xtl._lazy import lazy_exports

_EXPORTS = {
    "DEMO_ALIASES": "xtl.models.load",
    "DEMO_LAYERS": "xtl.models.load",
    "DEMO_MODEL": "xtl.models.load",
    "_finish": "xtl.models.hooked",
    "BACKENDS": "xtl.models.backends",
    "backend_of": "xtl.models.backends",
    "cache_dir": "xtl.models.load",
    "demo_gguf_path": "xtl.models.load",
    "from_hf": "xtl.models.wrap",
    "gguf_to_folder": "xtl.models.load",
    "load_model": "xtl.models.load",
    "tl_config_from_hf": "xtl.models.hooked",
}

__all__ = ["DEMO_MODEL", "DEMO_ALIASES", "DEMO_LAYERS", "BACKENDS", "backend_of", "load_model", "from_hf",
           "cache_dir", "demo_gguf_path", "gguf_to_folder", "tl_config_from_hf"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
