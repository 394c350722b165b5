"""The record an ``xtl sft`` output folder carries (``xtl-sft.json``): its one name and one reader,
for the loader that reads it and the trainer (``xtl.training``) that writes it; no torch here."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from xtl.errors import ModelSpecError

__all__ = ["MANIFEST", "read_sft_manifest"]

#: The file name of the training manifest in an ``xtl sft`` output folder.
MANIFEST = "xtl-sft.json"


def read_sft_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The training manifest of an ``xtl sft`` output folder, or None when it is not one."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelSpecError(f"{path} is unreadable ({exc}); delete the folder and train again") from exc
    if not isinstance(data, dict):
        raise ModelSpecError(f"{path} is not a training manifest (a JSON object); delete the folder and train again")
    return data
