"""Resource groups of languages: the paper's own table headers per dataset (``paper``) or
Joshi et al. (2020) lang2tax classes (``lang2tax``).

The paper's footnote 5 cites lang2tax, but the numbers it prints for MKQA and CulturalBench use
its Table 3 headers, which put fi, hu, nl (MKQA) and pl (CulturalBench) in Low where lang2tax
rates them 4 (Mid). ``paper`` follows the headers, so that group averages match the printed ones.
"""

from __future__ import annotations

import csv
import functools
from importlib import resources

from xtl.evaluation.lid import lid_label
from xtl.options import GROUPINGS, check_option

__all__ = ["resource_class", "resource_group", "GROUPINGS", "describe_grouping"]


@functools.lru_cache(maxsize=1)
def _lang2tax() -> dict[str, int]:
    path = resources.files("xtl").joinpath("data/lang2tax.tsv")
    with path.open(encoding="utf-8") as handle:
        rows = csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t")
        return {row["code"]: int(row["class"]) for row in rows}


def resource_class(lang: str) -> int | None:
    """Joshi et al. (2020) lang2tax class (0-5) of a language code; None when not in the table."""
    return _lang2tax().get(lid_label(lang))


def resource_group(lang: str, dataset: str | None = None, groups: str = "paper") -> str:
    """``high``, ``mid`` or ``low``: with ``groups="paper"`` the group the paper's tables give
    ``lang`` for ``dataset``; lang2tax (class 5 high, 4 mid, others low) for languages the paper
    does not print, for datasets it has no table of, and with ``groups="lang2tax"``."""
    check_option("groups", groups, GROUPINGS)
    if groups == "paper" and dataset:
        from xtl.tasks.registry import find_task

        task = find_task(dataset)
        found = task.paper_group(lang) if task is not None else None
        if found:
            return found
    return {5: "high", 4: "mid"}.get(resource_class(lang), "low")


def describe_grouping(groups: str) -> str:
    """One line for table notes: which grouping the High/Mid/Low columns use."""
    check_option("groups", groups, GROUPINGS)
    if groups == "paper":
        return ("Groups: paper (the paper's Table 3 headers per dataset; lang2tax for languages it "
                "does not print)")
    return "Groups: lang2tax (class 5 High, 4 Mid, others Low; Joshi et al. 2020)"
