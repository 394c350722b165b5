"""Strategies by name (what ``xtl select --strategy NAME`` and :func:`xtl.select` read): a table
of factories and its one writer. The built-in strategies are entered by
:mod:`xtl.strategies.catalogue`; no strategy module imports this one."""

from __future__ import annotations

from typing import Any, Callable

from xtl.errors import XtlError

__all__ = ["STRATEGIES", "register_strategy"]

#: name -> factory (called with ``seed=`` when it takes one).
STRATEGIES: dict[str, Callable[..., Any]] = {}


def register_strategy(name: str, factory: Callable[..., Any]) -> None:
    """Make a strategy available by name (``xtl select --strategy NAME``)."""
    if name in STRATEGIES:
        raise XtlError(f"a strategy named {name!r} is already registered")
    STRATEGIES[name] = factory
