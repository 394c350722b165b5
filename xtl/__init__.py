"""xtl: cross-lingual latent transplantation (XTransplant) on TransformerLens.

Data flows one way: model -> activations -> results table -> analysis -> figures.
"""

from xtl.errors import XtlError
from xtl.models import DEMO_MODEL, from_hf, load_model
from xtl.transplant import Capture, Site, TransplantResult, capture, transplant, vanilla
from xtl.sweep import Pair, sweep  # noqa: E402  (binds xtl.sweep to the function)
from xtl.store import dense, read_store
from xtl.tasks import Item, load_task
from xtl.metrics import evaluate
from xtl.analysis import Grid, grid
from xtl.lens import CaseStudy, LensResult, Patch, case_study, compare, lens  # noqa: E402

__all__ = ["DEMO_MODEL", "XtlError", "load_model", "from_hf", "Site", "Capture",
           "TransplantResult", "capture", "transplant", "vanilla", "Pair", "sweep", "read_store",
           "dense", "Item", "load_task", "evaluate", "Grid", "grid", "Patch", "lens", "compare",
           "LensResult", "CaseStudy", "case_study"]
__version__ = "0.1.0"
