"""Resource groups of languages: Joshi et al. (2020) lang2tax classes, as the paper groups them."""

from __future__ import annotations

import csv
import functools
from importlib import resources

from xtl.evaluation.lid import lid_label

__all__ = ["resource_class", "resource_group"]


@functools.lru_cache(maxsize=1)
def _lang2tax() -> dict[str, int]:
    path = resources.files("xtl").joinpath("data/lang2tax.tsv")
    with path.open(encoding="utf-8") as handle:
        rows = csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t")
        return {row["code"]: int(row["class"]) for row in rows}


def resource_class(lang: str) -> int | None:
    """Joshi et al. (2020) lang2tax class (0-5) of a language code; None when not in the table."""
    return _lang2tax().get(lid_label(lang))


def resource_group(lang: str) -> str:
    """``high`` (class 5), ``mid`` (class 4) or ``low`` (all others), as the paper groups."""
    return {5: "high", 4: "mid"}.get(resource_class(lang), "low")
