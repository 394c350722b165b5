"""Datasets read from the Hugging Face Hub (or a local ``datasets.Dataset``)."""

from __future__ import annotations

from xtl.errors import DataError


def _hub(dataset, name: str, config: str | None = None, split: str = "train"):
    if dataset is not None:
        return dataset
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise DataError("loading from the hub needs the datasets package") from exc
    try:
        return datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes one clear message
        raise DataError(f"cannot load {name} from the Hugging Face Hub ({type(exc).__name__}); "
                        "check your connection or pass a local datasets.Dataset") from exc


