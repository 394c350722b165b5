"""The paper's Tables 1-4 from evaluated results, in the paper's layout.

Each table is built from one or more *runs* (an evaluated results table and the settings its
store recorded: dataset, site, layers, CoT or not) and comes back as a :class:`PaperTable`: a
few titled blocks of numbers plus notes, rendered as Markdown, CSV or LaTeX. Every group
average is the paper's: the unweighted mean over the group's languages of each language's
score (``average="pooled"`` gives the mean over items instead, labelled as such).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import pandas as pd

from xtl import analysis as an
from xtl.analysis.render import PaperTable, to_csv, to_latex, to_markdown
from xtl.errors import XtlError
from xtl.evaluation.evaluated import Run
from xtl.evaluation.groups import describe_grouping
from xtl.tasks.registry import find_task

__all__ = ["Run", "PaperTable", "paper_table", "TABLES", "to_markdown", "to_latex", "to_csv"]

GROUPS = (("high", "High"), ("mid", "Mid"), ("low", "Low"))
SITE_NAMES = {"attn": "Attn-level", "attn-authors": "Attn-level (authors' variant)",
              "mlp": "FFN-level", "block": "Block-level"}
#: Table 1's row names of each site.
MODULE_NAMES = {"attn": "Self-Attention", "attn-authors": "Self-Attention, authors' variant",
                "mlp": "Feed-Forward", "block": "Whole Block"}
#: The paper's order of datasets and of Table 2's task types.
DATASET_ORDER = ("xnli", "xquad", "globalopinionqa", "xcopa", "mkqa", "culturalbench")
TASK_TYPES = ("Multilingual Understanding", "Multilingual Generation", "Cultural Adaptability")
#: Table 2's granularity of each task type (attention for understanding, feed-forward otherwise).
PAPER_SITES = {"Multilingual Understanding": "attn", "Multilingual Generation": "mlp", "Cultural Adaptability": "mlp"}


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


def group_means(per_item: pd.DataFrame, average: str = "language", column: str = "correct") -> dict[str, float]:
    """High/Mid/Low/Avg. (percent) of per-item outcomes ``column`` (one row per item, with
    ``lang`` and ``group``), averaged as every table is (``average``: over languages or pooled)."""
    frame = per_item.assign(is_vanilla=True, correct=per_item[column].astype(float))[["lang", "group", "is_vanilla", "correct"]]
    return _group_values(frame, average, "vanilla")[0]


def _coarse(run: Run) -> tuple[int, int] | None:
    try:
        return an.coarse_config(run.site, run.n_layers) if run.n_layers else None
    except XtlError:
        return None


def _select(df: pd.DataFrame, config: tuple[int, int]) -> pd.DataFrame:
    """Vanilla rows and the rows of one configuration."""
    src, tgt = config
    return df[df["is_vanilla"] | ((df["src_layer"] == src) & (df["tgt_layer"] == tgt))]


def _label(run: Run, runs: Sequence[Run]) -> str:
    """A run's dataset and split, and its model when the runs hold several (side by side)."""
    several = len({r.family for r in runs}) > 1
    return f"{run.name} · {run.family}" if several else run.name


def _by_dataset(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs grouped by dataset and split (``XNLI PilotSet``, ``XNLI unseen``), and by model when
    there are several."""
    out: dict[str, list[Run]] = {}
    for run in runs:
        out.setdefault(_label(run, runs), []).append(run)
    return out


def _order(runs: Sequence[Run]) -> list[Run]:
    """Runs in the paper's dataset order (others after, by name)."""
    def key(run: Run):
        d = run.dataset.lower()
        return (DATASET_ORDER.index(d) if d in DATASET_ORDER else len(DATASET_ORDER), run.name, run.site)
    return sorted(runs, key=key)


def _column(run: Run, runs: Sequence[Run], out_lang: bool = False) -> str:
    """A dataset's column header, with the model when the runs hold several (``XNLI · Llama-2``);
    Table 1's language-consistency panel adds the output language the task asks for
    (``XNLI (non-En)``, ``GlobalOpinionQA (En)``)."""
    task = find_task(run.dataset)
    name = _label(run, runs).replace(" PilotSet", "") or "results"
    if out_lang and task is not None:
        name += " (En)" if task.out_lang == "en" else " (non-En)"
    return name


def table1(runs: Sequence[Run], average: str = "language") -> PaperTable:
    """Table 1 in the paper's layout: perplexity and language consistency, one column per
    dataset, rows Vanilla and XTransplant of each granularity (the mean over every swept
    configuration), two decimals; then, as an extra view, accuracy, language consistency and
    perplexity by resource group."""
    ppl: dict[str, dict[str, float]] = {}
    lc: dict[str, dict[str, float]] = {}
    extra, notes = [], []
    base_runs = [r for r in runs if not r.sft_base]
    for dataset, group in _by_dataset(_order(base_runs)).items():
        plain = [r for r in group if not r.cot]
        if not plain:
            continue
        ppl_col, lc_col = _column(plain[0], base_runs), _column(plain[0], base_runs, out_lang=True)
        van = plain[0].df
        ppl.setdefault("Vanilla (w/o XTransplant)", {})[ppl_col] = _group_values(van, average, "ppl_vanilla")[0]["Avg."]
        lc.setdefault("Vanilla (w/o XTransplant)", {})[lc_col] = _group_values(van, average, "lang_ok_vanilla")[0]["Avg."]
        rows = {"Vanilla": van}
        for run in plain:
            if not run.transplanted:
                continue
            label = f"XTransplant ({MODULE_NAMES.get(run.site, run.site)})"
            moved = run.df[~run.df["is_vanilla"]].assign(is_vanilla=True)
            g = an.grid(run.df, n_layers=run.n_layers, average=average)
            if not g.is_full:
                notes.append(f"{dataset} {label}: the mean over the configurations this store swept "
                             f"({g.describe()}), not over the paper's N² grid")
            ppl.setdefault(label, {})[ppl_col] = _group_values(moved, average, "ppl_vanilla")[0]["Avg."]
            lc.setdefault(label, {})[lc_col] = _group_values(moved, average, "lang_ok_vanilla")[0]["Avg."]
            rows[label] = moved
        for run in group:
            if run.cot:
                rows["CoT"] = run.df
        data = {}
        for label, df in rows.items():
            by_metric = _group_values(df, average, "vanilla", "lang_ok_vanilla", "ppl_vanilla")
            data[label] = {f"{metric} {g}": v for metric, values in zip(("Acc", "LC", "PPL"), by_metric)
                           for g, v in values.items()}
        extra.append((f"Extra view (not in the paper): {dataset} by resource group", pd.DataFrame(data).T))
    order = ["Vanilla (w/o XTransplant)"] + [f"XTransplant ({m})" for m in MODULE_NAMES.values()]
    blocks = [(title, pd.DataFrame(panel).T.reindex([r for r in order if r in panel] +
                                                   [r for r in panel if r not in order]))
              for title, panel in (("Perplexity", ppl), ("Language Consistency (%)", lc)) if panel]
    notes.append("Perplexity: of each response under the unpatched model, averaged over items and (for "
                 "XTransplant) over every swept configuration; –: no model was given to score it (xtl paper "
                 "--model M). Language consistency: lid.176 on the whole response. Averages are means over "
                 "languages. The extra views add accuracy (Acc) by group.")
    return PaperTable(1, "Perplexity and input-output language consistency across every swept configuration",
                      blocks + extra, notes, decimals=2)


def _layers_in_words(config: tuple[int, int] | None) -> str:
    if config is None:
        return "–"
    return f"({'Last' if config[0] else 'First'} layer, First layer) = ({config[0]}, {config[1]})"


def table2(runs: Sequence[Run], average: str = "language") -> PaperTable:
    """Table 2 in the paper's layout: per task type, the granularity, the (source, target)
    layers of the coarse strategy, and the unseen ID and OOD datasets; then, as an extra view,
    each run's vanilla and coarse accuracy."""
    columns = ("Granularity", "Layer Selection (Source, Target)", "ID Data", "OOD Data")
    settings: dict[str, dict[str, dict[str, None]]] = {}  # task type -> column -> values, in order
    rows, notes = [], []
    for run in _order(runs):
        if run.cot or not run.transplanted:
            continue
        config = _coarse(run)
        task = find_task(run.dataset)
        kind = task.task_type if task else "–"
        paper_site = PAPER_SITES.get(kind)
        if paper_site is None or run.site.split(":")[0].removesuffix("-authors") == paper_site:
            entry = settings.setdefault(kind, {c: {} for c in columns})
            entry["Granularity"][SITE_NAMES.get(run.site, run.site)] = None
            entry["Layer Selection (Source, Target)"][_layers_in_words(config)] = None
        else:  # the settings row shows the paper's setting of the task type; other sites: extra view
            notes.append(f"{run.name} ({run.site}): not the paper's setting for {kind} "
                         f"({SITE_NAMES[paper_site]}); in the extra view only")
            entry = {c: {} for c in columns}
        in_sample = task is not None and task.pilot and not run.variant  # the PilotSet itself, not its unseen set
        entry["ID Data" if task is not None and task.pilot else "OOD Data"][
            (f"{task.title} (PilotSet, in-sample)" if in_sample else task.title) if task else run.name] = None
        row = {"Dataset": run.name, "Task type": kind, "Granularity": SITE_NAMES.get(run.site, run.site),
               "Layer selection (source, target)": "–" if config is None else
               f"({'last' if config[0] else 'first'}, first) = ({config[0]}, {config[1]})",
               "Vanilla": _group_values(run.df, average, "vanilla")[0]["Avg."], "Coarse": math.nan}
        if config is not None and ((run.df["src_layer"] == config[0]) & (run.df["tgt_layer"] == config[1])).any():
            row["Coarse"] = _group_values(_select(run.df, config), average, "transplanted")[0]["Avg."]
        elif config is not None:
            notes.append(f"{run.name} ({run.site}): the store did not sweep {config}; coarse not computable")
        row["Δ"] = row["Coarse"] - row["Vanilla"]
        rows.append(row)
    joiner = {"ID Data": ", ", "OOD Data": ", "}
    paper = pd.DataFrame([{"Task Type": kind, **{c: joiner.get(c, " / ").join(settings[kind][c]) or "–"
                                                  for c in columns}}
                          for kind in [k for k in TASK_TYPES if k in settings] + [k for k in settings
                                                                                 if k not in TASK_TYPES]])
    notes.append("Attn-level: (last layer, first layer); FFN-level: (first layer, first layer), in this model's "
                 "layer numbers. ID: unseen items of the PilotSet datasets (a PilotSet store is marked 'PilotSet, "
                 "in-sample': its items chose the paper's layers); OOD: the other datasets. "
                 "The extra view's accuracies are means over languages (%).")
    blocks = [("Settings", paper)] if rows else []
    blocks.append(("Extra view (not in the paper): coarse-grained accuracy", pd.DataFrame(rows)))
    return PaperTable(2, "The settings and the evaluation datasets of the coarse-grained attempts", blocks, notes)


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
        tuned = f" · ML-SFT model {run.model} (from {run.sft_base})" if run.sft_base else ""
        blocks.append((f"{_label(run, runs)}{tuned} ({run.site} {config[0]}→{config[1]})", pd.DataFrame(cols)))
        if run.sft_base:
            notes.append(f"{run.name}: vanilla vs coarse on the instruction-tuned {run.model}, as the paper's "
                         "Table 11 (there: Qwen2-7B-Instruct after further instruction tuning)")
    return PaperTable(3, "Vanilla vs coarse-grained XTransplant by resource group", blocks, notes)


def table4(runs: Sequence[Run], average: str = "language") -> PaperTable:
    """Vanilla, CoT, ML-SFT (the vanilla accuracy of an ``xtl sft`` model of the same base),
    entropy-based selection and the instance-aware upper bounds SourceLast (eq. 4) and
    TargetFirst (eq. 5) by resource group (Table 4)."""
    blocks, notes = [], []
    for dataset, group in _by_dataset(runs).items():
        data: dict[str, dict[str, float]] = {}
        plain = [r for r in group if not r.cot and not r.sft_base]
        if plain:
            data["Vanilla"] = _group_values(plain[0].df, average, "vanilla")[0]
        for run in group:
            if run.cot and not run.sft_base:
                data["CoT"] = _group_values(run.df, average, "vanilla")[0]
        for run in group:
            if run.sft_base and not run.cot:
                data["ML-SFT"] = _group_values(run.df, average, "vanilla")[0]
                notes.append(f"{dataset} ML-SFT: {run.display_model}, fine-tuned from {run.sft_base} by xtl sft"
                             + (" with LoRA (not the paper's recipe)" if run.settings.get("sft_lora") else ""))
        for run in [r for r in group if not r.cot and r.transplanted]:
            tag = f"{run.site}, ML-SFT" if run.sft_base else run.site  # a tuned model's own selection and bounds
            g = an.grid(run.df, n_layers=run.n_layers, average=average)
            n = g.n_layers
            if n and "entropy" in run.df.columns and {0, n - 1} <= set(g.src_layers) and 0 in g.tgt_layers:
                sel = an.entropy_select(run.df, n)
                data[f"Entropy-based ({tag})"] = _group_values(
                    pd.concat([run.df[run.df["is_vanilla"]], sel]), average, "transplanted")[0]
            bounds = an.bound_by_group(g).set_index("group")
            reasons = an.upper_bounds(g).reasons
            for name, key in (("SourceLast", "source_last"), ("TargetFirst", "target_first")):
                vals = {label: float(bounds.loc[gk, name]) if gk in bounds.index else math.nan
                        for gk, label in GROUPS}
                vals["Avg."] = float(bounds.loc["all", name])
                data[f"{name} ({tag})"] = vals
                reason = reasons.get(key)
                if reason:
                    notes.append(f"{dataset} {name} ({tag}): not computable on this grid: {reason}")
            notes.append(f"{dataset} ({tag}): bounds over {g.describe()}")
        if not plain and group:  # only ML-SFT stores: the panel is the tuned model's, named as Table 8 names it
            dataset = f"{group[0].name} · {group[0].display_model}"
        blocks.append((dataset, pd.DataFrame(data).T))
    return PaperTable(4, "Vanilla, CoT, entropy-based selection and instance-aware upper bounds",
                      blocks, notes)


LANGUAGE_NAMES = {"en": "English", "zh": "Chinese", "de": "German", "fr": "French", "es": "Spanish",
                  "ar": "Arabic", "ru": "Russian", "ja": "Japanese"}


def table8(runs: Sequence[Run], average: str = "language") -> PaperTable:
    """Entropy-based layer selection per language, for runs transplanting from different
    source languages (``xtl sweep --task xnli@zh``) and models, side by side (Table 8)."""
    blocks, notes = [], []
    by_dataset: dict[str, list[Run]] = {}
    for run in _order(runs):
        if run.transplanted and not run.cot:
            task = find_task(run.dataset)
            by_dataset.setdefault(task.split_name(run.variant) if task else run.dataset, []).append(run)
    for dataset, group in by_dataset.items():
        data: dict[str, dict[str, float]] = {}
        for run in group:
            n = run.n_layers
            g = an.grid(run.df, n_layers=n, average=average)
            if not (n and "entropy" in run.df.columns and {0, n - 1} <= set(g.src_layers) and 0 in g.tgt_layers):
                notes.append(f"{dataset} ({run.display_model}, source {run.source or 'default'}): the store lacks "
                             f"configurations ({0}, 0) and ({(n or 1) - 1}, 0); entropy-based selection not computable")
                continue
            task = find_task(run.dataset)
            source = run.source or (task.src_lang if task else "") or "?"
            sel = an.entropy_select(run.df, n)
            per_lang = an.accuracy_table(pd.concat([run.df[run.df["is_vanilla"]], sel]), ("lang",), average=average)
            values = {str(r["lang"]): float(r["transplanted"]) for _, r in per_lang.iterrows() if r["lang"] != "all"}
            langs = sorted(values, key=lambda l: (l != source and l != "en", l))
            row = {lang: values[lang] for lang in langs}
            row["Avg."] = float(per_lang[per_lang["lang"] == "all"]["transplanted"].iloc[0])
            label = f"Entropy-based ({LANGUAGE_NAMES.get(source, source)})"
            data[f"{run.display_model} · {label}" if run.model else label] = row
        if data:
            frame = pd.DataFrame(data).T
            first = [c for c in frame.columns if c != "Avg."]
            blocks.append((dataset, frame[first + ["Avg."]]))
    notes.append("Per language: accuracy (%) of the entropy-based choice (target layer 0, source layer 0 or N−1 "
                 "by the lower first-token entropy); Avg.: mean over languages. Sources: the language whose "
                 "activations are transplanted (xtl sweep --task xnli@zh for Chinese).")
    return PaperTable(8, "Entropy-based layer selection by source language and model", blocks, notes)


TABLES = {1: table1, 2: table2, 3: table3, 4: table4, 8: table8}


def check_unambiguous(runs: Sequence[Run]) -> None:
    """Refuse two runs that would fill the same cells (same dataset and split, site, CoT or
    not, transplanted or vanilla-only): which one a table shows must not depend on their order."""
    seen: dict[tuple, Run] = {}
    for run in runs:
        key = (run.model, run.name, run.site if run.transplanted else "", run.cot, run.transplanted)
        if key in seen:
            first, second = (str(r.settings.get("store", "a run given in Python")) for r in (seen[key], run))
            what = f"{run.name}, site {run.site}" if run.transplanted else f"{run.name}, vanilla"
            raise XtlError(f"two stores answer the same cells ({what}{', CoT' if run.cot else ''}): {first} "
                           f"and {second}; give only the one the table should use")
        seen[key] = run


#: Tables the paper prints for other models: (model name contains, xtl table) -> paper table.
OTHER_MODELS = {("mistral", 4): 6, ("qwen2", 4): 7, ("mistral", 3): 9, ("qwen2", 3): 10}


def _paper_number(number: int, model: str) -> int | None:
    """The number the paper gives Table ``number`` of ``model`` (Table 4 of Mistral is Table 6)."""
    if "llama-2" in model.lower():
        return number
    return next((n for (name, t), n in OTHER_MODELS.items() if t == number and name in model.lower()), None)


def paper_table(number: int, runs: Sequence[Run], average: str = "language",
                rules: str | None = None) -> PaperTable:
    """Table ``number`` (1-4, 8) of the paper from evaluated ``runs``; runs of several models
    come side by side, each block titled by its model (Tables 6, 7, 9 and 10 are Tables 4 and 3
    of other models)."""
    if number not in TABLES:
        raise XtlError(f"xtl rebuilds the paper's Tables {', '.join(map(str, TABLES))}, not {number!r}")
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
    computed = list(dict.fromkeys(r.computed_with for r in runs))
    extra.append(f"Computed with: {'; '.join(computed)}.")
    models = list(dict.fromkeys(r.model for r in runs if r.model))
    for model in models:
        paper_number = _paper_number(number, model)
        if paper_number and paper_number != number:
            extra.append(f"The paper prints this table for {model} as its Table {paper_number}.")
    title = table.title + (f" — {', '.join(models)}" if models else "")
    return replace(table, title=title, notes=extra + table.notes)
