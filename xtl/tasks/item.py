"""The one item type: a parallel prompt pair with its gold answer, and the one key function."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from xtl.errors import XtlError
from xtl.hashing import digest

__all__ = ["Item", "Pair", "content_id", "as_item", "as_items", "option_label"]


@dataclass(frozen=True)
class Item:
    """One parallel item; ``source`` is transplanted into ``target``."""

    id: str
    dataset: str
    lang: str
    source: str
    target: str
    gold: str
    kind: str  # "choice" or "qa"
    options: dict[str, str] = field(default_factory=dict)  # label -> option word in target language
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Unique key of the item across datasets and languages (the results store's item_key)."""
        return f"{self.dataset}/{self.lang}/{self.id}"

    @property
    def out_lang(self) -> str:
        """The language the response should be in: the target prompt's, unless the item says
        otherwise (``meta["out_lang"]``, set by the task that made it: English for GlobalOpinionQA)."""
        return self.meta.get("out_lang") or self.lang

    @property
    def src_lang(self) -> str:
        """The source prompt's language (``meta["src_lang"]``, set by the task that made it: English
        for XNLI), else the item's own."""
        return self.meta.get("src_lang") or self.lang


def content_id(source: str, target: str) -> str:
    """The id of an item given without one: a hash of its content, so that different items
    never share a key in a results store (a position would)."""
    return "h" + digest(source, target)


def Pair(source: str, target: str, id: str | None = None, meta: dict[str, Any] | None = None) -> Item:  # noqa: N802
    """An ad-hoc item from two prompts (``meta`` may give ``dataset``, ``lang``, ``gold``);
    kept for code written against the former ``xtl.Pair`` type."""
    if not (isinstance(source, str) and isinstance(target, str)):
        raise XtlError(f"Pair needs the source and target prompts as strings, not {type(source).__name__} and "
                       f"{type(target).__name__}")
    if meta is not None and not isinstance(meta, Mapping):
        raise XtlError(f"Pair's meta must be a dict (dataset, lang, gold, ...), not {type(meta).__name__}")
    meta = dict(meta or {})
    return Item(str(id) if id is not None else content_id(source, target), str(meta.pop("dataset", "")),
                str(meta.pop("lang", "")), source, target, str(meta.pop("gold", "")), "qa", meta=meta)


def as_item(p: Any, k: int = 0) -> Item:
    """An :class:`Item` from an Item, an object with ``source``/``target`` (and optionally
    ``id``, ``lang``, ``dataset``, ``gold``), or a tuple ``(source, target[, id, meta])``."""
    if isinstance(p, Item):
        return p
    if isinstance(p, (str, bytes)):
        raise XtlError(f"item #{k} is a string; give items as (source, target) pairs or Item objects")
    if hasattr(p, "source") and hasattr(p, "target"):
        meta = {key: getattr(p, key) for key in ("lang", "dataset", "gold") if hasattr(p, key)}
        return Pair(p.source, p.target, getattr(p, "id", None), meta)
    if isinstance(p, (tuple, list)) and len(p) >= 2:
        if not (isinstance(p[0], str) and isinstance(p[1], str)):
            raise XtlError(f"item #{k}: source and target must be strings")
        return Pair(p[0], p[1], p[2] if len(p) > 2 else None, dict(p[3]) if len(p) > 3 else {})
    raise XtlError(f"item #{k} is not (source, target[, id, meta]) nor an Item; got {type(p).__name__}")


def as_items(items: Iterable[Any]) -> list[Item]:
    """Items as :class:`Item` objects, refusing two with one key."""
    if isinstance(items, (Item, str, bytes)) or (isinstance(items, tuple) and len(items) >= 2
                                                 and all(isinstance(x, str) for x in items[:2])):
        raise XtlError("items must be a list of items; wrap a single item in a list: [item]")
    try:
        out = [as_item(p, k) for k, p in enumerate(items)]
    except TypeError:
        raise XtlError(f"items must be a list of items, not {type(items).__name__}") from None
    seen: dict[str, int] = {}
    for k, it in enumerate(out):
        if it.key in seen:
            raise XtlError(f"items #{seen[it.key]} and #{k} have the same key {it.key!r}; give "
                           "every item its own id (items without one are keyed by their content)")
        seen[it.key] = k
    return out


def option_label(candidate: str) -> str:
    """The option label a candidate string names: ``" (A"``, ``" A"``, ``"A)"`` -> ``"A"``."""
    return str(candidate).strip().strip("()（）").strip()
