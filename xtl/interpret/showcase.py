"""The demo: the built-in pair's whole N x N grid, scored, the best configuration next to vanilla.

What ``xtl demo`` shows a newcomer is the paper's point on one question: some (source, target)
layer pairs turn the target prompt's wrong answer right, and where they lie. Every configuration
runs through the sweep engine (:func:`xtl.interpret.case_study`), is scored with the authors'
multiple-choice rule (the gold label present, no other label), and the best right one -- the
largest first-token margin of the gold label over the other labels -- is decoded layer by layer
beside vanilla (the paper's Figure 8 view).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xtl.interpret.case import CaseStudy, case_study
from xtl.interpret.logit_lens import LensResult, Patch, lens
from xtl.models.backends import Model

__all__ = ["Demo", "demo"]


@dataclass
class Demo:
    """The demo's results: the scored grid and the logit lens of vanilla and of the best configuration."""

    pair: dict[str, Any]
    model_name: str
    case: CaseStudy
    vanilla_lens: LensResult
    best_lens: LensResult | None  # the best configuration's, or the closest one's where none is right

    @property
    def n_configs(self) -> int:
        return int(self.case.correct.size)

    @property
    def n_right(self) -> int:
        return int(self.case.correct.sum())

    def summary(self) -> str:
        """What the terminal shows: vanilla, how many configurations answer right, the best one,
        the right/wrong grid."""
        c, pair = self.case, self.pair
        lines = [f"question ({pair.get('target_lang', 'target')}, gold ({c.gold})), source prompt in "
                 f"{pair.get('source_lang', 'another language')}; site {c.site}, {self.n_configs} configurations",
                 f"vanilla     : {c.vanilla_response!r} -> {'right' if c.vanilla_correct else 'wrong'}",
                 f"right       : {self.n_right} of {self.n_configs} configurations "
                 f"({100 * self.n_right / max(1, self.n_configs):.0f}%) answer right under the authors' rule"]
        best = c.best
        shown = best or c.closest
        if best is None:
            lines.append("best        : no configuration answers this question right on this model"
                         + (" (nor does vanilla)" if not c.vanilla_correct else "")
                         + "; try another --site or a larger --model")
        if shown is not None:
            a, b = c.src_layers.index(shown[0]), c.tgt_layers.index(shown[1])
            margin = "" if c.margin is None else f", gold margin {c.margin[a, b]:+.2f} (vanilla {c.vanilla_margin:+.2f})"
            label = "best        : " if best is not None else "closest     : "
            lines.append(f"{label}source layer {shown[0]} -> target layer {shown[1]}{margin}: {c.response(*shown)!r}"
                         + ("" if best is not None else " (still wrong)"))
        lines.append("grid        : rows source layer i, columns target layer j; # right, . wrong, @ "
                     + ("best" if best is not None else "closest"))
        lines.append(c.text_grid(shown))
        return "\n".join(lines)

    def figures(self) -> list:
        """The page's figures: right/wrong over the grid as a gain heatmap, then the logit lens of
        vanilla and of the best configuration."""
        import numpy as np

        from xtl.analysis.views import GainPanel
        from xtl.figures.plots import gain_heatmap

        c = self.case
        acc = 100.0 * c.correct
        vanilla = 100.0 * c.vanilla_correct
        panel = GainPanel("built-in pair", acc - vanilla, acc, np.ones_like(acc), vanilla, c.src_layers,
                          c.tgt_layers, np.array([[r[:60] for r in row] for row in c.responses], dtype=object))
        figs = [gain_heatmap([panel], f"Which configurations answer right ({c.site}; gain over vanilla, points)")]
        figs.append(self.vanilla_lens.figure())
        if self.best_lens is not None:
            figs.append(self.best_lens.figure())
        return figs


def demo(model: Model, pair: dict[str, Any] | None = None, site: str = "mlp", max_new_tokens: int = 20,
         chat: bool | None = None, progress: bool = True) -> Demo:
    """Sweep, score and explain one pair (default: xtl's built-in zh -> en question)."""
    from xtl.tasks.registry import builtin_pair

    pair = pair or builtin_pair()
    labels = sorted(pair.get("options", {})) or None
    case = case_study(model, source=pair["source"], target=pair["target"], gold=pair["gold"], site=site, labels=labels,
                      max_new_tokens=max_new_tokens, chat=chat, progress=progress)
    vanilla_lens = lens(model, pair["target"], positions="generated", max_new_tokens=max_new_tokens, chat=chat)
    vanilla_lens.title = "Logit lens — vanilla"
    best_lens = None
    shown = case.best or case.closest
    if shown is not None:
        i, j = shown
        best_lens = lens(model, pair["target"], transplant=Patch(pair["source"], i, j, site), positions="generated",
                         max_new_tokens=max_new_tokens, chat=chat)
        what = "best" if case.best is not None else "closest (still wrong)"
        best_lens.title = f"Logit lens — transplanted, {what} ({case.site}: source {i} → target {j})"
    return Demo(pair, model.cfg.model_name, case, vanilla_lens, best_lens)
