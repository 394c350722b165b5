"""Analyses of an evaluated results table (sections 4-6 and appendices E-F of the paper).

Everything here is a pure function over a results DataFrame (one row per item x configuration,
with ``correct`` from :func:`xtl.evaluate`) or over the dense ``[item, source, target]``
:class:`Grid` that :func:`grid` builds; results come back as small dataclasses. No plotting is
imported.
"""

from xtl._lazy import lazy_exports

_EXPORTS = {
    "WinTieLose": "xtl.analysis.accuracy",
    "accuracy_table": "xtl.analysis.accuracy",
    "config_accuracy": "xtl.analysis.accuracy",
    "gain_matrix": "xtl.analysis.accuracy",
    "layerwise_gain": "xtl.analysis.accuracy",
    "win_tie_lose": "xtl.analysis.accuracy",
    "Bounds": "xtl.analysis.bounds",
    "bound_by_group": "xtl.analysis.bounds",
    "format_bound": "xtl.analysis.bounds",
    "group_order": "xtl.analysis.bounds",
    "upper_bounds": "xtl.analysis.bounds",
    "AVERAGES": "xtl.analysis.grids",
    "Grid": "xtl.analysis.grids",
    "dense": "xtl.analysis.grids",
    "dense_array": "xtl.analysis.grids",
    "grid": "xtl.analysis.grids",
    "layers_text": "xtl.analysis.grids",
    "AlphaGains": "xtl.analysis.variants",
    "SourceGains": "xtl.analysis.variants",
    "VariantKey": "xtl.analysis.variants",
    "alpha_gains": "xtl.analysis.variants",
    "has_variants": "xtl.analysis.variants",
    "select_variant": "xtl.analysis.variants",
    "source_gains": "xtl.analysis.variants",
    "variant_frames": "xtl.analysis.variants",
    "Headline": "xtl.analysis.summary",
    "headline": "xtl.analysis.summary",
    "HeldOut": "xtl.analysis.selection",
    "coarse_config": "xtl.analysis.selection",
    "entropy_select": "xtl.analysis.selection",
    "held_out": "xtl.analysis.selection",
    "adjust_pvalues": "xtl.analysis.stats",
    "bootstrap_ci": "xtl.analysis.stats",
    "mcnemar": "xtl.analysis.stats",
    "mcnemar_grid": "xtl.analysis.stats",
    "margin_changes": "xtl.analysis.screened",
    "screen_quality": "xtl.analysis.screened",
    "screen_panels": "xtl.analysis.screened",
}

__all__ = ["AVERAGES", "Grid", "grid", "dense", "dense_array", "layers_text", "accuracy_table", "format_bound", "WinTieLose", "win_tie_lose", "gain_matrix", "layerwise_gain", "Bounds", "upper_bounds", "bound_by_group", "group_order", "coarse_config", "config_accuracy", "entropy_select", "HeldOut", "held_out", "bootstrap_ci", "mcnemar", "adjust_pvalues", "mcnemar_grid", "Headline", "headline", "margin_changes", "screen_quality", "screen_panels", "VariantKey", "variant_frames", "select_variant", "has_variants", "AlphaGains", "alpha_gains", "SourceGains", "source_gains"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
