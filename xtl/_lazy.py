"""Lazy re-exports for package ``__init__`` modules: a public name is imported from its module
on first use, so importing a light module of a package (``xtl.patching.sites``,
``xtl.models.names``) does not load torch through the package's ``__init__``."""

from __future__ import annotations

from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` re-exporting ``name -> module`` lazily; its
    submodules are reachable as attributes too (``xtl.analysis.tables.paper_table`` works after a
    plain ``import xtl``, as the docs write it)."""
    import importlib.util

    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            if not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}") is not None:
                return importlib.import_module(f"{package}.{name}")
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
