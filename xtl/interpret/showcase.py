"""The demo: the paper's finding on one question and in miniature on a small parallel set.

``xtl demo`` first sweeps the built-in question's whole N x N grid of (source, target) layer
pairs and shows how far each moves the model toward the gold option (the gold's first-token
margin minus vanilla's), which answer right, and the logit lens of the best (or closest) one
beside vanilla's (the paper's Figure 8). Then it sweeps the demo set shipped with xtl
(:mod:`xtl.tasks.demo_set`) and reports vanilla, the best single pair chosen on half of the
questions and scored on the other half, and the instance-aware upper bounds (section E, Table
4), each beside the bound its right answers would give had they fallen on random items.

By default (``mode="auto"``) each configuration answers the option whose first token is the most
likely (the demo model, a base model, lists the options when it generates), and where the prompts
go through the chat template (``chat=True``, or an ``xtl sft`` folder trained so) the greedy
response is scored with the authors' rule, as the paper does for instruction models;
``mode="logits"`` or ``"generate"`` chooses either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from xtl.errors import XtlError
from xtl.interpret.case import CaseStudy, case_study
from xtl.interpret.logit_lens import LensResult, Patch, lens
from xtl.models.backends import Model

__all__ = ["Demo", "DemoSet", "demo", "demo_set", "set_layers", "INTRO", "LENS_STEPS", "SET_ITEMS", "SET_STEP"]

#: What a newcomer needs to read the page and the terminal.
INTRO = ("A transplant takes a site's activation (here the MLP output: the site) at the last prompt token of the "
         "source prompt, at source layer i, and writes it over the same site at the last prompt token of the "
         "target prompt, at target layer j; the target prompt is then answered as usual.\n"
         "Every (i, j) pair is one configuration: N layers give N × N of them, drawn as heatmaps with the "
         "source layer down and the target layer across.")

#: Generated steps shown by the demo's logit lens (columns that stay readable at 900 px).
LENS_STEPS = 6

#: Questions per language `xtl demo` sweeps by default (6 of 10 in 4 languages: 24 items).
SET_ITEMS = 6

#: The demo set is swept on every SET_STEP-th layer (and the last): a coarse grid, fast on a CPU.
SET_STEP = 3


def set_layers(n_layers: int, step: int = SET_STEP) -> list[int]:
    """The layers the demo set is swept on, as sources and as targets: every ``step``-th layer
    from 0, and the last (``set_layers(18, 3)`` -> 0 3 6 9 12 15 17)."""
    if step < 1:
        raise XtlError(f"the demo set's layer step must be at least 1, not {step}")
    return sorted(set(range(0, n_layers, step)) | {n_layers - 1})


def rule_text(mode: str) -> str:
    """How a configuration's answer is chosen, in words, for the terminal."""
    return ("the option with the most likely first token" if mode == "logits"
            else "the authors' rule on the greedy response")


def demo_mode(model: Model, mode: str, chat: bool | None) -> str:
    """``auto``: the authors' generation rule where the model answers in the asked format (its
    prompts go through the chat template: ``chat=True``, or an ``xtl sft`` folder trained so),
    else the logits among the options (a base model lists the options instead of answering)."""
    from xtl.options import MODES, check_option
    from xtl.patching.prompts import resolve_chat

    check_option("mode", mode, ("auto", *MODES))
    if mode != "auto":
        return mode
    return "generate" if resolve_chat(model, chat) else "logits"


def check_option_letters(model: Model, labels: Sequence[str]) -> None:
    """Refuse, before any sweep, a tokenizer that cannot tell the demo set's option letters apart
    by their first token (a letter it maps to the unknown token, or several to one token)."""
    from xtl.engine.settings import candidate_token_ids

    try:
        ids = candidate_token_ids(model, labels)
    except XtlError as exc:
        raise XtlError(f"{model.cfg.model_name}'s vocabulary does not give the demo set's options {', '.join(labels)} "
                       f"distinct first tokens ({exc}); run the single question only: --no-set") from None
    unk = getattr(model.tokenizer, "unk_token_id", None)
    lost = [label for label, i in zip(labels, ids) if unk is not None and i == unk]
    if lost:
        raise XtlError(f"{model.cfg.model_name}'s vocabulary lacks the demo set's option letter(s) {', '.join(lost)} "
                       "(they map to its unknown token); run the single question only: --no-set")


@dataclass
class DemoSet:
    """The demo set swept: its evaluated results table and what it shows."""

    results: Any  # the evaluated results table (pandas DataFrame)
    finding: Any  # xtl.analysis.finding.Finding
    panels: list  # accuracy-gain panels (all, then each language)
    margins: list  # margin-gain panels (all, then each language); empty without margins
    mode: str = "logits"

    def summary(self) -> str:
        return self.finding.summary(rule_text(self.mode))

    def figures(self) -> list:
        """The accuracy gain over (source, target) (the paper's Figure 3 view) and the bounds as
        bars beside vanilla and the held-out pair (Table 4's rows)."""
        from xtl.figures.plots import finding_bars, gain_heatmap, margin_heatmap

        f1 = self.finding.cross.folds[0]
        figs = [gain_heatmap(self.panels, "Demo set: accuracy gain over vanilla (points)",
                             mark=(f1.src_layer, f1.tgt_layer), mark_label="held-out pick")]
        if self.margins:
            figs.append(margin_heatmap(self.margins, "Demo set: gold first-token margin gain over vanilla (nats)"))
        return figs + [finding_bars(self.finding)]


@dataclass
class Demo:
    """The demo's results: the scored grid of the single question, the logit lens of vanilla
    and of the best configuration, and the demo set's finding (None with ``with_set=False``)."""

    pair: dict[str, Any]
    model_name: str
    case: CaseStudy
    vanilla_lens: LensResult
    best_lens: LensResult | None  # the best configuration's, or the closest one's where none is right
    mode: str = "logits"
    set: DemoSet | None = None

    @property
    def n_configs(self) -> int:
        return int(self.case.correct.size)

    @property
    def n_right(self) -> int:
        return int(self.case.correct.sum())

    @property
    def shown(self) -> tuple[int, int] | None:
        return self.case.best or self.case.closest

    def margin_panel(self):
        from xtl.analysis.margins import MarginPanel

        c = self.case
        if c.margin is None:
            return None
        return MarginPanel("the built-in question", c.margin - c.vanilla_margin, c.margin, c.vanilla_margin,
                           c.src_layers, c.tgt_layers, 100.0 * c.correct, self.shown,
                           "best" if c.best is not None else "closest")

    def summary(self, color: bool = False) -> str:
        """What the terminal shows: the question's vanilla, the configurations that answer right,
        the best one, the margin-gain grid; then the demo set's finding."""
        from xtl.analysis.margins import shade_grid

        c, pair = self.case, self.pair
        rule = rule_text(self.mode)
        lines = [f"question    : {pair.get('target_lang', 'target')} prompt, gold ({c.gold}); source prompt in "
                 f"{pair.get('source_lang', 'another language')}; site {c.site}; {self.n_configs} configurations",
                 f"vanilla     : answers {c.vanilla_response!r} -> {'right' if c.vanilla_correct else 'wrong'} "
                 f"({rule}); gold margin {c.vanilla_margin:+.2f}; generates {self.vanilla_lens.response[:50]!r}",
                 f"right       : {self.n_right} of {self.n_configs} configurations "
                 f"({100 * self.n_right / max(1, self.n_configs):.0f}%) answer right"]
        best, shown = c.best, self.shown
        if best is None:
            lines.append("best        : no configuration answers this question right on this model"
                         + (" (nor does vanilla)" if not c.vanilla_correct else "")
                         + "; try another --site or a larger --model")
        if shown is not None:
            a, b = c.src_layers.index(shown[0]), c.tgt_layers.index(shown[1])
            margin = "" if c.margin is None else f", gold margin {c.margin[a, b]:+.2f} (vanilla {c.vanilla_margin:+.2f})"
            label = "best        : " if best is not None else "closest     : "
            said = "" if self.best_lens is None else f"; generates {self.best_lens.response[:50]!r}"
            lines.append(f"{label}source layer {shown[0]} -> target layer {shown[1]}{margin}: answers "
                         f"{c.response(*shown)!r}{said}" + ("" if best is not None else " (still wrong)"))
        panel = self.margin_panel()
        if panel is not None:
            lines.append("grid        : gold margin gain over vanilla; rows source layer i, columns target layer j")
            lines.append(shade_grid(panel, c.correct, color))
        else:
            lines.append("grid        : rows source layer i, columns target layer j; # right, . wrong, @ "
                         + ("best" if best is not None else "closest"))
            lines.append(c.text_grid(shown))
        if self.set is not None:
            lines += ["", "the demo set (each English question transplanted into its translations):",
                      self.set.summary()]
        return "\n".join(lines)

    def figures(self) -> list:
        """The page's figures: the question's margin gain (right cells ticked, best ringed), the
        logit lens of vanilla and of the best configuration (Figure 8), then the demo set's."""
        import plotly.graph_objects as go  # noqa: F401 - the figures' module needs plotly

        from xtl.analysis.views import GainPanel
        from xtl.figures.plots import gain_heatmap, margin_heatmap

        c = self.case
        panel = self.margin_panel()
        if panel is not None:
            figs = [margin_heatmap(panel, "The built-in question: how far each configuration moves the gold option")]
        else:
            acc, vanilla = 100.0 * c.correct, 100.0 * c.vanilla_correct
            gp = GainPanel("the built-in question", acc - vanilla, acc, np.ones_like(acc), vanilla, c.src_layers,
                           c.tgt_layers, np.array([[r[:60] for r in row] for row in c.responses], dtype=object))
            figs = [gain_heatmap([gp], f"Which configurations answer right ({c.site})", mark=self.shown)]
        figs.append(self.vanilla_lens.figure(track=self._track()))
        if self.best_lens is not None:
            figs.append(self.best_lens.figure(track=self._track()))
        if self.set is not None:
            figs += self.set.figures()
        return figs

    def _track(self) -> str | None:
        cands = self.pair.get("candidates") or []
        labels = sorted(self.pair.get("options", {}))
        gold = self.pair.get("gold")
        pick = cands[labels.index(gold)] if gold in labels and len(cands) == len(labels) else gold
        return pick if pick in self.vanilla_lens.tracked else None


def demo_set(model: Model, site: str = "mlp", limit: int | None = None, langs: Sequence[str] | None = None,
             mode: str = "logits", max_new_tokens: int = 20, chat: bool | None = None,
             progress: bool = True, *, step: int = SET_STEP) -> DemoSet:
    """Sweep the demo set on every ``step``-th layer and the last (:func:`set_layers`; ``step=1``:
    the full grid), evaluate it and work out the finding."""
    from xtl.analysis.finding import finding_of
    from xtl.analysis.grids import grid
    from xtl.analysis.margins import margin_panels
    from xtl.analysis.views import gain_panels
    from xtl.engine.run import sweep
    from xtl.evaluation.evaluated import evaluate
    from xtl.tasks.demo_set import DEMO_LABELS
    from xtl.tasks.registry import load_task

    items = load_task("demo", langs=list(langs) if langs else None, limit=limit)
    if len(set(it.id for it in items)) < 2:
        raise XtlError("the demo set's held-out choice needs at least two questions; use --items 2 or more")
    layers = set_layers(model.cfg.n_layers, step)
    df = sweep(model, items, site=site, src_layers=layers, tgt_layers=layers, mode=mode, candidates=DEMO_LABELS,
               max_new_tokens=max_new_tokens, chat=chat, progress=progress)
    ev = evaluate(df, items, candidates=list(DEMO_LABELS))
    g = grid(ev, n_layers=model.cfg.n_layers)
    return DemoSet(ev, finding_of(g), gain_panels(g), margin_panels(ev, DEMO_LABELS), mode)


def demo(model: Model, pair: dict[str, Any] | None = None, site: str = "mlp", max_new_tokens: int = 20,
         chat: bool | None = None, progress: bool = True, mode: str = "auto", with_set: bool = True,
         limit: int | None = None, langs: Sequence[str] | None = None, *, set_step: int = SET_STEP) -> Demo:
    """Sweep, score and explain one pair (default: xtl's built-in zh -> en question), then (with
    ``with_set``) the demo set: ``limit`` questions per language, in ``langs``, on every
    ``set_step``-th layer and the last."""
    from xtl.tasks.registry import builtin_pair

    mode = demo_mode(model, mode, chat)
    if with_set:
        from xtl.tasks.demo_set import DEMO_LABELS

        check_option_letters(model, DEMO_LABELS)  # before the question's sweep, not after it
    pair = pair or builtin_pair()
    labels = sorted(pair.get("options", {})) or None
    cands = pair.get("candidates") if labels and len(pair.get("candidates") or ()) == len(labels) else None
    if cands is not None:
        from xtl.engine.settings import candidate_token_ids

        try:
            candidate_token_ids(model, cands)
        except XtlError:  # a tokenizer that splits " A" into " " + "A": the bare labels
            cands = None
    case = case_study(model, source=pair["source"], target=pair["target"], gold=pair["gold"], site=site, labels=labels,
                      max_new_tokens=max_new_tokens, chat=chat, progress=progress, mode=mode, candidates=cands)
    steps = min(max_new_tokens, LENS_STEPS)
    track = list(cands or labels or [])
    vanilla_lens = lens(model, pair["target"], positions="generated", max_new_tokens=steps, chat=chat, track=track)
    vanilla_lens.title = "Logit lens — vanilla"
    best_lens = None
    shown = case.best or case.closest
    if shown is not None:
        i, j = shown
        best_lens = lens(model, pair["target"], transplant=Patch(pair["source"], i, j, site), positions="generated",
                         max_new_tokens=steps, chat=chat, track=track)
        what = "best" if case.best is not None else "closest (still wrong)"
        best_lens.title = f"Logit lens — transplanted, {what} ({case.site}: source {i} → target {j})"
    found = (demo_set(model, site, limit, langs, mode, max_new_tokens, chat, progress, step=set_step)
             if with_set else None)
    return Demo(pair, model.cfg.model_name, case, vanilla_lens, best_lens, mode, found)
