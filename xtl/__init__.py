"""xtl: cross-lingual latent transplantation (XTransplant) on TransformerLens.

Data flows one way, one subpackage per stage (docs/architecture.md):
``models`` -> ``patching`` (the transplant primitive) -> ``engine`` (sweeps, store) -> results
table (``schema``) -> ``evaluation`` -> ``analysis`` -> ``figures``; ``tasks`` feed the engine,
``interpret`` looks inside one prompt, ``cli`` wraps it all.

The public names below are imported on first use, so ``import xtl`` (and ``xtl --help``) does
not load torch or TransformerLens until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

_EXPORTS = {
    "DEMO_MODEL": "xtl.models", "load_model": "xtl.models", "from_hf": "xtl.models",
    "XtlError": "xtl.errors",
    "Site": "xtl.patching", "Capture": "xtl.patching", "TransplantResult": "xtl.patching",
    "VanillaResult": "xtl.patching",
    "capture": "xtl.patching", "transplant": "xtl.patching", "vanilla": "xtl.patching",
    "sweep": "xtl.engine", "Pair": "xtl.tasks", "SweepSettings": "xtl.schema",
    "read_store": "xtl.engine", "dense": "xtl.analysis",
    "Item": "xtl.tasks", "load_task": "xtl.tasks", "builtin_pair": "xtl.tasks",
    "evaluate": "xtl.evaluation", "open_run": "xtl.evaluation", "Run": "xtl.evaluation",
    "Grid": "xtl.analysis", "grid": "xtl.analysis",
    "Patch": "xtl.interpret", "lens": "xtl.interpret", "compare": "xtl.interpret",
    "LensResult": "xtl.interpret", "CaseStudy": "xtl.interpret", "case_study": "xtl.interpret",
    "use_in_notebook": "xtl.figures", "sft": "xtl.training", "select": "xtl.strategies", "explore": "xtl.figures",
    "screen": "xtl.engine", "ScreenResult": "xtl.engine",
    "lens_languages": "xtl.interpret", "LanguageLens": "xtl.interpret",
}

__all__ = list(_EXPORTS)

#: The stages, reachable as ``xtl.analysis`` etc. after a plain ``import xtl``.
_STAGES = ("models", "patching", "engine", "tasks", "evaluation", "analysis", "figures", "interpret", "training", "strategies",
           "schema", "options", "errors")


def __getattr__(name: str) -> Any:
    if name in _STAGES:
        return importlib.import_module(f"xtl.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        from importlib.util import find_spec

        if not name.startswith("_") and find_spec(f"xtl.{name}") is not None:
            return importlib.import_module(f"xtl.{name}")  # e.g. xtl.hashing, as the docs write it
        raise AttributeError(f"module 'xtl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from xtl.analysis import Grid, dense, grid
    from xtl.engine import ScreenResult, read_store, screen, sweep
    from xtl.errors import XtlError
    from xtl.evaluation import Run, evaluate, open_run
    from xtl.interpret import CaseStudy, LanguageLens, LensResult, Patch, case_study, compare, lens, lens_languages
    from xtl.models import DEMO_MODEL, from_hf, load_model
    from xtl.patching import Capture, Site, TransplantResult, VanillaResult, capture, transplant, vanilla
    from xtl.schema import SweepSettings
    from xtl.tasks import Item, Pair, builtin_pair, load_task
