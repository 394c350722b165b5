"""Evaluation of a results table: scoring rules, language identification, perplexity,
resource groups, and opening a store as an evaluated run."""

from xtl._lazy import lazy_exports

_EXPORTS = {
    "Run": "xtl.evaluation.evaluated",
    "evaluate": "xtl.evaluation.evaluated",
    "open_run": "xtl.evaluation.evaluated",
    "resource_class": "xtl.evaluation.groups",
    "resource_group": "xtl.evaluation.groups",
    "LID_LABELS": "xtl.evaluation.lid",
    "clean_for_lid": "xtl.evaluation.lid",
    "identify_languages": "xtl.evaluation.lid",
    "lid_label": "xtl.evaluation.lid",
    "response_perplexity": "xtl.evaluation.perplexity",
    "LETTER_TASKS": "xtl.evaluation.scoring",
    "RULES": "xtl.evaluation.scoring",
    "check_rules": "xtl.evaluation.scoring",
    "score": "xtl.evaluation.scoring",
    "score_choice": "xtl.evaluation.scoring",
    "score_qa": "xtl.evaluation.scoring",
}

__all__ = ["evaluate", "Run", "open_run", "score", "score_choice", "score_qa", "check_rules", "RULES", "LETTER_TASKS", "identify_languages", "lid_label", "clean_for_lid", "LID_LABELS", "resource_class", "resource_group", "response_perplexity"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
