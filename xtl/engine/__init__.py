"""The sweep engine: settings, the plan of an item's work, the shared-prefix kernel and the
TransformerLens path, the results store, and sweeps over many processes and machines."""

from xtl._lazy import lazy_exports

_EXPORTS = {
    "Prepared": "xtl.engine.run",
    "prepare": "xtl.engine.run",
    "run_sweep": "xtl.engine.run",
    "sweep": "xtl.engine.run",
    "sweep_item": "xtl.engine.run",
    "EngineOptions": "xtl.engine.settings",
    "SweepRequest": "xtl.engine.settings",
    "candidate_token_ids": "xtl.engine.settings",
    "resolve": "xtl.engine.settings",
    "ResultsStore": "xtl.engine.store",
    "read_manifest": "xtl.engine.store",
    "read_settings": "xtl.engine.store",
    "read_store": "xtl.engine.store",
    "screen": "xtl.engine.screening",
    "ScreenResult": "xtl.engine.screening",
    "Pair": "xtl.tasks.item",
    "as_items": "xtl.tasks.item",
}

__all__ = ["sweep", "screen", "ScreenResult", "run_sweep", "sweep_item", "prepare", "Prepared", "SweepRequest", "EngineOptions", "resolve", "candidate_token_ids", "ResultsStore", "read_store", "read_manifest", "read_settings", "Pair", "as_items"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
