"""Shard K of N of a task's items, for job arrays that write into one store."""

from __future__ import annotations

from xtl.errors import DataError
from xtl.hashing import bucket
from xtl.tasks.item import Item

__all__ = ["parse_shard", "shard"]


def parse_shard(spec: str) -> tuple[int, int]:
    """``"2/8"`` -> (2, 8): shard K of N, 1 <= K <= N."""
    try:
        k, n = (int(x) for x in str(spec).split("/"))
    except ValueError:
        raise DataError(f"bad shard {spec!r}; write K/N, e.g. 2/8 for the second of eight shards") from None
    if not 1 <= k <= n:
        raise DataError(f"bad shard {spec!r}; K must be between 1 and N, e.g. 1/{max(n, 1)}")
    return k, n


def shard(items: list[Item], spec: str) -> list[Item]:
    """Shard K of N of ``items`` (``"K/N"``), chosen by a hash of each item's key: stable when the
    list grows (a larger limit, more languages), the same on every machine, so a scheduler's
    job array (SLURM ``--array=1-N``) can run the shards into one store."""
    k, n = parse_shard(spec)
    return [it for it in items if bucket(it.key, n) == k - 1]


