"""Names that the CLI needs before anything heavy is imported: the demo model's."""

from __future__ import annotations

#: xtl's embedded demo model: Gemma 3 270M from a Q4_K_M GGUF, dequantised to float32. Not the
#: official ``google/gemma-3-270m`` weights, hence a name of its own.
DEMO_MODEL = "gemma-3-270m-q4km"
#: Earlier spelling, still accepted (it is also TransformerLens' alias of the official model).
DEMO_ALIASES = ("gemma-3-270m",)
#: Decoder layers of the demo model (its GGUF is fixed by sha256), for checks before loading.
DEMO_LAYERS = 18
#: Attention heads per layer of the demo model.
DEMO_HEADS = 4


def model_label(spec: str) -> str:
    """The name :func:`xtl.load_model` gives a model of ``spec`` (what stores record), known
    without loading it: the demo model's name, a GGUF file's name, a folder's name, or the spec."""
    from pathlib import Path

    text = str(spec)
    if text in (DEMO_MODEL, *DEMO_ALIASES):
        return DEMO_MODEL
    path = Path(text).expanduser()
    if text.lower().endswith(".gguf"):
        return path.name
    if path.is_dir():
        return path.resolve().name
    return text
