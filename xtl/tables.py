"""Former home of the paper tables; now :mod:`xtl.analysis.tables`. Kept so that older imports work."""

from xtl.analysis.tables import *  # noqa: F401,F403
from xtl.analysis.tables import __all__  # noqa: F401
