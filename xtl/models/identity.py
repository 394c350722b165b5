"""What identifies a model's weights, known without loading them: a fingerprint of its files
(:func:`xtl.hashing.file_fingerprint`), so that a store refuses another model of the same name
(``models/a/tiny`` and ``models/b/tiny``, ``q4/model.gguf`` and ``q8/model.gguf``). No torch here."""

from __future__ import annotations

import os
from pathlib import Path

from xtl.hashing import digest, file_fingerprint
from xtl.models.names import DEMO_ALIASES, DEMO_MODEL

__all__ = ["model_identity", "IDENTITY_FILES"]

#: Files of a model folder whose fingerprints make its identity: config, tokenizer, weights.
IDENTITY_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                  "special_tokens_map.json", "tokenizer.model", "*.index.json", "*.safetensors", "*.bin", "*.gguf")


def model_identity(spec: "str | os.PathLike") -> str | None:
    """A short fingerprint of the files a model spec loads (the demo model's GGUF by its sha256, a
    ``.gguf`` file, or a folder's config, tokenizer and weight files), or None for a hub name or
    a spec that names no file on disk."""
    text = str(spec)
    if text in (DEMO_MODEL, *DEMO_ALIASES):  # one file, checked by its sha256 when it loads
        from xtl.models.gguf import DEMO_SHA256

        return "sha256:" + DEMO_SHA256[:24]
    path = Path(text).expanduser()
    if path.is_file():
        return "file:" + digest(file_fingerprint(path), length=24)
    if not path.is_dir():
        return None
    files = sorted({f for pattern in IDENTITY_FILES for f in path.glob(pattern) if f.is_file()})
    if not files:
        return None
    return "folder:" + digest(*(f"{f.name}={file_fingerprint(f)}" for f in files), length=24)
