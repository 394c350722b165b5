"""Former home of scoring, language identification, perplexity and evaluate; now :mod:`xtl.evaluation`. Kept so that older imports work."""

from xtl.evaluation import *  # noqa: F401,F403
from xtl.evaluation import __all__  # noqa: F401
