"""Which shared-prefix engine serves a model, and why none does: the kernel over TransformerLens'
blocks on HookedTransformer (:mod:`xtl.engine.kernel`), the one on Hugging Face modules on the
bridge (:mod:`xtl.engine.hf`). The sweep asks here, so neither engine needs to know the other."""

from __future__ import annotations

from typing import Any

from xtl.engine import hf, kernel
from xtl.models.backends import Model, backend_of

__all__ = ["unsupported", "engine_for"]


def unsupported(model: Model, site: Any = None) -> str | None:
    """Why no shared-prefix engine can sweep ``model`` (at ``site``, a
    :class:`~xtl.patching.sites.Site`, where that matters), or None when one can: then sweeps take
    it, otherwise each step runs through the model's own forward."""
    if backend_of(model) == "bridge":
        return hf.unsupported(model, site)
    return kernel.unsupported(model)


def engine_for(inp: Any) -> Any:
    """The shared-prefix engine of an item's inputs (:class:`xtl.engine.schedule.ItemInputs`)."""
    return hf.HFEngine(inp) if backend_of(inp.model) == "bridge" else kernel.HookedEngine(inp)
