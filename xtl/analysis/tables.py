"""The paper's Tables 1-4 from evaluated results, in the paper's layout.

Each table is built from one or more *runs* (an evaluated results table and the settings its
store recorded: dataset, site, layers, CoT or not) and comes back as a :class:`PaperTable`: a
few titled blocks of numbers plus notes, rendered as Markdown, CSV or LaTeX. Every group
average is the paper's: the unweighted mean over the group's languages of each language's
score (``average="pooled"`` gives the mean over items instead, labelled as such).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from xtl import analysis as an
from xtl.analysis.render import to_csv, to_latex, to_markdown
from xtl.errors import XtlError
from xtl.evaluation.evaluated import Run
from xtl.evaluation.groups import describe_grouping
from xtl.tasks.registry import find_task

__all__ = ["Run", "PaperTable", "paper_table", "TABLES", "to_markdown", "to_latex", "to_csv"]

GROUPS = (("high", "High"), ("mid", "Mid"), ("low", "Low"))
SITE_NAMES = {"attn": "Attn-level", "attn-authors": "Attn-level (authors' variant)",
              "mlp": "FFN-level", "block": "Block-level"}


@dataclass(frozen=True)
class PaperTable:
    """A table in the paper's layout: titled blocks (one per dataset, usually) and notes."""

    number: int
    title: str
    blocks: list[tuple[str, pd.DataFrame]]
    notes: list[str] = field(default_factory=list)


def _group_values(df: pd.DataFrame, average: str, *columns: str) -> list[dict[str, float]]:
    """Each of ``columns`` of :func:`xtl.analysis.accuracy_table` by resource group, plus
    ``Avg.`` (one table computed for all of them)."""
    t = an.accuracy_table(df, ("group",), average=average).set_index("group")
    out = []
    for column in columns:
        values = {label: float(t.loc[g, column]) if g in t.index and column in t.columns else math.nan
                  for g, label in GROUPS}
        values["Avg."] = float(t.loc["all", column]) if column in t.columns else math.nan
        out.append(values)
    return out


def _coarse(run: Run) -> tuple[int, int] | None:
    try:
        return an.coarse_config(run.site, run.n_layers) if run.n_layers else None
    except XtlError:
        return None


def _select(df: pd.DataFrame, config: tuple[int, int]) -> pd.DataFrame:
    """Vanilla rows and the rows of one configuration."""
    src, tgt = config
    return df[df["is_vanilla"] | ((df["src_layer"] == src) & (df["tgt_layer"] == tgt))]


def _by_dataset(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs grouped by dataset and split (``XNLI PilotSet``, ``XNLI unseen``)."""
    out: dict[str, list[Run]] = {}
    for run in runs:
        out.setdefault(run.name, []).append(run)
    return out


def table1(runs: Sequence[Run], average: str = "language") -> PaperTable:
    """Accuracy, language consistency and perplexity by group: vanilla, XTransplant (the mean
    over every swept configuration, per site) and CoT."""
    blocks, notes = [], []
    for dataset, group in _by_dataset(runs).items():
        rows = {}
        plain = [r for r in group if not r.cot]
        if plain:
            rows["Vanilla"] = plain[0].df
        for run in plain:
            if run.transplanted:
                rows[f"XTransplant ({run.site})"] = run.df[~run.df["is_vanilla"]].assign(is_vanilla=True)
        for run in group:
            if run.cot:
                rows["CoT"] = run.df
        data = {}
        for label, df in rows.items():
            by_metric = _group_values(df, average, "vanilla", "lang_ok_vanilla", "ppl_vanilla")
            data[label] = {f"{metric} {g}": v for metric, values in zip(("Acc", "LC", "PPL"), by_metric)
                           for g, v in values.items()}
        blocks.append((dataset, pd.DataFrame(data).T))
    notes.append("Acc: accuracy (%); LC: language consistency (%, lid.176 on the whole response); "
                 "PPL: response perplexity under the unpatched model. –: no languages in the group, no model "
                 "given for perplexity, or a bound the grid does not allow (see the notes). "
                 "XTransplant: mean over every swept configuration.")
    return PaperTable(1, "Accuracy, language consistency and perplexity by resource group", blocks, notes)


def table2(runs: Sequence[Run], average: str = "language") -> PaperTable:
    """The coarse-grained settings (Table 2) in this model's layer numbers, with the accuracy
    of that configuration where the run swept it."""
    rows, notes = [], []
    for run in runs:
        if run.cot or not run.transplanted:
            continue
        config = _coarse(run)
        task = find_task(run.dataset)
        row = {"Dataset": run.name, "Task type": task.task_type if task else "–",
               "Granularity": SITE_NAMES.get(run.site, run.site),
               "Layer selection (source, target)": "–" if config is None else
               f"({'last' if config[0] else 'first'}, first) = ({config[0]}, {config[1]})",
               "Vanilla": _group_values(run.df, average, "vanilla")[0]["Avg."], "Coarse": math.nan}
        if config is not None and ((run.df["src_layer"] == config[0]) & (run.df["tgt_layer"] == config[1])).any():
            row["Coarse"] = _group_values(_select(run.df, config), average, "transplanted")[0]["Avg."]
        elif config is not None:
            notes.append(f"{run.name} ({run.site}): the store did not sweep {config}; coarse not computable")
        row["Δ"] = row["Coarse"] - row["Vanilla"]
        rows.append(row)
    frame = pd.DataFrame(rows)
    notes.append("Attn-level: (last layer, first layer); FFN-level: (first layer, first layer). "
                 "Accuracies are means over languages (%).")
    return PaperTable(2, "Coarse-grained layer selection", [("Settings", frame)], notes)


def table3(runs: Sequence[Run], average: str = "language") -> PaperTable:
    """Vanilla vs coarse-grained XTransplant per language, grouped High/Mid/Low with each
    group's Avg. the mean over its languages (Table 3)."""
    blocks, notes = [], []
    for run in runs:
        if run.cot or not run.transplanted:
            continue
        config = _coarse(run)
        if config is None or not ((run.df["src_layer"] == config[0]) & (run.df["tgt_layer"] == config[1])).any():
            notes.append(f"{run.name} ({run.site}): no coarse configuration {config} in the store")
            continue
        sub = _select(run.df, config)
        per_lang = an.accuracy_table(sub, ("group", "lang"), average=average)
        cols: dict[str, dict[str, float]] = {}
        for g, label in GROUPS:
            part = per_lang[per_lang["group"] == g]
            if part.empty:
                continue
            for _, r in part.iterrows():
                cols[f"{label} {r['lang']}"] = {"Vanilla": r["vanilla"], "Coarse": r["transplanted"]}
            avg = an.accuracy_table(sub[sub["group"] == g], ("group",), average=average)
            avg = avg[avg["group"] == g].iloc[0]
            cols[f"{label} Avg."] = {"Vanilla": avg["vanilla"], "Coarse": avg["transplanted"]}
        blocks.append((f"{run.name} ({run.site} {config[0]}→{config[1]})", pd.DataFrame(cols)))
    return PaperTable(3, "Vanilla vs coarse-grained XTransplant by resource group", blocks, notes)


def table4(runs: Sequence[Run], average: str = "language") -> PaperTable:
    """Vanilla, CoT, entropy-based selection and the instance-aware upper bounds SourceLast
    (eq. 4) and TargetFirst (eq. 5) by resource group (Table 4)."""
    blocks, notes = [], []
    for dataset, group in _by_dataset(runs).items():
        data: dict[str, dict[str, float]] = {}
        plain = [r for r in group if not r.cot]
        if plain:
            data["Vanilla"] = _group_values(plain[0].df, average, "vanilla")[0]
        for run in group:
            if run.cot:
                data["CoT"] = _group_values(run.df, average, "vanilla")[0]
        for run in plain:
            if not run.transplanted:
                continue
            g = an.grid(run.df, n_layers=run.n_layers, average=average)
            n = g.n_layers
            if n and "entropy" in run.df.columns and {0, n - 1} <= set(g.src_layers) and 0 in g.tgt_layers:
                sel = an.entropy_select(run.df, n)
                data[f"Entropy-based ({run.site})"] = _group_values(
                    pd.concat([run.df[run.df["is_vanilla"]], sel]), average, "transplanted")[0]
            bounds = an.bound_by_group(g).set_index("group")
            reasons = an.upper_bounds(g).reasons
            for name, key in (("SourceLast", "source_last"), ("TargetFirst", "target_first")):
                vals = {label: float(bounds.loc[gk, name]) if gk in bounds.index else math.nan
                        for gk, label in GROUPS}
                vals["Avg."] = float(bounds.loc["all", name])
                data[f"{name} ({run.site})"] = vals
                reason = reasons.get(key)
                if reason:
                    notes.append(f"{dataset} {name} ({run.site}): not computable on this grid: {reason}")
            notes.append(f"{dataset} ({run.site}): bounds over {g.describe()}")
        blocks.append((dataset, pd.DataFrame(data).T))
    return PaperTable(4, "Vanilla, CoT, entropy-based selection and instance-aware upper bounds",
                      blocks, notes)


TABLES = {1: table1, 2: table2, 3: table3, 4: table4}


def check_unambiguous(runs: Sequence[Run]) -> None:
    """Refuse two runs that would fill the same cells (same dataset and split, site, CoT or
    not, transplanted or vanilla-only): which one a table shows must not depend on their order."""
    seen: dict[tuple, Run] = {}
    for run in runs:
        key = (run.name, run.site if run.transplanted else "", run.cot, run.transplanted)
        if key in seen:
            first, second = (str(r.settings.get("store", "a run given in Python")) for r in (seen[key], run))
            what = f"{run.name}, site {run.site}" if run.transplanted else f"{run.name}, vanilla"
            raise XtlError(f"two stores answer the same cells ({what}{', CoT' if run.cot else ''}): {first} "
                           f"and {second}; give only the one the table should use")
        seen[key] = run


def paper_table(number: int, runs: Sequence[Run], average: str = "language",
                rules: str | None = None) -> PaperTable:
    """Table ``number`` (1-4) of the paper from evaluated ``runs``."""
    if number not in TABLES:
        raise XtlError(f"the paper has Tables 1-4 to rebuild, not {number!r}")
    if not runs:
        raise XtlError("no results to build a table from; give at least one store")
    check_unambiguous(runs)
    table = TABLES[number](runs, average)
    label = "mean over languages" if average == "language" else "pooled over items (not the paper's)"
    rules = rules or next((r.rules for r in runs if "rules" in r.df.columns), "authors")
    groupings = sorted({r.groups for r in runs})
    lids = sorted({r.lid_model for r in runs if r.lid_model})
    extra = [f"Scoring rules: {rules}. Group averages: {label}. "
             + (describe_grouping(groupings[0]) + "." if len(groupings) == 1 else
                f"Groups: mixed ({', '.join(groupings)}); evaluate every store with one --groups.")
             + (f" Language ID: {', '.join(lids)}." if lids else "")]
    logits = [r.name for r in runs if r.mode == "logits"]
    if logits:
        extra.append(f"Logits mode ({', '.join(dict.fromkeys(logits))}): each answer is the highest-scoring "
                     "candidate's first token; language consistency and perplexity need text and show –.")
    return PaperTable(table.number, table.title, table.blocks, extra + table.notes)
