"""Case studies: the full N x N grid of one prompt pair, scored (the paper's per-item upper bound)."""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from transformer_lens import HookedTransformer

from xtl.errors import XtlError
from xtl.patching.sites import Site

__all__ = ["CaseStudy", "case_study"]


@dataclass
class CaseStudy:
    """The full N x N grid of one pair: which configurations answer right."""

    site: str
    gold: str
    correct: np.ndarray  # [src, tgt] bool
    responses: np.ndarray  # [src, tgt] str
    vanilla_response: str
    vanilla_correct: bool
    src_layers: list[int]
    tgt_layers: list[int]

    @property
    def source_wise(self) -> np.ndarray:
        """Per source layer i: does any target layer answer right (equation 4 for one item)."""
        return self.correct.any(axis=1)

    @property
    def target_wise(self) -> np.ndarray:
        """Per target layer j: does any source layer answer right (equation 5 for one item)."""
        return self.correct.any(axis=0)

    @property
    def over_guidance(self) -> list[tuple[int, int]]:
        """Configurations that turn a right vanilla answer wrong."""
        if not self.vanilla_correct:
            return []
        return [(self.src_layers[a], self.tgt_layers[b]) for a, b in zip(*np.nonzero(~self.correct))]

    @property
    def right(self) -> list[tuple[int, int]]:
        return [(self.src_layers[a], self.tgt_layers[b]) for a, b in zip(*np.nonzero(self.correct))]

    def figure(self):
        from xtl.analysis.views import CaseGrid
        from xtl.figures.plots import case_grid

        return case_grid(CaseGrid(self.correct, self.src_layers, self.tgt_layers, self.responses,
                                  self.vanilla_correct), f"Case study ({self.site}), gold {self.gold}")


def _default_scorer(gold: str, labels: Sequence[str] | None):
    from xtl.evaluation.scoring import score_choice, score_qa

    if labels is None:
        if len(gold) == 1 and gold in string.ascii_uppercase:
            labels = list(string.ascii_uppercase[:max(4, string.ascii_uppercase.index(gold) + 1)])
        elif gold.isdigit() and len(gold) == 1:
            labels = [str(d) for d in range(1, 10)]
    if labels is None:
        return lambda r: score_qa(r, gold)
    return lambda r: score_choice(r, gold, list(labels))


def case_study(model: HookedTransformer, source_prompt: str, target_prompt: str, gold: str,
               site: str = "mlp", labels: Sequence[str] | None = None, max_new_tokens: int = 20,
               batch_size: int = 512, chat: bool = False, progress: bool = False,
               scorer: "Callable[[str], bool] | None" = None) -> CaseStudy:
    """Run every (source, target) layer pair for one prompt pair through the sweep engine and
    score each response: multiple choice when ``gold`` is an option label (``labels``, default
    A-D... or 1-9), otherwise gold-substring QA; or with ``scorer`` (e.g. a dataset's own rule,
    ``lambda r: xtl.evaluation.score(item, r)``)."""
    from xtl.engine.run import sweep

    if not gold:
        raise XtlError("give the gold answer, e.g. gold='A'")
    df = sweep(model, [(source_prompt, target_prompt, "case")], site=site, max_new_tokens=max_new_tokens,
               batch_size=batch_size, chat=chat, progress=progress)
    scorer = scorer or _default_scorer(gold, labels)
    van = df[df["is_vanilla"]].iloc[0]
    rest = df[~df["is_vanilla"]]
    srcs = sorted(rest["src_layer"].unique().tolist())
    tgts = sorted(rest["tgt_layer"].unique().tolist())
    correct = np.zeros((len(srcs), len(tgts)), bool)
    responses = np.empty((len(srcs), len(tgts)), dtype=object)
    for s, t, r in zip(rest["src_layer"], rest["tgt_layer"], rest["response"]):
        correct[srcs.index(s), tgts.index(t)] = scorer(r)
        responses[srcs.index(s), tgts.index(t)] = r
    return CaseStudy(str(Site.parse(site)), gold, correct, responses, van["response"],
                     bool(scorer(van["response"])), srcs, tgts)
