"""Analyses of an evaluated results table (sections 4-6 and appendices E-F of the paper).

Everything here is a pure function over a results DataFrame (one row per item x configuration,
with ``correct`` from :func:`xtl.evaluate`) or over the dense ``[item, source, target]``
:class:`Grid` that :func:`grid` builds; results come back as small dataclasses. No plotting is
imported.
"""

from xtl.analysis.accuracy import WinTieLose, accuracy_table, config_accuracy, gain_matrix, layerwise_gain, win_tie_lose
from xtl.analysis.bounds import Bounds, bound_by_group, format_bound, group_order, upper_bounds
from xtl.analysis.grid import AVERAGES, Grid, dense, dense_array, grid, layers_text
from xtl.analysis.headline import Headline, headline
from xtl.analysis.selection import HeldOut, coarse_config, entropy_select, held_out
from xtl.analysis.stats import adjust_pvalues, bootstrap_ci, mcnemar, mcnemar_grid

__all__ = ["AVERAGES", "Grid", "grid", "dense", "dense_array", "layers_text", "accuracy_table", "format_bound",
           "WinTieLose", "win_tie_lose", "gain_matrix", "layerwise_gain", "Bounds", "upper_bounds",
           "bound_by_group", "group_order", "coarse_config", "config_accuracy", "entropy_select", "HeldOut",
           "held_out", "bootstrap_ci", "mcnemar", "adjust_pvalues", "mcnemar_grid", "Headline", "headline"]
