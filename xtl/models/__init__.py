"""Loading models as TransformerLens ``HookedTransformer`` s whose activations match Hugging
Face: the demo model, GGUF files, local folders (streamed layer by layer) and hub names."""

from xtl._lazy import lazy_exports

_EXPORTS = {
    "DEMO_ALIASES": "xtl.models.load",
    "DEMO_LAYERS": "xtl.models.load",
    "DEMO_MODEL": "xtl.models.load",
    "_finish": "xtl.models.load",
    "cache_dir": "xtl.models.load",
    "demo_gguf_path": "xtl.models.load",
    "from_hf": "xtl.models.load",
    "gguf_to_folder": "xtl.models.load",
    "load_model": "xtl.models.load",
    "tl_config_from_hf": "xtl.models.load",
}

__all__ = ["DEMO_MODEL", "DEMO_ALIASES", "DEMO_LAYERS", "load_model", "from_hf", "cache_dir", "demo_gguf_path", "gguf_to_folder", "tl_config_from_hf"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
