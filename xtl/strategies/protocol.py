"""The honest evaluation of selection strategies: cross-validation over items (or leave one
language out), never fitting and choosing on the same item; per strategy the accuracy by
resource group (means over languages, the paper's), its cost, the share of the vanilla →
oracle and vanilla → TargetFirst gaps it closes, a bootstrap interval and McNemar against the
entropy-based baseline; which features drive it and which layers it picks."""

from __future__ import annotations

import copy
import os

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from xtl import analysis as an
from xtl.analysis.records import _Record
from xtl.analysis.tables import GROUPS, group_means
from xtl.errors import XtlError
from xtl.schema import VANILLA
from xtl.strategies.base import GOLD_FREE, Strategy, only_candidates, unavailable
from xtl.strategies.catalogue import make_strategy
from xtl.strategies.features import candidate_features

__all__ = ["Selection", "select", "folds", "DEFAULT_STRATEGIES"]

#: What ``xtl select`` compares by default: the paper's baselines, then the new strategies.
DEFAULT_STRATEGIES = ("coarse", "entropy", "best-on-train", "agreement", "entropy-cross", "learned",
                      "learned-logistic")


@dataclass(frozen=True)
class Selection(_Record):
    """What :func:`select` measured: the table (one row per strategy and baseline, by group),
    each strategy's choice and outcome per item, feature importances, and the folds."""

    table: pd.DataFrame
    choices: pd.DataFrame  # strategy, item_key, lang, group, src_layer, tgt_layer, correct, fold
    importances: pd.DataFrame  # strategy, feature, importance (mean over folds)
    protocol: str
    notes: list[str] = field(default_factory=list)

    def chosen_layers(self, strategy: str) -> pd.DataFrame:
        """How often ``strategy`` picked each (source, target) per group and language (vanilla
        as -1, -1): what the chosen-layers heatmap draws."""
        part = self.choices[self.choices["strategy"] == strategy]
        return part.groupby(["group", "lang", "src_layer", "tgt_layer"]).size().rename("items").reset_index()


def folds(items: pd.DataFrame, cv: int = 5, by_language: bool = False, seed: int = 0) -> dict[str, int]:
    """Item key -> fold: ``cv`` folds of shuffled items, or one fold per language
    (leave-one-language-out). Each item is in exactly one fold."""
    keys = items.drop_duplicates("item_key")
    if by_language:
        langs = sorted(keys["lang"].unique())
        if len(langs) < 2:
            raise XtlError("leave-one-language-out needs items of at least two languages")
        return {k: langs.index(l) for k, l in zip(keys["item_key"], keys["lang"])}
    if isinstance(cv, bool) or not isinstance(cv, int) or cv < 2:
        raise XtlError(f"cv must be a whole number of folds, at least 2, not {cv!r}")
    order = np.random.default_rng(seed).permutation(len(keys))
    if len(keys) < cv:
        raise XtlError(f"{len(keys)} items cannot make {cv} folds; lower cv (--cv)")
    return {keys["item_key"].iloc[k]: int(pos % cv) for pos, k in enumerate(order)}


def _lookup(df: pd.DataFrame) -> dict[tuple[str, int, int], bool]:
    return {(k, int(s), int(t)): bool(c) for k, s, t, c in
            zip(df["item_key"], df["src_layer"], df["tgt_layer"], df["correct"])}


def select(df: pd.DataFrame, strategies: Sequence["str | Strategy"] = DEFAULT_STRATEGIES, cv: int = 5,
           by_language: bool = False, seed: int = 0, n_layers: int | None = None,
           site: str | None = None, average: str = "language") -> Selection:
    """Cross-validate selection ``strategies`` on an evaluated results table of one site.

    Args:
        df: evaluated rows (:func:`xtl.evaluate` / :func:`xtl.open_run`): vanilla and swept
            configurations of every item; the strategies' candidates must be among them (a
            ``grid="cross"`` sweep holds all that the default strategies need).
        strategies: registered names (:data:`xtl.strategies.STRATEGIES`) or strategy objects.
            Left at the default, strategies whose optional packages are missing (scikit-learn for
            the learned ones) are left out with a note; named ones must be able to run.
        cv: folds over items; ``by_language`` instead leaves one language out per fold.
        seed: the folds' shuffle and the learned strategies' seed.
        average: group means over languages (the paper's) or ``"pooled"`` over items, as in
            :func:`xtl.evaluate`'s tables (one implementation: :func:`xtl.analysis.tables.group_means`).
    """
    from xtl.options import check_option

    check_option("average", average, ("language", "pooled"))
    if isinstance(df, (str, os.PathLike)):
        from xtl.evaluation.evaluated import open_run

        df = open_run(df).df
    if not isinstance(df, pd.DataFrame):
        raise XtlError(f"select needs an evaluated results table (xtl.evaluate(...) or open_run(store).df) or a "
                       f"store's path, not {type(df).__name__}")
    if "correct" not in df.columns:
        raise XtlError("the results are not evaluated; pass xtl.evaluate(results, task) or open_run(store).df")
    n = n_layers or (int(df["n_layers"].max()) if "n_layers" in df.columns else None)
    if not n:
        raise XtlError("the model's depth is not known; pass n_layers=N")
    site = site or (str(df["site"].dropna().iloc[0]) if "site" in df.columns else "mlp")
    items = df[df["is_vanilla"]].drop_duplicates("item_key")[["item_key", "lang", "group"]]
    fold_of = folds(items, cv, by_language, seed)
    truth = _lookup(df)
    objs = [copy.deepcopy(make_strategy(s, seed)) for s in strategies]  # fitting never changes the caller's
    why_not = [unavailable(s) for s in objs]
    cannot = [why for why in why_not if why]
    if cannot and strategies is not DEFAULT_STRATEGIES:
        raise XtlError(f"{'; '.join(cannot)}; install it, or leave the strategy out")
    objs = [s for s, why in zip(objs, why_not) if not why]
    names = [s.name for s in objs]
    if len(set(names)) < len(names):
        raise XtlError(f"strategies share names {names}; give each once")
    rows, imps = [], []
    have = set(zip(df["src_layer"].astype(int), df["tgt_layer"].astype(int)))
    for strat in objs:
        configs = strat.candidates(n, site)
        lacking = [c for c in configs if (c.src, c.tgt) not in have]
        if lacking:
            raise XtlError(f"strategy {strat.name!r} needs configurations the results lack, e.g. {tuple(lacking[0])}; "
                           "sweep them (xtl sweep --grid cross, or the full grid)")
        pool = candidate_features(only_candidates(df, configs), n)
        for fold in sorted(set(fold_of.values())):
            test_keys = {k for k, f in fold_of.items() if f == fold}
            is_test = pool["item_key"].isin(test_keys)
            strat.fit(pool[~is_test], n, site)
            cost = strat.test_cost(n, site)  # after fitting: best-on-train runs one configuration
            chosen = strat.choose(pool.loc[is_test, list(c for c in GOLD_FREE if c in pool.columns)], n, site)
            imps.extend({"strategy": strat.name, "feature": f, "importance": v, "fold": fold}
                        for f, v in strat.importances().items())
            for key in test_keys:
                c = chosen.get(key, VANILLA)
                right = truth.get((key, c.src, c.tgt))
                if right is None:
                    raise XtlError(f"strategy {strat.name!r} chose {tuple(c)} for {key}, which the results lack")
                rows.append({"strategy": strat.name, "item_key": key, "src_layer": c.src, "tgt_layer": c.tgt,
                             "correct": right, "fold": fold, "cost": cost})
    choices = pd.DataFrame(rows).merge(items, on="item_key")
    importances = (pd.DataFrame(imps).groupby(["strategy", "feature"])["importance"].mean().reset_index()
                   .sort_values(["strategy", "importance"], ascending=[True, False])
                   if imps else pd.DataFrame(columns=["strategy", "feature", "importance"]))
    table, notes = _table(df, choices, names, n, average)
    notes += [f"Not run: {why}." for why in cannot]
    protocol = (f"leave-one-language-out ({len(set(fold_of.values()))} folds)" if by_language
                else f"{cv}-fold cross-validation over items (seed {seed})")
    return Selection(table, choices, importances, protocol, notes)


def _table(df: pd.DataFrame, choices: pd.DataFrame, names: list[str], n: int,
           average: str = "language") -> tuple[pd.DataFrame, list[str]]:
    van = df[df["is_vanilla"]].drop_duplicates("item_key")[["item_key", "lang", "group", "correct"]]
    vanilla = group_means(van, average)
    g = an.grid(df, n_layers=n, average=average)
    bounds = an.bound_by_group(g).set_index("group")
    reasons = an.upper_bounds(g).reasons
    base = choices[choices["strategy"] == "entropy-based"].set_index("item_key")["correct"] \
        if "entropy-based" in names else None
    rows = [{"Setting": "Vanilla", **vanilla, "configs/item": 0}]
    for name in names:
        part = choices[choices["strategy"] == name]
        means = group_means(part, average)
        row = {"Setting": name, **means, "configs/item": int(part["cost"].iloc[0]) if len(part) else 0}
        ordered = part.set_index("item_key").loc[van["item_key"]]["correct"].astype(float).to_numpy()
        _, lo, hi = an.bootstrap_ci(ordered)
        row["95% CI (pooled)"] = f"{lo:.1f}–{hi:.1f}"
        if base is not None and name != "entropy-based":
            row["McNemar p vs entropy-based"] = an.mcnemar(base.loc[van["item_key"]].to_numpy(bool),
                                                           ordered.astype(bool))
        rows.append(row)
    for label, key in (("SourceLast", "source_last"), ("TargetFirst", "target_first"), ("N² oracle", "oracle")):
        col = {"SourceLast": "SourceLast", "TargetFirst": "TargetFirst", "N² oracle": "oracle"}[label]
        vals = {lab: float(bounds.loc[gk, col]) if gk in bounds.index else math.nan for gk, lab in GROUPS}
        vals["Avg."] = float(bounds.loc["all", col])
        rows.append({"Setting": label, **vals, "configs/item": n * n if key == "oracle" else n})
    table = pd.DataFrame(rows).set_index("Setting")
    notes = [f"{label}: not computable on this grid: {reasons[key]}" for label, key in
             (("SourceLast", "source_last"), ("TargetFirst", "target_first"), ("N² oracle", "oracle"))
             if key in reasons]
    one_item = 100.0 / max(1, len(van))  # points one item is worth (pooled): a smaller gap is noise
    for bound, column in (("N² oracle", "gap closed to oracle (%)"), ("TargetFirst", "gap closed to TargetFirst (%)")):
        top = table.loc[bound, "Avg."]
        gap = top - vanilla["Avg."]
        if not math.isnan(top) and gap < one_item:
            notes.append(f"{column}: – because {bound} is within one item's worth ({one_item:.2g} points) of "
                         f"vanilla (gap {gap:+.2g}), so there is no gap to close")
        table[column] = [(v - vanilla["Avg."]) / gap * 100 if gap >= one_item and not math.isnan(top) and s in names
                         else math.nan for s, v in zip(table.index, table["Avg."])]
    how = ("means over languages within each group (Avg.: over all languages)" if average == "language"
           else "pooled over the items of each group (Avg.: over all items)")
    notes.append(f"Accuracies (%) are {how}; the "
                 "interval is a bootstrap over items (pooled). Bounds see every item's answer: they are not "
                 "strategies. configs/item: configurations each item must run besides vanilla.")
    return table, notes
