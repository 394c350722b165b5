"""Which shared-prefix engine serves a model, and why none does: the kernel over TransformerLens'
blocks on HookedTransformer (:mod:`xtl.engine.kernel`), the one on Hugging Face modules on the
bridge (:mod:`xtl.engine.hf`). The sweep asks here, so neither engine needs to know the other."""

from __future__ import annotations

from typing import Any

from xtl.engine import hf, kernel
from xtl.models.adapters import adapter_of
from xtl.models.backends import Model

__all__ = ["unsupported", "engine_for"]

#: The engine module of each adapter's ``engine`` name (:mod:`xtl.models.adapters`).
_ENGINES = {"kernel": kernel, "hf": hf}


def unsupported(model: Model, site: Any = None) -> str | None:
    """Why no shared-prefix engine can sweep ``model`` (at ``site``, a
    :class:`~xtl.patching.sites.Site`, where that matters), or None when one can: then sweeps take
    it, otherwise each step runs through the model's own forward."""
    return _ENGINES[adapter_of(model).engine].unsupported(model, site)


def engine_for(inp: Any) -> Any:
    """The shared-prefix engine of an item's inputs (:class:`xtl.engine.schedule.ItemInputs`)."""
    return _ENGINES[adapter_of(inp.model).engine].engine(inp)
