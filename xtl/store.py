"""Former home of the results store; now :mod:`xtl.engine.store`. Kept so that older imports work."""

from xtl.engine.store import *  # noqa: F401,F403
from xtl.engine.store import __all__  # noqa: F401
from xtl.analysis.grids import dense  # noqa: E402,F401
