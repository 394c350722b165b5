"""Loading models as TransformerLens ``HookedTransformer`` s whose activations match Hugging
Face: the demo model, GGUF files, local folders (streamed layer by layer) and hub names."""

from xtl.models.load import (DEMO_ALIASES, DEMO_LAYERS, DEMO_MODEL, _finish, cache_dir, demo_gguf_path,
                             from_hf, gguf_to_folder, load_model, tl_config_from_hf)

__all__ = ["DEMO_MODEL", "DEMO_ALIASES", "DEMO_LAYERS", "load_model", "from_hf", "cache_dir",
           "demo_gguf_path", "gguf_to_folder", "tl_config_from_hf"]
