"""Readable tokens: byte-level pieces shown as text, multi-token characters merged."""

from __future__ import annotations

import functools
import re
from typing import Sequence

__all__ = ["token_text", "merge_pieces", "token_bytes"]


_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


def _visible(text: str) -> str:
    return text.replace(" ", "␣").replace("\n", "↵").replace("\t", "→")


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Byte-level BPE's printable character -> byte map (GPT-2 scheme)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def token_bytes(tokenizer, token_id: int) -> bytes | None:
    """Raw bytes of a byte-level token (``<0xE4>`` pieces or byte-level BPE), else None."""
    piece = tokenizer.convert_ids_to_tokens(int(token_id)) or ""
    m = _BYTE_PIECE.match(piece)
    if m:
        return bytes([int(m.group(1), 16)])
    table = _byte_decoder()
    if piece and all(c in table for c in piece) and tokenizer.decode([int(token_id)]) != piece:
        return bytes(table[c] for c in piece)
    return None


def _readable(tokenizer, ids: Sequence[int]) -> str | None:
    """Text of ``ids`` if they form whole characters, else None."""
    raw = [token_bytes(tokenizer, t) for t in ids]
    if any(b is None for b in raw):
        text = tokenizer.decode([int(t) for t in ids])
        return None if "\ufffd" in text else text
    try:
        return b"".join(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None


def token_text(tokenizer, token_id: int) -> str:
    """A single token as readable text: whitespace made visible, partial UTF-8 bytes shown as
    ``\\xe4`` escapes instead of replacement characters."""
    text = _readable(tokenizer, [token_id])
    if text is not None:
        return _visible(text)
    raw = token_bytes(tokenizer, token_id)
    if raw is None:
        return _visible(tokenizer.decode([int(token_id)]))
    return "".join(f"\\x{b:02x}" for b in raw)


def merge_pieces(tokenizer, ids: Sequence[int]) -> list[tuple[str, list[int]]]:
    """Group consecutive tokens so that a character spanning several tokens is shown once:
    returns (readable text, positions) per group."""
    groups: list[tuple[str, list[int]]] = []
    start = 0
    while start < len(ids):
        for end in range(start + 1, min(start + 4, len(ids)) + 1):
            text = _readable(tokenizer, ids[start:end])
            if text is not None:
                break
        else:  # never completes: show the first token's bytes alone
            end, text = start + 1, None
        groups.append((_visible(text) if text is not None else token_text(tokenizer, ids[start]),
                       list(range(start, end))))
        start = end
    return groups


