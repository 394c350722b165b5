"""Logit lens: decode the residual stream of every layer through the final norm and unembedding,
for the last prompt token or for every generated step, vanilla or transplanted (Figure 8).

A transplanted run patches the site at the last prompt position only; running one full forward
over prompt + generated tokens with that single position patched computes exactly what cached
generation computes, so every step of the grid comes from one pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from xtl.models.backends import Model

from xtl._calls import keyword_call
from xtl.errors import PromptError, XtlError
from xtl.interpret.tokens import token_text
from xtl.options import Positions
from xtl.patching.ops import decode_resid, patch_hook
from xtl.patching.prompts import check_layer, check_model, check_site, format_prompt, tokenize
from xtl.patching.single import Capture, capture
from xtl.patching.single import transplant as run_transplant
from xtl.patching.single import vanilla as run_vanilla
from xtl.patching.sites import Site

__all__ = ["Patch", "LensResult", "lens", "compare"]


@dataclass(frozen=True)
class Patch:
    """A transplant to apply in a lens run: ``site`` of ``source`` layer i -> target layer j."""

    source: "str | Capture"
    src_layer: int
    tgt_layer: int
    site: str = "mlp"


# ---------------------------------------------------------------- the lens itself
@dataclass
class LensResult:
    """Top-k decoding of every (layer, position) of one run.

    ``rows`` name the decoded streams (``L3`` = after block 3; with sublayers also ``L3.mid``
    = after attention, ``L3.attn`` / ``L3.mlp`` = the sublayer's own output).
    """

    prompt: str
    rows: list[str]
    positions: list[int]
    labels: list[str]  # input token at each decoded position (readable)
    top_ids: Int[np.ndarray, "row pos k"]
    top_probs: Float[np.ndarray, "row pos k"]
    top_text: np.ndarray  # [row, pos, k] of str
    tracked: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # token -> prob/rank [row, pos]
    generated: list[int] = field(default_factory=list)
    response: str = ""
    title: str = ""

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: one row per (stream, position, rank)."""
        out = []
        for r, name in enumerate(self.rows):
            for p, pos in enumerate(self.positions):
                for k in range(self.top_ids.shape[2]):
                    out.append({"stream": name, "position": pos, "input": self.labels[p], "rank": k + 1,
                                "token": self.top_text[r, p, k], "token_id": int(self.top_ids[r, p, k]),
                                "prob": float(self.top_probs[r, p, k])})
        return pd.DataFrame(out)

    def table(self, width: int = 10, *, max_width: int | None = None) -> str:
        """Compact terminal table: one line per stream, the top token and its probability per position.

        Args:
            width: characters kept of each token.
            max_width: the widest line allowed (a terminal's columns): the positions that fit are
                shown and a last line says how many were left out (``None``: all of them).
        """
        cell = width + 6  # the token, its probability and a space
        shown = len(self.positions)
        if max_width is not None:
            shown = max(1, min(shown, (max_width - 9) // cell))
        head = f"{'':>8} " + " ".join(f"{lab[:width]:>{width + 5}}" for lab in self.labels[:shown])
        lines = [head]
        for r, name in enumerate(self.rows):
            cells = [f"{self.top_text[r, p, 0][:width]:>{width}} {self.top_probs[r, p, 0]:.2f}"
                     for p in range(shown)]
            lines.append(f"{name:>8} " + " ".join(cells))
        if shown < len(self.positions):
            rest = len(self.positions) - shown
            lines.append(f"… {rest} more position{'s' * (rest != 1)} not shown (first {shown} of {len(self.positions)})")
        return "\n".join(lines)

    def figure(self, track: str | None = None):
        """Plotly heatmap: top token written in each cell, coloured by its probability or by a
        tracked token's (a dropdown switches; ``track`` picks the colouring shown first)."""
        from xtl.figures.plots import lens_heatmap

        if track is not None and track not in self.tracked:
            raise XtlError(f"{track!r} was not tracked; track it with lens(..., track=[{track!r}])")
        z = self.top_probs[:, :, 0]
        hover = np.empty(z.shape, dtype=object)
        for r in range(z.shape[0]):
            for p in range(z.shape[1]):
                tops = "<br>".join(f"{self.top_text[r, p, k]} {self.top_probs[r, p, k]:.3f}"
                                   for k in range(self.top_ids.shape[2]))
                extra = "".join(f"<br>{t}: p={v['prob'][r, p]:.3f}, rank {int(v['rank'][r, p])}"
                                for t, v in self.tracked.items())
                hover[r, p] = f"{self.rows[r]} · {self.labels[p]}<br>{tops}{extra}"
        colours = {"top-1 probability": self.top_probs[:, :, 0],
                   **{f"p({t})": v["prob"] for t, v in self.tracked.items()}}
        return lens_heatmap(colours, self.top_text[:, :, 0], hover, self.labels, self.rows,
                            self.title or "Logit lens", None if track is None else f"p({track})")


def _track_ids(model: Model, track: Sequence[str]) -> dict[str, int]:
    out = {}
    for t in track:
        ids = model.tokenizer(t, add_special_tokens=False)["input_ids"]
        if not ids:
            raise XtlError(f"tracked token {t!r} tokenises to nothing")
        out[t] = ids[0]
    return out


@keyword_call("xtl.lens", "xtl.lens(model, prompt, transplant=xtl.Patch(...), positions=..., k=...)", positional=2,
              legacy=("transplant", "positions", "k", "track", "sublayers", "max_new_tokens", "chat"))
@torch.no_grad()
def lens(model: Model, prompt: str, *, transplant: Patch | None = None,
         positions: "Positions | Sequence[int]" = "last", k: int = 5, track: Sequence[str] = (),
         sublayers: bool = False, max_new_tokens: int = 20, chat: bool | None = None) -> LensResult:
    """Decode every layer's residual stream at the chosen positions.

    Args:
        model: a Model.
        prompt: the (target) prompt.
        transplant: a :class:`Patch` to apply at the last prompt position (prompt pass only).
        positions: ``"last"`` (last prompt token), ``"generated"`` (last prompt token and every
            generated step: the layer x step grid), or a list of prompt positions.
        k: top tokens kept per cell.
        track: strings whose first token's probability and rank are recorded (e.g. ``"A"``).
        sublayers: also decode after attention and each sublayer's own output.
        max_new_tokens: generated steps for ``positions="generated"``.
        chat: apply the tokenizer's chat template.
    """
    check_model(model)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise XtlError(f"k must be an int of at least 1, not {k!r}")
    if k > model.cfg.d_vocab:
        raise XtlError(f"k={k} is more top tokens than the model's vocabulary of {model.cfg.d_vocab}; use a smaller k")
    if isinstance(positions, str) and positions not in ("last", "generated"):
        raise XtlError(f"positions must be 'last', 'generated' or a list of prompt positions, not {positions!r}")
    if not isinstance(positions, str) and not all(isinstance(p, int) and not isinstance(p, bool) for p in positions):
        raise XtlError(f"positions must be whole numbers, not {list(positions)!r}")
    text = format_prompt(model, prompt, chat)
    tokens = tokenize(model, text, max_new_tokens if positions == "generated" else 0)
    last = len(tokens) - 1
    patch_hooks = []
    if transplant is not None:
        site = Site.parse(transplant.site)
        check_site(model, site)
        i = check_layer(model, transplant.src_layer, "source layer")
        j = check_layer(model, transplant.tgt_layer, "target layer")
        src = transplant.source if isinstance(transplant.source, Capture) else capture(
            model, transplant.source, site if site.kind == "heads" else Site(site.kind), chat=chat)
        patch_hooks = [(site.hook_name(j), patch_hook(site, src.acts[i][None], pos=last))]

    generated: list[int] = []
    response = ""
    if positions == "generated":
        if transplant is None:
            van = run_vanilla(model, prompt, max_new_tokens=max_new_tokens, chat=chat)
            response, generated = van.text, van.tokens
        else:
            res = run_transplant(model, source=src, target=prompt, src_layer=i, tgt_layer=j, site=site,
                                 max_new_tokens=max_new_tokens, chat=chat)
            response, generated = res.text, res.tokens
        pos = list(range(last, last + max(1, len(generated))))
        full = torch.cat([tokens, torch.tensor(generated[:-1] if generated else [], dtype=torch.long)])
    elif positions == "last":
        pos, full = [last], tokens
    else:
        pos = [int(p) % len(tokens) for p in positions]
        if not all(-len(tokens) <= int(p) < len(tokens) for p in positions):
            raise PromptError(f"positions {list(positions)} out of range for a {len(tokens)}-token prompt")
        full = tokens

    names = []
    for layer in range(model.cfg.n_layers):
        if sublayers:
            names += [(f"L{layer}.attn", f"blocks.{layer}.hook_attn_out"),
                      (f"L{layer}.mid", f"blocks.{layer}.hook_resid_mid"),
                      (f"L{layer}.mlp", f"blocks.{layer}.hook_mlp_out")]
        names.append((f"L{layer}", f"blocks.{layer}.hook_resid_post"))
    stored: dict[str, Tensor] = {}

    def keep(hook_name):
        def hook(act, hook=None):  # noqa: ARG001
            stored[hook_name] = act[0, pos].detach()
        return hook

    hooks = patch_hooks + [(h, keep(h)) for _, h in names]
    with model.hooks(fwd_hooks=hooks):
        model(full[None].to(model.cfg.device), return_type=None)

    ids = _track_ids(model, track)
    tok = model.tokenizer
    n_rows, n_pos = len(names), len(pos)
    top_ids = np.zeros((n_rows, n_pos, k), dtype=np.int64)
    top_probs = np.zeros((n_rows, n_pos, k))
    top_text = np.empty((n_rows, n_pos, k), dtype=object)
    tracked = {t: {"prob": np.zeros((n_rows, n_pos)), "rank": np.zeros((n_rows, n_pos))} for t in ids}
    for r, (_, hook_name) in enumerate(names):
        probs = torch.softmax(decode_resid(model, stored[hook_name]).double(), -1)
        top = probs.topk(k, dim=-1)
        top_ids[r] = top.indices.cpu().numpy()
        top_probs[r] = top.values.cpu().numpy()
        for t, tid in ids.items():
            p = probs[:, tid]
            tracked[t]["prob"][r] = p.cpu().numpy()
            tracked[t]["rank"][r] = (probs > p[:, None]).sum(-1).cpu().numpy() + 1
    cache_text: dict[int, str] = {}
    for idx in np.ndindex(top_ids.shape):
        t = int(top_ids[idx])
        if t not in cache_text:
            cache_text[t] = token_text(tok, t)
        top_text[idx] = cache_text[t]
    all_ids = full.tolist()
    labels = [token_text(tok, all_ids[p]) for p in pos]
    if positions == "generated":
        labels = [f"{n}:{lab}" for n, lab in enumerate(labels)]
    return LensResult(prompt, [n for n, _ in names], pos, labels, top_ids, top_probs, top_text,
                      tracked, generated, response)


@keyword_call("xtl.compare", "xtl.compare(model, source=..., target=..., src_layer=..., tgt_layer=..., site=...)",
              legacy=("source", "target", "src_layer", "tgt_layer", "site"),
              renamed={"source_prompt": "source", "target_prompt": "target"})
def compare(model: Model, *, source: str, target: str, src_layer: int,
            tgt_layer: int, site: str = "mlp", **kwargs) -> dict[str, LensResult]:
    """Figure 8's three panels: source vanilla, target vanilla, transplanted target.

    Everything after the model is keyword-only; ``kwargs`` go to :func:`lens` (``positions``
    defaults to ``"generated"``):
    ``xtl.compare(model, source=src, target=tgt, src_layer=9, tgt_layer=3, site="mlp")``."""
    kwargs.setdefault("positions", "generated")
    out = {"source vanilla": lens(model, source, **kwargs),
           "target vanilla": lens(model, target, **kwargs),
           "transplanted": lens(model, target, transplant=Patch(source, src_layer, tgt_layer, site), **kwargs)}
    for name, res in out.items():
        res.title = f"{name}" + (f" ({site}: source {src_layer} → target {tgt_layer})" if name == "transplanted" else "")
    return out


