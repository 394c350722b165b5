"""Datasets read from the Hugging Face Hub (or a local ``datasets.Dataset``)."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from xtl.errors import DataError

__all__ = ["hub_reachable"]


def _offline() -> bool:
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub's host answers a TCP connection within ``timeout`` seconds (``HF_ENDPOINT``
    honoured): a second's check instead of the hub client's half a minute of retries."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _hub(dataset, name: str, config: str | None = None, split: str = "train"):
    if dataset is not None:
        return dataset
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise DataError("loading from the hub needs the datasets package") from exc
    if not _offline() and not hub_reachable():
        raise DataError(f"{name} comes from the Hugging Face Hub, which is unreachable from here; connect, or, if it "
                        "is in your datasets cache already, set HF_DATASETS_OFFLINE=1, or pass a local "
                        "datasets.Dataset")
    try:
        return datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes one clear message
        raise DataError(f"cannot load {name} from the Hugging Face Hub ({type(exc).__name__}); "
                        "check your connection or pass a local datasets.Dataset") from exc
