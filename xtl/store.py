"""Results store: one Parquet shard per finished item plus a manifest of the sweep's settings.

An item's rows are written atomically (temporary file, then rename), so a sweep killed at any
moment loses at most the item in flight, never duplicates a row, and resumes where it stopped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from xtl.errors import StoreError

__all__ = ["ResultsStore", "read_store", "dense"]

MANIFEST = "manifest.json"


def _shard_name(item_key: str) -> str:
    import hashlib

    return "item-" + hashlib.sha1(item_key.encode()).hexdigest()[:20] + ".parquet"


class ResultsStore:
    """A directory of per-item Parquet shards; state lives on disk only."""

    def __init__(self, path: str | os.PathLike, settings: dict[str, Any]):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        manifest = self.path / MANIFEST
        settings = json.loads(json.dumps(settings, default=str))
        if manifest.exists():
            old = json.loads(manifest.read_text())
            if old != settings:
                diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
                raise StoreError(
                    f"{self.path} holds a sweep with other settings ({', '.join(diff)} differ); "
                    "use a new --out directory or the same settings to resume")
        else:
            tmp = manifest.with_suffix(".tmp")
            tmp.write_text(json.dumps(settings, indent=2))
            tmp.replace(manifest)
        self.settings = settings

    def has(self, item_key: str) -> bool:
        return (self.path / _shard_name(item_key)).exists()

    def write(self, item_key: str, rows: list[dict[str, Any]]) -> None:
        target = self.path / _shard_name(item_key)
        tmp = target.with_suffix(".partial")
        pd.DataFrame(rows).to_parquet(tmp, index=False)
        tmp.replace(target)


def read_store(path: str | os.PathLike) -> pd.DataFrame:
    """All rows of a store as one tidy DataFrame (vanilla rows have layers -1)."""
    path = Path(path)
    if not (path / MANIFEST).exists():
        raise StoreError(f"{path} is not an xtl results store (no {MANIFEST}); run `xtl sweep` first")
    shards = sorted(path.glob("item-*.parquet"))
    if not shards:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(s) for s in shards], ignore_index=True)


def dense(df: pd.DataFrame, value: str = "correct", n_layers: int | None = None,
          items: Iterable[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Dense ``[item, source layer, target layer]`` array of ``value`` (NaN where missing).

    Vanilla rows are left out. Returns the array and the item keys in its first axis.
    """
    rows = df[~df["is_vanilla"]]
    keys = list(items) if items is not None else sorted(rows["item_key"].unique())
    n = n_layers or int(max(rows["src_layer"].max(), rows["tgt_layer"].max()) + 1)
    out = np.full((len(keys), n, n), np.nan)
    index = {k: i for i, k in enumerate(keys)}
    sel = rows[rows["item_key"].isin(index)]
    out[sel["item_key"].map(index).to_numpy(), sel["src_layer"].to_numpy(),
        sel["tgt_layer"].to_numpy()] = sel[value].astype(float).to_numpy()
    return out, keys
