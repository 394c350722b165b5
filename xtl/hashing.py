"""The one hashing helper: stable short digests of text, used for content ids, shard file names
and the K/N split of items (the same on every machine and Python run)."""

from __future__ import annotations

import hashlib
import os

__all__ = ["digest", "bucket", "file_sha256", "file_fingerprint"]


def digest(*parts: str, length: int = 16) -> str:
    """Hex SHA-1 of ``parts`` joined by NUL, cut to ``length`` characters."""
    return hashlib.sha1("\0".join(parts).encode("utf-8")).hexdigest()[:length]


def bucket(text: str, n: int) -> int:
    """Which of ``n`` buckets ``text`` falls in (0-based), by its full SHA-1."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest(), 16) % n


def file_sha256(path: "str | os.PathLike") -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (data files, model files)."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def file_fingerprint(path: "str | os.PathLike", head: int = 1 << 18, samples: int = 16, block: int = 1 << 12) -> str:
    """Hex SHA-256 of a file's size, its first ``head`` bytes and ``samples`` blocks spread evenly
    over the rest: what tells two model files apart (a header, a quantisation, changed weights)
    without reading gigabytes. Not a content hash: two files that differ only between the
    sampled blocks share it."""
    sha = hashlib.sha256()
    size = os.path.getsize(path)
    sha.update(str(size).encode())
    with open(path, "rb") as handle:
        sha.update(handle.read(head))
        if size > head:
            for k in range(samples):
                handle.seek(head + (size - head - block) * k // max(samples - 1, 1))
                sha.update(handle.read(block))
    return sha.hexdigest()
