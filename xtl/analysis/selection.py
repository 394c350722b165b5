"""Layer-selection strategies of the paper: coarse-grained (Table 2), entropy-based (section F),
and best-on-PilotSet scored on held-out items."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from xtl.analysis.accuracy import config_accuracy
from xtl.analysis.grids import Grid, _need
from xtl.analysis.records import _Record
from xtl.errors import XtlError

__all__ = ["coarse_config", "best_per_item", "entropy_select", "best_configuration", "HeldOut", "held_out", "CrossFit",
           "cross_fit"]


def coarse_config(site: str, n_layers: int) -> tuple[int, int]:
    """Table 2's coarse-grained (source, target): attn last -> first (understanding),
    mlp first -> first (generation and culture)."""
    kind = str(site).split(":")[0]
    if kind in ("attn", "attn-authors"):
        return n_layers - 1, 0
    if kind == "mlp":
        return 0, 0
    raise XtlError(f"the coarse-grained strategy is defined for attn and mlp, not {site!r}")


def best_per_item(rows: pd.DataFrame, key: str, ascending: bool) -> pd.DataFrame:
    """Per item, the transplanted row with the best ``key`` (lowest when ``ascending``; ties: the
    lowest source, then target; missing values last). The one rule behind section F's entropy
    choice and every confidence strategy of :mod:`xtl.strategies`."""
    cand = rows[~rows["is_vanilla"]].sort_values(["item_key", key, "src_layer", "tgt_layer"],
                                                 ascending=[True, ascending, True, True], na_position="last")
    return cand.drop_duplicates("item_key")


def entropy_select(df: pd.DataFrame, n_layers: int) -> pd.DataFrame:
    """Section F's entropy-based choice: target = first layer, source in {first, last}; keep
    per item the configuration whose first-token entropy is lower. One row per item."""
    _need(df, ["item_key", "src_layer", "tgt_layer", "entropy", "correct"])
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        raise XtlError(f"n_layers must be the model's depth (an int), not {n_layers!r}")
    if "n_layers" in df.columns and df["n_layers"].notna().any() and int(df["n_layers"].max()) != n_layers:
        raise XtlError(f"n_layers={n_layers}, but the results are of a {int(df['n_layers'].max())}-layer model; "
                       f"pass n_layers={int(df['n_layers'].max())}")
    cand = df[(~df["is_vanilla"]) & (df["tgt_layer"] == 0) & df["src_layer"].isin([0, n_layers - 1])]
    if cand.empty:
        raise XtlError("entropy selection needs configurations (0, 0) and (N-1, 0) in the results")
    return best_per_item(cand, "entropy", ascending=True)


def best_configuration(g: Grid) -> tuple[int, int, float]:
    """The configuration of ``g`` with the highest accuracy (ties: the lowest source, then target)
    and that accuracy (%): "the best configuration on the PilotSet" of the report, the paper
    tables and ``xtl select``'s best-on-train."""
    acc = np.where(np.isnan(g.accuracy), -np.inf, g.accuracy)
    if not np.isfinite(acc).any():
        raise XtlError("no configuration has results to choose from")
    si, ti = np.unravel_index(int(np.argmax(acc)), acc.shape)
    return int(g.src_layers[si]), int(g.tgt_layers[ti]), 100 * float(acc[si, ti])


@dataclass(frozen=True)
class HeldOut(_Record):
    """The best PilotSet configuration and its accuracy on unseen items (%)."""

    src_layer: int
    tgt_layer: int
    pilot_accuracy: float
    pilot_vanilla: float
    unseen_accuracy: float
    unseen_vanilla: float
    unseen_gain: float


def held_out(pilot: Grid, unseen: Grid) -> HeldOut:
    """Pick the best configuration on the PilotSet and score it on unseen items: an honest
    gain to set beside the (optimistic) oracle."""
    src, tgt, pilot_acc = best_configuration(pilot)
    score = config_accuracy(unseen, src, tgt)
    return HeldOut(src, tgt, pilot_acc, 100 * pilot.vanilla_accuracy, score,
                   100 * unseen.vanilla_accuracy, score - 100 * unseen.vanilla_accuracy)


@dataclass(frozen=True)
class CrossFit(_Record):
    """The best single configuration scored out of sample: chosen on one half of the items and
    scored on the other, both ways round; ``accuracy`` scores every item by the configuration
    chosen on the half it is not in (%)."""

    folds: tuple[HeldOut, HeldOut]
    accuracy: float
    vanilla: float

    @property
    def gain(self) -> float:
        return self.accuracy - self.vanilla


def question_id(item_key: str) -> str:
    """The question an item key asks (``demo/de/capital`` -> ``capital``): parallel items of one
    question in several languages share it."""
    return str(item_key).rsplit("/", 1)[-1]


def cross_fit(g: Grid) -> CrossFit:
    """The best configuration's accuracy without the in-sample maximum: split the questions in
    two halves (every other question id, so one question's translations stay together), choose
    the best configuration on each half (:func:`held_out`) and score it on the other."""
    ids = [question_id(k) for k in g.items]
    first = set(sorted(set(ids))[::2])
    mask = np.array([i in first for i in ids])
    if mask.all() or not mask.any():
        raise XtlError("a held-out choice needs at least two different questions")
    a, b = g.subset(mask), g.subset(~mask)
    folds = (held_out(a, b), held_out(b, a))
    chosen = np.empty(len(g.items))
    for fold, on in zip(folds, (~mask, mask)):  # the pair chosen on one half scores the other
        chosen[on] = g.correct[on, g.src_layers.index(fold.src_layer), g.tgt_layers.index(fold.tgt_layer)]
    return CrossFit(folds, 100 * float(g.mean(chosen)), 100 * g.vanilla_accuracy)
