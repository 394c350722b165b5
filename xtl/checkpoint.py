"""Former home of layer-by-layer checkpoint streaming; now :mod:`xtl.models.checkpoint`. Kept so that older imports work."""

from xtl.models.checkpoint import *  # noqa: F401,F403
from xtl.models.checkpoint import __all__  # noqa: F401
