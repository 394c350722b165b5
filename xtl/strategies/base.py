"""Instance-aware layer selection: a strategy maps each item to one configuration (or vanilla)
from what is known without its answer — the model's outputs and confidences for a set of
candidate configurations — and says how many configurations it must run per item (its cost).

Every strategy sees the rows of its candidate configurations (and vanilla) with their gold-free
columns only (:data:`GOLD_FREE`); ``correct`` reaches :meth:`Strategy.fit`, on training items,
and nothing else. Adding a strategy is one class and one :func:`register_strategy` line.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd

from xtl.analysis.grids import grid
from xtl.analysis.selection import best_configuration, best_per_item, coarse_config
from xtl.errors import XtlError
from xtl.schema import VANILLA, Config, cross_configs
from xtl.strategies.features import FEATURES, mean_loglik

__all__ = ["Strategy", "unavailable", "Vanilla", "Fixed", "Confidence", "BestOnTrain", "Agreement", "candidate_set",
           "only_candidates", "GOLD_FREE"]

#: Columns a strategy may read when it chooses (no ``correct``, no gold).
GOLD_FREE = ("item_key", "lang", "group", "src_layer", "tgt_layer", "is_vanilla", "entropy", "margin",
             "loglik", "n_tokens", "answer_key", *FEATURES)


def candidate_set(kind: str, n_layers: int) -> list[Config]:
    """``paper``: sources 0 and N−1 into target 0 (section F); ``cross``: the 2N − 1 of the
    last source into every target and every source into target 0; ``full``: all N²."""
    last = n_layers - 1
    if kind == "paper":
        return [Config(0, 0), Config(last, 0)]
    if kind == "cross":
        return cross_configs(range(n_layers), range(n_layers))
    if kind == "full":
        return [Config(i, j) for i in range(n_layers) for j in range(n_layers)]
    raise XtlError(f"candidates must be 'paper', 'cross' or 'full', not {kind!r}")


@dataclass
class Strategy:
    """The interface: :meth:`candidates` (the configurations run per item: the cost),
    :meth:`fit` on training rows (with ``correct``), :meth:`choose` on test rows (without)."""

    name: str = "strategy"
    #: Optional packages the strategy needs: import name -> what to install.
    requires: ClassVar[dict[str, str]] = {}

    def candidates(self, n_layers: int, site: str) -> list[Config]:
        raise NotImplementedError

    def fit(self, rows: pd.DataFrame, n_layers: int, site: str) -> None:  # noqa: ARG002
        """Learn from training items (rows carry ``correct``); most strategies need nothing."""

    def choose(self, rows: pd.DataFrame, n_layers: int, site: str) -> dict[str, Config]:
        """Item key -> chosen configuration (:data:`xtl.schema.VANILLA` for no transplant)."""
        raise NotImplementedError

    def importances(self) -> dict[str, float]:
        """Feature -> weight in the last fit (learned strategies); empty otherwise."""
        return {}

    def test_cost(self, n_layers: int, site: str) -> int:
        """Configurations a test item runs besides vanilla, after :meth:`fit`."""
        return len(self.candidates(n_layers, site))


def unavailable(strategy: Strategy) -> str | None:
    """Why ``strategy`` cannot run here — the optional packages it needs that are not installed,
    with what to install — or None when it can."""
    missing = [hint for module, hint in strategy.requires.items() if importlib.util.find_spec(module) is None]
    return f"{strategy.name} needs {'; '.join(missing)}" if missing else None


@dataclass
class Vanilla(Strategy):
    """No transplant (the baseline every gain is measured from)."""

    name: str = "vanilla"

    def candidates(self, n_layers: int, site: str) -> list[Config]:
        return []

    def choose(self, rows, n_layers, site):
        return {k: VANILLA for k in rows["item_key"].unique()}


@dataclass
class Fixed(Strategy):
    """One configuration for every item: Table 2's coarse layers of the site by default."""

    name: str = "coarse"
    config: Config | None = None

    def _config(self, n_layers: int, site: str) -> Config:
        return self.config or Config(*coarse_config(site, n_layers))

    def candidates(self, n_layers, site):
        return [self._config(n_layers, site)]

    def choose(self, rows, n_layers, site):
        return {k: self._config(n_layers, site) for k in rows["item_key"].unique()}


def only_candidates(rows: pd.DataFrame, configs: list[Config]) -> pd.DataFrame:
    """Vanilla rows and the rows of ``configs`` (what a strategy of that cost may look at)."""
    wanted = set(configs)
    keep = rows["is_vanilla"] | pd.Series([Config(int(s), int(t)) in wanted for s, t in
                                           zip(rows["src_layer"], rows["tgt_layer"])], index=rows.index)
    return rows[keep]


def _best_by(rows: pd.DataFrame, key: str, ascending: bool) -> dict[str, Config]:
    """Per item, the configuration of :func:`xtl.analysis.selection.best_per_item`."""
    return {r.item_key: Config(int(r.src_layer), int(r.tgt_layer))
            for r in best_per_item(rows, key, ascending).itertuples()}


@dataclass
class Confidence(Strategy):
    """Section F's entropy-based choice, generalised: among ``candidates`` take the
    configuration of the most confident first token (lowest ``entropy``, highest ``margin``)
    or the most likely response (highest mean ``loglik`` per token; an empty response has none
    and comes last)."""

    name: str = "entropy-based"
    kind: str = "paper"
    score: str = "entropy"

    def __post_init__(self) -> None:
        if self.score not in ("entropy", "margin", "loglik"):
            raise XtlError(f"score must be 'entropy', 'margin' or 'loglik', not {self.score!r}")

    def candidates(self, n_layers, site):
        return candidate_set(self.kind, n_layers)

    def choose(self, rows, n_layers, site):
        rows = only_candidates(rows, self.candidates(n_layers, site))
        if self.score == "loglik":
            rows = rows.assign(_score=mean_loglik(rows))  # an empty response: NaN, ranked last
            return _best_by(rows, "_score", ascending=False)
        return _best_by(rows, self.score, ascending=self.score == "entropy")


@dataclass
class BestOnTrain(Strategy):
    """The candidate configuration with the best accuracy on the training items (mean over
    languages), for every test item: one configuration per item at test time."""

    name: str = "best-on-train"
    kind: str = "cross"
    chosen: Config | None = None

    def candidates(self, n_layers, site):
        return candidate_set(self.kind, n_layers)  # what it learns from (the same before and after fit)

    def test_cost(self, n_layers, site):
        return 1 if self.chosen is not None else len(self.candidates(n_layers, site))

    def fit(self, rows, n_layers, site):
        src, tgt, _ = best_configuration(grid(only_candidates(rows, candidate_set(self.kind, n_layers)),
                                              n_layers=n_layers))
        self.chosen = Config(src, tgt)

    def choose(self, rows, n_layers, site):
        if self.chosen is None:
            raise XtlError("best-on-train must be fitted on training items first")
        return {k: self.chosen for k in rows["item_key"].unique()}


@dataclass
class Agreement(Strategy):
    """No training: the answer most candidate configurations (and vanilla) give; vanilla when
    it gives that answer, else the most confident configuration that does."""

    name: str = "agreement"
    kind: str = "cross"

    def candidates(self, n_layers, site):
        return candidate_set(self.kind, n_layers)

    def choose(self, rows, n_layers, site):
        out = {}
        rows = only_candidates(rows, self.candidates(n_layers, site))
        for key, part in rows.groupby("item_key", sort=False):
            counts = part["answer_key"].value_counts()
            top = counts[counts == counts.max()].index
            van = part[part["is_vanilla"]]
            if len(van) and van["answer_key"].iloc[0] in top:
                out[key] = VANILLA
                continue
            pick = part[~part["is_vanilla"] & part["answer_key"].isin(top)].sort_values(
                ["entropy", "src_layer", "tgt_layer"], na_position="last").iloc[0]
            out[key] = Config(int(pick["src_layer"]), int(pick["tgt_layer"]))
        return out
