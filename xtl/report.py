"""Former home of the HTML report; now :mod:`xtl.figures.report`. Kept so that older imports work."""

from xtl.figures.report import *  # noqa: F401,F403
from xtl.figures.report import __all__  # noqa: F401
from xtl.analysis.views import examples_grid  # noqa: E402,F401
