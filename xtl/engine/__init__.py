"""The sweep engine: settings, the plan of an item's work, the shared-prefix kernel and the
TransformerLens path, the results store, and sweeps over many processes and machines."""

from xtl.engine.run import Prepared, prepare, run_sweep, sweep, sweep_item
from xtl.engine.settings import EngineOptions, SweepRequest, candidate_token_ids, resolve
from xtl.engine.store import ResultsStore, read_manifest, read_settings, read_store
from xtl.tasks.item import Pair, as_items

__all__ = ["sweep", "run_sweep", "sweep_item", "prepare", "Prepared", "SweepRequest", "EngineOptions",
           "resolve", "candidate_token_ids", "ResultsStore", "read_store", "read_manifest", "read_settings",
           "Pair", "as_items"]
