"""The learned strategy: a light scikit-learn model, trained on the sweeps of training items,
predicts from gold-free features whether each candidate configuration (and vanilla) answers
right; each test item takes the most likely one, so vanilla stays when no transplant is
predicted to beat it (``pip install 'xtl[select]'``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from xtl.errors import XtlError
from xtl.schema import VANILLA, Config
from xtl.strategies.base import Strategy, candidate_set, only_candidates, unavailable
from xtl.strategies.features import FEATURES

__all__ = ["Learned"]


@dataclass
class Learned(Strategy):
    """Gradient-boosted trees (``model="trees"``, default) or logistic regression
    (``"logistic"``) over :data:`xtl.strategies.features.FEATURES` of the ``kind`` candidates;
    deterministic for a ``seed``."""

    name: str = "learned"
    kind: str = "cross"
    model: str = "trees"
    seed: int = 0
    iterations: int = 150  # boosting rounds of the trees
    _fitted: Any = field(default=None, repr=False)
    _importance_data: Any = field(default=None, repr=False)  # the last fit's (x, y), for importances
    _columns: tuple[str, ...] = FEATURES
    requires = {"sklearn": "scikit-learn (pip install 'xtl[select]')"}

    def candidates(self, n_layers, site):
        return candidate_set(self.kind, n_layers)

    def fit(self, rows, n_layers, site):
        why = unavailable(self)
        if why:
            raise XtlError(why)
        rows = only_candidates(rows, self.candidates(n_layers, site))
        x, y = rows[list(self._columns)].to_numpy(float), rows["correct"].astype(int).to_numpy()
        if len(set(y)) < 2:  # every training row right (or wrong): nothing to rank by
            self._fitted = float(y[0]) if len(y) else 0.0
            return
        if self.model == "trees":
            from sklearn.ensemble import HistGradientBoostingClassifier

            clf = HistGradientBoostingClassifier(max_iter=self.iterations, learning_rate=0.08, max_leaf_nodes=15,
                                                 l2_regularization=1.0, random_state=self.seed)
        elif self.model == "logistic":
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
        else:
            raise XtlError(f"model must be 'trees' or 'logistic', not {self.model!r}")
        self._fitted = clf.fit(x, y)
        self._importance_data = (x, y)

    def _scores(self, rows: pd.DataFrame) -> np.ndarray:
        if self._fitted is None:
            raise XtlError("the learned strategy must be fitted on training items first")
        if isinstance(self._fitted, float):
            return np.where(rows["is_vanilla"].to_numpy(), 1.0, 0.0)  # no signal: keep vanilla
        return self._fitted.predict_proba(rows[list(self._columns)].to_numpy(float))[:, 1]

    def choose(self, rows, n_layers, site):
        rows = only_candidates(rows, self.candidates(n_layers, site))
        scored = rows.assign(_p=self._scores(rows), _v=~rows["is_vanilla"])
        best = scored.sort_values(["item_key", "_p", "_v", "src_layer", "tgt_layer"],
                                  ascending=[True, False, True, True, True]).drop_duplicates("item_key")
        return {r.item_key: VANILLA if r.is_vanilla else Config(int(r.src_layer), int(r.tgt_layer))
                for r in best.itertuples()}

    def importances(self) -> dict[str, float]:
        """Permutation importance of each feature on the training rows (drop in accuracy of the
        right/wrong prediction when the feature is shuffled), or |coefficient| for logistic."""
        if self._fitted is None or isinstance(self._fitted, float):
            return {}
        if self.model == "logistic":
            coef = np.abs(self._fitted[-1].coef_[0])
            return dict(zip(self._columns, map(float, coef)))
        from sklearn.inspection import permutation_importance

        x, y = self._importance_data
        if len(y) > 3000:  # a seeded sample keeps it quick on big sweeps
            pick = np.random.default_rng(self.seed).choice(len(y), 3000, replace=False)
            x, y = x[pick], y[pick]
        got = permutation_importance(self._fitted, x, y, n_repeats=3, random_state=self.seed)
        return dict(zip(self._columns, map(float, got.importances_mean)))
