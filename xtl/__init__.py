"""xtl: cross-lingual latent transplantation (XTransplant) on TransformerLens."""

from xtl.errors import XtlError
from xtl.models import DEMO_MODEL, from_hf, load_model
from xtl.transplant import Capture, Site, TransplantResult, capture, transplant, vanilla

__all__ = ["DEMO_MODEL", "XtlError", "load_model", "from_hf", "Site", "Capture",
           "TransplantResult", "capture", "transplant", "vanilla"]
__version__ = "0.1.0"
