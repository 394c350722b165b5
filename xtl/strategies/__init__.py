"""Instance-aware layer selection (the paper's open problem): strategies that choose each
item's configuration without its answer, and the cross-validated protocol that measures them
against the paper's baselines and bounds (``xtl select``, :func:`xtl.select`)."""

from xtl._lazy import lazy_exports

_EXPORTS = {
    "Strategy": "xtl.strategies.base", "Vanilla": "xtl.strategies.base", "Fixed": "xtl.strategies.base",
    "Confidence": "xtl.strategies.base", "BestOnTrain": "xtl.strategies.base", "Agreement": "xtl.strategies.base",
    "STRATEGIES": "xtl.strategies.catalogue", "register_strategy": "xtl.strategies.catalogue",
    "make_strategy": "xtl.strategies.catalogue", "candidate_set": "xtl.strategies.base",
    "Learned": "xtl.strategies.learned", "FEATURES": "xtl.strategies.features", "candidate_features": "xtl.strategies.features",
    "select": "xtl.strategies.protocol", "Selection": "xtl.strategies.protocol", "folds": "xtl.strategies.protocol",
    "DEFAULT_STRATEGIES": "xtl.strategies.protocol",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
