"""Evaluate a results table: correctness, language consistency, perplexity and resource group."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from xtl._calls import keyword_call
from xtl.evaluation.groups import resource_group
from xtl.evaluation.lid import identify_languages, lid_label
from xtl.evaluation.lid import lid_model as resolve_lid_model
from xtl.evaluation.scoring import check_rules, score
from xtl.tasks.item import option_label
from xtl.tasks.registry import find_task, parse_spec
from xtl.options import GROUPINGS, check_option

if TYPE_CHECKING:
    import pandas as pd
    from xtl.models.backends import Model

    from xtl.tasks import Item

__all__ = ["evaluate", "Run", "open_run", "check_task_file"]


@keyword_call("xtl.evaluate", "xtl.evaluate(results, task, model=..., data_root=...)", positional=2,
              legacy=("model", "data_root", "chat", "batch_size", "rules", "candidates", "groups", "lid_model"),
              renamed={"root": "data_root"})
def evaluate(results: "pd.DataFrame | str | os.PathLike", task: "str | Sequence[Item]", *,
             model: "Model | None" = None, data_root: "str | os.PathLike | None" = None,
             chat: bool | None = None, batch_size: int = 32, rules: str = "authors",
             candidates: Sequence[str] | None = None, groups: str = "paper",
             lid_model: "str | os.PathLike | None" = None) -> "pd.DataFrame":
    """Add ``correct``, ``answer``, ``out_lang_pred``, ``lang_ok``, ``lid_model``, ``ppl``,
    ``group``, ``groups`` and ``rules`` columns (:data:`xtl.schema.EVALUATION`).

    Logits-mode rows (no response, only first-token log-probs of the sweep's candidates) are
    scored by their highest-scoring candidate, for choice items; language consistency and
    perplexity, which need text, are NaN there. A QA item cannot be scored in logits mode.

    Args:
        results: a results DataFrame (from :func:`xtl.sweep` or :func:`xtl.read_store`) or the
            path of a results store.
        task: the items the results came from: a list of :class:`xtl.tasks.Item` or a task
            spec for :func:`xtl.tasks.load_task` (``"xnli"``, ``"data.jsonl"``, ...).
        model: the unpatched model that scores response perplexity; without it ``ppl`` is NaN.
        data_root: the data folder for a task spec (default: ``$XTL_DATA``; ``root=`` in xtl 0.3).
        chat: whether the prompts were run through the chat template (perplexity context).
        batch_size: responses scored together for perplexity.
        rules: scoring profile, ``"authors"`` (the paper's scripts) or ``"lenient"``; recorded
            in the ``rules`` column.
        candidates: the sweep's candidates, in the order of ``cand_logprobs`` (logits-mode
            rows need them; a frame from :func:`xtl.sweep` carries them, and :func:`open_run`
            reads them from the store).
        groups: resource grouping of the ``group`` column: ``"paper"`` (the paper's table
            headers per dataset, default) or ``"lang2tax"``; recorded in the ``groups`` column.
        lid_model: fastText language-ID model file (the paper's ``lid.176.bin``); default
            ``$XTL_LID_MODEL`` or the built-in ``lid.176.ftz``; recorded in ``lid_model``.
    """
    import pandas as pd

    from xtl.errors import DataError
    from xtl.engine.store import read_store
    from xtl.tasks import load_task

    check_rules(rules)
    check_option("groups", groups, GROUPINGS)
    lid = resolve_lid_model(lid_model)
    if not isinstance(results, (pd.DataFrame, str, os.PathLike)):
        raise DataError(f"results must be a DataFrame from xtl.sweep / read_store or a store's path, not "
                        f"{type(results).__name__}")
    from xtl.tasks.item import Item

    if isinstance(task, os.PathLike):
        task = os.fspath(task)
    if not isinstance(task, str) and task is not None and not isinstance(task, (bytes, dict)):
        task = list(task) if hasattr(task, "__iter__") else task
    if not isinstance(task, str) and (not isinstance(task, list) or not all(isinstance(it, Item) for it in task)):
        raise DataError(f"task must be a task spec ('xnli', 'data.jsonl') or a list of xtl Items (from "
                        f"xtl.load_task), not {type(task).__name__}")
    if not isinstance(results, pd.DataFrame) and isinstance(task, str):
        from xtl.engine.store import read_manifest

        check_task_file(results, read_manifest(results), task)
    df = read_store(results) if not isinstance(results, pd.DataFrame) else results.copy()
    candidates = candidates if candidates else (df.attrs.get("candidates") or None)
    if df.empty:
        raise DataError("the results table is empty; run a sweep first")
    for col in ("response", "item_key"):
        if col not in df.columns:
            raise DataError(f"results lack a {col!r} column; pass a table from xtl.sweep or read_store")
    if isinstance(task, str):
        langs = sorted(str(l) for l in df["lang"].unique() if str(l)) if "lang" in df.columns else None
        task = load_task(task, langs=langs or None, data_root=data_root)
    items = {it.key: it for it in task}
    missing = sorted(set(df["item_key"]) - set(items))
    if missing:
        raise DataError(f"{len(missing)} result item(s) are not in the task, e.g. {missing[0]!r}; "
                        "evaluate with the task the sweep ran on")
    rows = [items[k] for k in df["item_key"]]
    _check_golds(df, rows)
    if "lang" not in df.columns:  # a frame without it (built by hand, or trimmed): its items know it, and the
        df["lang"] = [it.lang for it in rows]  # per-language and group tables need it
    logits = (df["mode"] == "logits").to_numpy() if "mode" in df.columns else np.zeros(len(df), bool)
    df["answer"] = ""
    if logits.any():
        df.loc[logits, "answer"] = _best_candidates(df[logits], [it for it, l in zip(rows, logits) if l], candidates)
    df["correct"] = [option_label(a) == str(it.gold) if l else score(it, r, rules)
                     for it, r, a, l in zip(rows, df["response"].fillna(""), df["answer"], logits)]
    df["rules"] = rules
    df["out_lang_pred"] = identify_languages(df["response"].fillna(""), lid)
    df["lid_model"] = lid
    df["lang_ok"] = [math.nan if l else float(p is not None and p == lid_label(it.out_lang))
                     for p, it, l in zip(df["out_lang_pred"], rows, logits)]
    df["group"] = [resource_group(it.lang, it.dataset, groups) for it in rows]
    df["groups"] = groups
    df["ppl"] = math.nan
    if model is not None and "token_ids" in df.columns:
        from xtl.evaluation.perplexity import response_perplexity  # torch: only with a model
        from xtl.patching.prompts import format_prompt, tokenize

        for key, sub in df[~logits].groupby("item_key", sort=False):
            uniq = sorted({tuple(int(t) for t in ids) for ids in sub["token_ids"]})
            prompt = tokenize(model, format_prompt(model, items[key].target, chat))
            values = dict(zip(uniq, response_perplexity(model, prompt, uniq, batch_size)))
            df.loc[sub.index, "ppl"] = [values[tuple(int(t) for t in ids)] for ids in sub["token_ids"]]
    return df


def _check_golds(df: "pd.DataFrame", items: list) -> None:
    """Refuse results whose recorded gold (the ``gold`` column the sweep wrote) is not the task's
    gold now: scoring them would silently re-score answers against an edited task."""
    if "gold" not in df.columns:
        return
    from xtl.errors import DataError

    for recorded, item in zip(df["gold"], items):
        if recorded is not None and recorded == recorded and str(recorded) != str(item.gold):
            raise DataError(f"item {item.key}: the results record gold {str(recorded)!r}, the task now says "
                            f"{str(item.gold)!r}; evaluate with the task the sweep ran on, or sweep the "
                            "edited task into a new store")


def check_task_file(store: "str | os.PathLike", settings: dict[str, Any], data: str) -> None:
    """Refuse to score a store against a JSONL task file other than the one it was swept on (the
    content hash its manifest recorded): an edited gold would re-score answers silently."""
    from pathlib import Path

    from xtl.errors import StoreError
    from xtl.hashing import file_sha256

    recorded = settings.get("data_sha256")
    path = Path(str(data)).expanduser()
    if not recorded or not str(data).endswith((".jsonl", ".json")) or not path.is_file():
        return
    now = file_sha256(path)
    if now != recorded:
        raise StoreError(f"{data} is not the file {store} was swept on (its sha256 is {now[:12]}…, the store "
                         f"recorded {recorded[:12]}…): it was edited since; restore it, or sweep it into a "
                         "new --out")


def _best_candidates(df: "pd.DataFrame", items: list, candidates: Sequence[str] | None) -> list[str]:
    """Each logits-mode row's highest-scoring candidate among those that are options of its item
    (every candidate for an item without options; ties: the first)."""
    from xtl.errors import XtlError

    qa = sorted({it.dataset or it.key for it in items if it.kind == "qa"})
    if qa:
        raise XtlError(f"logits-mode rows of QA items ({', '.join(qa)}) cannot be scored: the answer is "
                       "text, not a candidate; sweep them with mode='generate'")
    if not candidates:
        raise XtlError("these rows are from a logits-mode sweep; pass candidates=[...] (the sweep's "
                       "candidates, in order), or open the store with xtl.open_run")
    out = []
    for lp, item in zip(df["cand_logprobs"], items):
        lp = list(lp)
        if len(lp) != len(candidates):
            raise XtlError(f"a row has {len(lp)} candidate log-probs for {len(candidates)} candidates "
                           f"{list(candidates)}; pass the sweep's own candidates")
        allowed = [k for k, c in enumerate(candidates) if not item.options or option_label(c) in item.options]
        if not allowed:
            raise XtlError(f"none of the candidates {list(candidates)} is an option of item {item.key} "
                           f"({', '.join(item.options)}); sweep with candidates that name its options")
        out.append(str(candidates[max(allowed, key=lambda k: (lp[k], -k))]) if lp else "")
    return out


@dataclass(frozen=True)
class Run:
    """One evaluated results table and the settings of the store it came from."""

    df: "pd.DataFrame"
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def dataset(self) -> str:
        if "dataset" in self.df.columns and self.df["dataset"].nunique() == 1:
            return str(self.df["dataset"].iloc[0])
        data = str(self.settings.get("data", ""))
        return parse_spec(data)[0] if find_task(data) else data.split(":")[0]

    @property
    def variant(self) -> str:
        """The split the store ran (``unseen``), '' for a task's default split."""
        return parse_spec(str(self.settings.get("data", "")))[1]

    @property
    def source(self) -> str:
        """The source language the store transplanted from (``xnli@zh``), '' for the task's own."""
        return parse_spec(str(self.settings.get("data", "")))[2]

    @property
    def name(self) -> str:
        """The dataset's name, with the split when the task has one (``XNLI unseen``)."""
        from xtl.tasks.registry import find_task

        task = find_task(self.dataset)
        return task.split_name(self.variant, self.source) if task else self.dataset

    @property
    def model(self) -> str:
        """The model the store ran (its manifest's name)."""
        if self.settings.get("model"):
            return str(self.settings["model"])
        return str(self.df["model"].iloc[0]) if "model" in self.df.columns and len(self.df) else ""

    @property
    def computed_with(self) -> str:
        """How the store was computed, as its manifest records it: model, dtype, device, backend with
        TransformerLens' version, and xtl's version (what a table or report names beside its numbers)."""
        s = self.settings
        parts = [self.display_model or "model not recorded"]
        parts += [f"{s[k]}" for k in ("dtype", "device") if s.get(k)]
        if s.get("backend"):
            parts.append(f"{s['backend']} backend" + (f" (TransformerLens {s['tl_version']})" if s.get("tl_version") else ""))
        if s.get("xtl_version"):
            parts.append(f"xtl {s['xtl_version']}")
        return ", ".join(parts)

    @property
    def sft_base(self) -> str:
        """The base model when the store's model came from ``xtl sft`` (the ML-SFT baseline), else ''."""
        return str(self.settings.get("sft_base") or "")

    @property
    def family(self) -> str:
        """The model a table compares against: the base model of an ML-SFT model, else the model."""
        from xtl.models.names import model_label

        return model_label(self.sft_base) if self.sft_base else self.model

    @property
    def display_model(self) -> str:
        """The model as every table names it: ``MODEL (ML-SFT of BASE)`` for an ``xtl sft`` model."""
        from xtl.models.names import model_label

        return f"{self.model} (ML-SFT of {model_label(self.sft_base)})" if self.sft_base else self.model

    @property
    def site(self) -> str:
        return str(self.settings.get("site") or (self.df["site"].iloc[0] if "site" in self.df else ""))

    @property
    def cot(self) -> bool:
        return bool(self.settings.get("cot"))

    @property
    def rules(self) -> str:
        return str(self.df["rules"].iloc[0]) if "rules" in self.df.columns and len(self.df) else "authors"

    @property
    def groups(self) -> str:
        """The resource grouping of the ``group`` column (``paper`` or ``lang2tax``)."""
        return str(self.df["groups"].iloc[0]) if "groups" in self.df.columns and len(self.df) else "lang2tax"

    @property
    def lid_model(self) -> str:
        """The language-ID model that scored ``lang_ok``."""
        return str(self.df["lid_model"].iloc[0]) if "lid_model" in self.df.columns and len(self.df) else ""

    @property
    def mode(self) -> str:
        """``generate``, or ``logits`` (scored by the highest-scoring candidate)."""
        if self.settings.get("mode"):
            return str(self.settings["mode"])
        return "logits" if "mode" in self.df.columns and (self.df["mode"] == "logits").any() else "generate"

    @property
    def n_layers(self) -> int | None:
        n = self.settings.get("n_layers")
        if n is None and "n_layers" in self.df.columns and self.df["n_layers"].notna().any():
            n = int(self.df["n_layers"].max())
        return n

    @property
    def transplanted(self) -> bool:
        return bool((~self.df["is_vanilla"]).any())


@keyword_call("xtl.open_run", "xtl.open_run(store, task=..., data_root=...)",
              legacy=("task", "data_root", "src_layers", "tgt_layers", "rules", "model", "groups", "lid_model"),
              renamed={"data": "task", "root": "data_root"})
def open_run(store: "str | os.PathLike", *, task: str | None = None, data_root: "str | os.PathLike | None" = None,
             src_layers: Sequence[int] | None = None, tgt_layers: Sequence[int] | None = None,
             rules: str = "authors", model: "Model | None" = None, groups: str = "paper",
             lid_model: "str | os.PathLike | None" = None) -> Run:
    """A results store (or an ``xtl eval`` output folder) evaluated with the task it recorded.

    Args:
        store: the store folder.
        task: a task spec overriding the one the store recorded (``data=`` in xtl 0.3).
        data_root: the data folder (default: the one the store recorded).
        src_layers: keep only configurations from these source layers (vanilla rows always stay).
        tgt_layers: keep only configurations into these target layers.
        rules: scoring profile.
        model: the unpatched model, to score perplexity.
        groups: resource grouping, ``"paper"`` (default) or ``"lang2tax"``.
        lid_model: fastText language-ID model file (default: ``$XTL_LID_MODEL`` or built in).
    """
    from pathlib import Path

    from xtl.engine.store import MANIFEST, read_manifest, read_store
    from xtl.errors import XtlError

    path = Path(store)
    if not path.exists():
        raise XtlError(f"{path} does not exist; give the folder of a store written by `xtl sweep`")
    if not (path / MANIFEST).exists() and (path / "rows" / MANIFEST).exists():
        path = path / "rows"  # an `xtl eval` output folder
    settings = read_manifest(path)
    df = read_store(path)
    if df.empty:
        raise XtlError(f"{path} holds no finished items yet; let the sweep run first")
    task = task or settings.get("data")  # the manifest's key for the task
    if not task:
        raise XtlError(f"{path} does not record its task; give it: task=SPEC (the CLI's --task SPEC)")
    check_task_file(path, settings, task)
    rest = df[~df["is_vanilla"]]
    for what, asked, have in (("source", src_layers, rest["src_layer"]), ("target", tgt_layers, rest["tgt_layer"])):
        missing = sorted(set(asked or []) - set(int(x) for x in have.unique()))
        if missing:
            layers = ", ".join(map(str, sorted(int(x) for x in have.unique()))) or "none"
            raise XtlError(f"{path} has no {what} layer(s) {', '.join(map(str, missing))}; it has {layers}")
    if src_layers is not None or tgt_layers is not None:
        keep = df["is_vanilla"] | ((src_layers is None) | df["src_layer"].isin(src_layers or [])) & (
            (tgt_layers is None) | df["tgt_layer"].isin(tgt_layers or []))
        df = df[keep].reset_index(drop=True)
    df = evaluate(df, task, model=model, data_root=data_root or settings.get("data_root"),
                  chat=bool(settings.get("chat")), rules=rules, candidates=settings.get("candidates"),
                  groups=groups, lid_model=lid_model)
    return Run(df, {**settings, "data": task, "store": str(Path(store))})
