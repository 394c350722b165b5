"""Former home of Ray sweeps; now :mod:`xtl.engine.distributed`. Kept so that older imports work."""

from xtl.engine.distributed import *  # noqa: F401,F403
from xtl.engine.distributed import __all__  # noqa: F401
