"""Evaluation of a results table: scoring rules, language identification, perplexity,
resource groups, and opening a store as an evaluated run."""

from xtl.evaluation.evaluate import Run, evaluate, open_run
from xtl.evaluation.groups import resource_class, resource_group
from xtl.evaluation.lid import LID_LABELS, clean_for_lid, identify_languages, lid_label
from xtl.evaluation.perplexity import response_perplexity
from xtl.evaluation.scoring import LETTER_TASKS, RULES, check_rules, score, score_choice, score_qa

__all__ = ["evaluate", "Run", "open_run", "score", "score_choice", "score_qa", "check_rules", "RULES",
           "LETTER_TASKS", "identify_languages", "lid_label", "clean_for_lid", "LID_LABELS",
           "resource_class", "resource_group", "response_perplexity"]
