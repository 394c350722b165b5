"""xtl: cross-lingual latent transplantation (XTransplant) on TransformerLens.

Data flows one way: model -> activations -> results table -> analysis -> figures.

The public names below are imported on first use, so ``import xtl`` (and ``xtl --help``) does
not load torch or TransformerLens until something needs them.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

_EXPORTS = {
    "DEMO_MODEL": "xtl.models", "load_model": "xtl.models", "from_hf": "xtl.models",
    "XtlError": "xtl.errors",
    "Site": "xtl.transplant", "Capture": "xtl.transplant", "TransplantResult": "xtl.transplant",
    "capture": "xtl.transplant", "transplant": "xtl.transplant", "vanilla": "xtl.transplant",
    "Pair": "xtl.engine", "sweep": "xtl.engine",
    "read_store": "xtl.store", "dense": "xtl.store",
    "Item": "xtl.tasks", "load_task": "xtl.tasks",
    "evaluate": "xtl.metrics",
    "Grid": "xtl.analysis", "grid": "xtl.analysis",
    "Patch": "xtl.lens", "lens": "xtl.lens", "compare": "xtl.lens", "LensResult": "xtl.lens",
    "CaseStudy": "xtl.lens", "case_study": "xtl.lens",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'xtl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


#: Public functions that share their name with their module: ``xtl.transplant`` and
#: ``xtl.lens`` are the functions (import the modules with ``from xtl.transplant import ...``).
_SHADOWED = {"transplant", "lens"}


class _Package(types.ModuleType):
    """Keeps ``xtl.transplant`` / ``xtl.lens`` the functions when their modules are imported
    (the import system would otherwise bind the module over the lazily resolved function)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from xtl.analysis import Grid, grid
    from xtl.engine import Pair, sweep
    from xtl.errors import XtlError
    from xtl.lens import CaseStudy, LensResult, Patch, case_study, compare, lens
    from xtl.metrics import evaluate
    from xtl.models import DEMO_MODEL, from_hf, load_model
    from xtl.store import read_store, dense
    from xtl.tasks import Item, load_task
    from xtl.transplant import Capture, Site, TransplantResult, capture, transplant, vanilla
