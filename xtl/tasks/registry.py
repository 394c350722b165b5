"""Tasks as data: one :class:`Task` record per dataset, and the registry that finds them.

A record says everything xtl knows about a dataset: how to load it, its prompt template, how
it is scored, which languages it has and which way it is transplanted, its chain-of-thought
languages and its answer candidates. Adding a dataset is one loader module and one
:func:`register` line below (docs/architecture.md walks through one).
"""

from __future__ import annotations

import difflib
import json
import os
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

from xtl._calls import keyword_call
from xtl.errors import DataError
from xtl.tasks.files import data_root
from xtl.tasks.item import Item

__all__ = ["Scoring", "Task", "TASKS", "register", "find_task", "get_task", "load_task", "parse_spec",
           "builtin_pair", "scoring_for"]


@dataclass(frozen=True)
class Scoring:
    """How a dataset's responses are scored (the authors' released scripts).

    ``kind``: ``choice`` (the gold option present, no other) or ``qa`` (gold substring,
    case-insensitive). ``letters``: every letter A-Z competes (GlobalOpinionQA);
    ``ignore_case``: match the upper-cased response; ``fullwidth``: the authors read ``（k）``
    as ``(k)`` for this dataset (``rules="lenient"`` does it for every choice task).
    """

    kind: str = "choice"
    letters: bool = False
    ignore_case: bool = False
    fullwidth: bool = False


CHOICE = Scoring("choice")
QA = Scoring("qa")


@dataclass(frozen=True)
class Task:
    """Everything xtl knows about one dataset."""

    name: str
    title: str
    loader: Callable[..., list[Item]]
    scoring: Scoring
    task_type: str  # Table 2's: understanding, generation or cultural adaptability
    template: str | None = None  # key of xtl.tasks.templates.TEMPLATES
    src_lang: str | None = None  # fixed source language (None: the item's own language)
    out_lang: str | None = None  # fixed response language (None: the item's language)
    langs: tuple[str, ...] = ()  # the paper's languages (empty: whatever the data has)
    variants: tuple[str, ...] = ()  # e.g. ("unseen",): load_task("xnli:unseen")
    candidates: tuple[str, ...] = ()  # answer labels, for first-token (logits-mode) scoring
    data_folder: str | None = None  # sub-folder of a data root holding it (None: from the hub)
    pilot: bool = False  # the paper's PilotSet (its default split) rather than a full set
    sources: bool = False  # the source language is a setting (``xnli@zh``): parallel files in every language
    #: the paper's resource groups of this dataset, as its Table 3 headers print them
    #: ("high: ar de | mid: hi | low: sw"); languages not listed fall back to lang2tax
    paper_groups: str = ""

    def paper_group(self, lang: str) -> str | None:
        """``high``/``mid``/``low`` of ``lang`` (regional codes by their base) in the paper's
        tables of this dataset, or None when the paper does not print it."""
        from xtl.tasks.cot import base_language

        for part in self.paper_groups.split("|"):
            group, _, langs = part.partition(":")
            if base_language(lang) in langs.split():
                return group.strip()
        return None

    def split_name(self, variant: str = "", source: str = "") -> str:
        """``XNLI PilotSet``, ``XNLI unseen``, ``XCOPA``; ``XNLI PilotSet (source zh)``."""
        name = f"{self.title} {variant}" if variant else (f"{self.title} PilotSet" if self.pilot else self.title)
        return f"{name} (source {source})" if source and source != self.src_lang else name


TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Add a task record to the registry (its name must be new)."""
    if task.name in TASKS:
        raise DataError(f"a task named {task.name!r} is already registered")
    TASKS[task.name] = task
    return task


def parse_spec(spec: str) -> tuple[str, str, str]:
    """``NAME[:VARIANT][@SOURCE]`` -> (name, variant, source language): ``xnli:unseen@zh`` ->
    ``("xnli", "unseen", "zh")``; '' where a part is left out."""
    head, _, source = str(spec).partition("@")
    name, _, variant = head.lower().partition(":")
    return name, variant, source


def find_task(name: str) -> Task | None:
    """The record of dataset ``name`` (a spec such as ``xnli:unseen@zh`` too), or None (JSONL
    tasks have none)."""
    return TASKS.get(parse_spec(name)[0])


def get_task(name: str) -> Task:
    """The record of dataset ``name``, or an error with the registered names."""
    task = find_task(name)
    if task is None:
        close = difflib.get_close_matches(str(name).lower(), list(TASKS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DataError(f"unknown task {name!r}; use one of {', '.join(TASKS)} or a .jsonl file.{hint}")
    return task


def scoring_for(dataset: str, kind: str) -> Scoring:
    """The scoring of a dataset: its record's, else plain choice or QA by the item's kind."""
    task = find_task(dataset)
    if task is not None:
        return task.scoring
    return QA if kind == "qa" else CHOICE


@keyword_call("xtl.load_task", "xtl.load_task(task, langs=..., limit=..., data_root=...)",
              legacy=("langs", "limit", "data_root"), renamed={"spec": "task", "root": "data_root"})
def load_task(task: "str | os.PathLike", *, langs: list[str] | None = None, limit: int | None = None,
              data_root: str | os.PathLike | None = None, source_langs: list[str] | None = None) -> list[Item]:
    """Items of a registered task (``xnli``, ``xnli:unseen``, ``xquad``, ``globalopinionqa``,
    ``xcopa``; ``mkqa`` from the hub) or of a parallel JSONL file.

    ``@LANG`` sets the source language of tasks with parallel prompts in every language
    (XNLI, XQuAD): ``xnli@zh`` transplants from the Chinese prompts, as the paper's Table 8
    does; the default is the task's own (English). ``source_langs`` adds each item's parallel
    prompts in those languages (``item.meta["sources"]``), what a sweep with ``source_langs``
    mixes."""
    items = _load_task(task, langs, limit, data_root)
    if source_langs:
        add_sources(items, task, source_langs, limit, data_root)
    return items


def add_sources(items: list[Item], spec: str, source_langs: list[str], limit: int | None = None,
                root: str | os.PathLike | None = None) -> None:
    """Give each item its parallel prompts in ``source_langs`` (``meta["sources"]``): the same
    item of the task loaded with each language as its source (``NAME@LANG``)."""
    if isinstance(source_langs, str) or not all(isinstance(x, str) and x for x in source_langs):
        raise DataError(f"source_langs must be a list of language codes, e.g. ['zh', 'ja'], not {source_langs!r}")
    name, variant, _ = parse_spec(str(spec))
    task = TASKS.get(name)
    if task is None or not task.sources:
        with_sources = ", ".join(t.name for t in TASKS.values() if t.sources)
        raise DataError(f"{spec} has no parallel prompts in other source languages; --source-langs works with "
                        f"{with_sources}")
    base = f"{name}:{variant}" if variant else name
    langs = sorted({it.lang for it in items})
    for lang in source_langs:
        by_key = {it.key: it.source for it in _load_task(f"{base}@{lang}", langs, limit, root)}
        for it in items:
            if it.key not in by_key:
                raise DataError(f"{base}@{lang} has no item {it.id} of {it.lang}; a source language needs every item")
            it.meta.setdefault("sources", {})[lang] = by_key[it.key]


def _load_task(spec: "str | os.PathLike", langs, limit, root) -> list[Item]:
    from xtl.tasks.jsonl import load_jsonl_task

    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
        if not isinstance(spec, str) or not spec.endswith((".jsonl", ".json")):
            raise DataError(f"a task file is JSON Lines named *.jsonl, not {spec!r}; rename it, or give a task "
                            "name such as 'xnli'")
    if not isinstance(spec, str) or not spec:
        raise DataError(f"the task must be a name such as 'xnli' or a .jsonl path, not {spec!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise DataError(f"limit must be an int (items per language), not {limit!r}")
    if limit is not None and limit < 1:
        raise DataError(f"limit must be at least 1, not {limit}; leave it out for every item")
    if langs is not None and not isinstance(langs, str) and len(langs) == 0:
        raise DataError("langs is empty, which would load no language; leave it out (None) for every language")
    if langs is not None and (isinstance(langs, str) or not all(isinstance(l, str) and l for l in langs)):
        raise DataError(f"langs must be a list of language codes, e.g. ['de', 'sw'], not {langs!r}")
    if spec.endswith((".jsonl", ".json")):
        if not Path(spec).is_file():
            raise DataError(f"data file {spec} does not exist; give the path of a JSON Lines task "
                            "file (one object per line with source, target, gold)")
        return _recorded(load_jsonl_task(Path(spec), langs, limit), task_record(spec))
    return _recorded(_load_registered(spec, langs, limit, root), task_record(spec, root))


def task_record(spec: str, root: str | os.PathLike | None = None) -> dict[str, str]:
    """How a store records the task ``spec``: a JSONL file by its resolved path and content hash
    (a store resumes it from any folder and refuses an edited file), a registered task by name."""
    if spec.endswith((".jsonl", ".json")) and Path(spec).is_file():
        from xtl.hashing import file_sha256

        path = Path(spec).expanduser().resolve()
        return {"data": str(path), "data_sha256": file_sha256(path)}
    out = {"data": spec}
    if root is not None:
        out["data_root"] = str(Path(root).expanduser().resolve())
    return out


def _recorded(items: list[Item], record: dict[str, str]) -> list[Item]:
    """``items`` carrying the record of the task they came from (``meta["task_record"]``), which
    :func:`xtl.sweep` writes into a store's manifest when the caller does not."""
    for item in items:
        item.meta["task_record"] = record
    return items


def _load_registered(spec: str, langs, limit, root) -> list[Item]:
    name, variant, source = parse_spec(spec)
    task = get_task(name)
    if source and not task.sources:
        with_sources = ", ".join(t.name for t in TASKS.values() if t.sources)
        raise DataError(f"{name} has no source-language setting ('@{source}'); only {with_sources} have "
                        "parallel prompts in every language")
    if variant and variant not in task.variants:
        close = difflib.get_close_matches(variant, task.variants, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        have = f"its variants are {', '.join(task.variants)}" if task.variants else "it has no variants"
        raise DataError(f"unknown variant {variant!r} of {name}; {have}.{hint}")
    if task.data_folder is None:
        items = task.loader(langs, limit)
    else:
        base = data_root(root)
        if (base / task.data_folder).is_dir():
            base = base / task.data_folder  # a ../shared/data-style root
        items = (task.loader(base, langs=langs, limit=limit, variant=variant, source=source or task.src_lang)
                 if task.sources else task.loader(base, langs=langs, limit=limit, variant=variant))
    for item in items:  # the task's fixed languages, resolved when the item is made
        for name in ("out_lang", "src_lang"):
            if getattr(task, name):
                item.meta.setdefault(name, getattr(task, name))
    return items


def builtin_pair() -> dict:
    """The English/Chinese multiple-choice pair shipped with xtl (Chinese source, English
    target), as ``{"source", "target", ...}``: the demo's input."""
    return json.loads(resources.files("xtl").joinpath("data/builtin_pair.json").read_text("utf-8"))


# ---------------------------------------------------------------- the registry
def _paper() -> None:
    from xtl.tasks.culturalbench import load_culturalbench_task
    from xtl.tasks.demo_set import DEMO_LABELS, DEMO_LANGS, load_demo_set
    from xtl.tasks.globalopinionqa import load_globalopinionqa
    from xtl.tasks.mkqa import MKQA_LANGS, load_mkqa
    from xtl.tasks.xcopa import XCOPA_LANGS, load_xcopa
    from xtl.tasks.xnli import load_xnli
    from xtl.tasks.xquad import load_xquad

    letters = tuple(string.ascii_uppercase)
    # paper_groups: Table 3's headers, which Tables 1, 4 and 6-11 share
    register(Task("xnli", "XNLI", load_xnli, Scoring("choice", fullwidth=True), "Multilingual Understanding",
                  template="xnli", src_lang="en", variants=("unseen",), candidates=("1", "2", "3"),
                  data_folder="xtransplant", pilot=True, sources=True,
                  paper_groups="high: ar de en es fr zh | mid: hi ru tr vi | low: bg el sw ur"))
    register(Task("xquad", "XQuAD", load_xquad, QA, "Multilingual Generation", template="xquad",
                  src_lang="en", variants=("unseen",), data_folder="xtransplant", pilot=True, sources=True,
                  paper_groups="high: ar de en es zh | mid: hi ru tr vi | low: el ro th"))
    register(Task("globalopinionqa", "GlobalOpinionQA", load_globalopinionqa,
                  Scoring("choice", letters=True, ignore_case=True), "Cultural Adaptability",
                  template="globalopinionqa", out_lang="en", variants=("unseen",), candidates=letters,
                  data_folder="xtransplant", pilot=True,
                  paper_groups="high: ar de en es fr ja zh | mid: hi pt ru sv tr vi | low: am el id sw tl uk ur"))
    register(Task("xcopa", "XCOPA", load_xcopa, CHOICE, "Multilingual Understanding", template="xcopa",
                  src_lang="en", langs=XCOPA_LANGS, variants=("test", "validation"), candidates=("1", "2"),
                  data_folder="xcopa", paper_groups="high: en zh | mid: it tr vi | low: ht id sw ta"))
    register(Task("mkqa", "MKQA", load_mkqa, QA, "Multilingual Generation", src_lang="en",
                  langs=MKQA_LANGS,
                  paper_groups="high: ar de en es fr ja zh | mid: it ko pt tr vi | low: fi he hu nl no"))
    register(Task("culturalbench", "CulturalBench", load_culturalbench_task,
                  Scoring("choice", letters=True, ignore_case=True), "Cultural Adaptability",
                  template="globalopinionqa", out_lang="en", candidates=("A", "B", "C", "D"),
                  data_folder="culturalbench",
                  paper_groups="high: ar de en es fr ja zh | mid: hi ko ru tr vi | low: he ms pl tl"))
    # not the paper's: the small parallel set shipped with xtl, what `xtl demo` sweeps
    register(Task("demo", "xtl demo set", load_demo_set, CHOICE, "Multilingual Understanding", src_lang="en",
                  langs=DEMO_LANGS, candidates=DEMO_LABELS, paper_groups="high: de es zh | low: sw"))


_paper()
