"""Case studies: the full N x N grid of one prompt pair, scored (the paper's per-item upper bound)."""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from xtl.models.backends import Model

from xtl._calls import keyword_call
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
    margin: np.ndarray | None = None  # [src, tgt] first-token log-prob of the gold label minus the best other label's
    vanilla_margin: float = float("nan")

    @property
    def best(self) -> tuple[int, int] | None:
        """The configuration to show: the right one with the largest gold margin (the first
        right one without margins); None when no configuration answers right."""
        if not self.correct.any():
            return None
        if self.margin is None or not np.isfinite(self.margin[self.correct]).any():
            a, b = np.argwhere(self.correct)[0]
        else:
            masked = np.where(self.correct, self.margin, -np.inf)
            a, b = np.unravel_index(int(np.argmax(masked)), masked.shape)
        return self.src_layers[int(a)], self.tgt_layers[int(b)]

    @property
    def closest(self) -> tuple[int, int] | None:
        """Where no configuration answers right: the one with the largest gold margin (None
        without margins)."""
        if self.margin is None or not np.isfinite(self.margin).any():
            return None
        a, b = np.unravel_index(int(np.nanargmax(self.margin)), self.margin.shape)
        return self.src_layers[int(a)], self.tgt_layers[int(b)]

    def response(self, src: int, tgt: int) -> str:
        return str(self.responses[self.src_layers.index(src), self.tgt_layers.index(tgt)])

    def text_grid(self, mark: tuple[int, int] | None = None) -> str:
        """Right (``#``) and wrong (``.``) over source (rows) x target (columns) layers, ``@`` at
        ``mark``: the grid in a terminal."""
        width = max(len(str(x)) for x in self.src_layers)
        tens = "".join(str(t // 10) if t % 10 == 0 and t else " " for t in self.tgt_layers)
        ones = "".join(str(t % 10) for t in self.tgt_layers)
        lines = [f"{'':>{width}}  {tens}".rstrip(), f"{'':>{width}}  {ones}"]
        for a, src in enumerate(self.src_layers):
            cells = "".join("@" if mark == (src, tgt) else "#" if self.correct[a, b] else "."
                            for b, tgt in enumerate(self.tgt_layers))
            lines.append(f"{src:>{width}}  {cells}")
        return "\n".join(line for line in lines if line.strip())

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
        labels = _labels(gold)
    if labels is None:
        return lambda r: score_qa(r, gold)
    return lambda r: score_choice(r, gold, list(labels))


@keyword_call("xtl.case_study", "xtl.case_study(model, source=..., target=..., gold=..., site=...)",
              legacy=("source", "target", "gold", "site", "labels", "max_new_tokens", "batch_size", "chat",
                      "progress", "scorer"),
              renamed={"source_prompt": "source", "target_prompt": "target"})
def case_study(model: Model, *, source: str, target: str, gold: str,
               site: str = "mlp", labels: Sequence[str] | None = None, max_new_tokens: int = 20,
               batch_size: int | None = None, chat: bool | None = None, progress: bool = False,
               scorer: "Callable[[str], bool] | None" = None, mode: str = "generate",
               candidates: Sequence[str] | None = None) -> CaseStudy:
    """Run every (source, target) layer pair for one prompt pair through the sweep engine and
    score each response: multiple choice when ``gold`` is an option label (``labels``, default
    A-D... or 1-9), otherwise gold-substring QA; or with ``scorer`` (e.g. a dataset's own rule,
    ``lambda r: xtl.evaluation.score(item, r)``). With option labels, each configuration's gold
    margin (first-token log-prob of the gold label minus the best other label's) is kept too.

    ``mode="logits"`` generates nothing: each configuration answers the label whose first token
    (of ``candidates``, one string per label, default the labels themselves, e.g. ``" A"`` after a
    prompt ending in ``:``) is the most likely, and ``responses`` hold that label.

    Everything after the model is keyword-only:
    ``xtl.case_study(model, source=src, target=tgt, gold="B", site="mlp")``."""
    from xtl.engine.run import sweep
    from xtl.engine.settings import candidate_token_ids

    if not gold:
        raise XtlError("give the gold answer, e.g. gold='A'")
    choices = list(labels) if labels is not None else _labels(gold)
    strings = list(candidates) if candidates is not None else choices
    if candidates is not None and (choices is None or len(strings) != len(choices)):
        raise XtlError(f"give one candidate string per label {choices}, not {list(candidates)}")
    try:
        candidate_token_ids(model, strings or [])
    except XtlError:  # labels whose first tokens coincide: no margins
        if mode == "logits":
            raise
        choices = strings = []
    if mode == "logits" and not choices:
        raise XtlError("mode='logits' needs option labels (labels=['A', 'B', 'C'] or a gold such as 'B')")
    df = sweep(model, [(source, target, "case")], site=site, max_new_tokens=max_new_tokens,
               batch_size=batch_size, chat=chat, progress=progress, candidates=strings or (), mode=mode)
    if mode == "logits":  # the answer is the most likely label
        df["response"] = [choices[int(np.argmax(lp))] for lp in df["cand_logprobs"]]
        scorer = scorer or (lambda r: r == gold)
    scorer = scorer or _default_scorer(gold, labels)
    van = df[df["is_vanilla"]].iloc[0]
    rest = df[~df["is_vanilla"]]
    srcs = sorted(rest["src_layer"].unique().tolist())
    tgts = sorted(rest["tgt_layer"].unique().tolist())
    correct = np.zeros((len(srcs), len(tgts)), bool)
    responses = np.empty((len(srcs), len(tgts)), dtype=object)
    margin = np.full((len(srcs), len(tgts)), np.nan) if choices else None
    for s, t, r, lp in zip(rest["src_layer"], rest["tgt_layer"], rest["response"], rest["cand_logprobs"]):
        correct[srcs.index(s), tgts.index(t)] = scorer(r)
        responses[srcs.index(s), tgts.index(t)] = r
        if margin is not None:
            margin[srcs.index(s), tgts.index(t)] = _gold_margin(lp, choices, gold)
    return CaseStudy(str(Site.parse(site)), gold, correct, responses, van["response"],
                     bool(scorer(van["response"])), srcs, tgts, margin,
                     _gold_margin(van["cand_logprobs"], choices, gold) if choices else float("nan"))


def _labels(gold: str) -> list[str] | None:
    if len(gold) == 1 and gold in string.ascii_uppercase:
        return list(string.ascii_uppercase[:max(4, string.ascii_uppercase.index(gold) + 1)])
    if gold.isdigit() and len(gold) == 1:
        return [str(d) for d in range(1, 10)]
    return None


def _gold_margin(logprobs: Sequence[float], choices: Sequence[str], gold: str) -> float:
    """First-token log-prob of ``gold`` minus the best other choice's."""
    if gold not in choices or len(choices) < 2:
        return float("nan")
    values = dict(zip(choices, logprobs))
    return float(values[gold] - max(v for c, v in values.items() if c != gold))
