"""The latent-language lens: in which language does the model think its answer, layer by layer?

For each item, the residual stream after every layer at the target prompt's last token is
decoded through the final norm and unembedding (the logit lens); per layer we record the
probability of the gold answer written in English and written in the item's other language
(the target prompt's; for an English target, the source prompt's), and the language of the top
decoded token (lid.176). Vanilla and transplanted runs, averaged over items with 95% bands, give
Wendler et al.'s curve ("Do Llamas Work in English?", 2024) over xtl's transplants.

An answer written in a language counts every first token it can start with (the word, and the
word after a space), as Wendler et al. sum over a word's tokens; a token both words can start
with counts for neither. Items whose words start only with shared tokens, and English-target
items without another language, are skipped (``LanguageLens.skipped`` says why).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from xtl._calls import keyword_call
from xtl.errors import XtlError
from xtl.models.backends import Model
from xtl.patching.ops import broadcast_cache, decode_resid, patch_hook, prefix_cache
from xtl.patching.prompts import check_layer, check_model, check_site, format_prompt, tokenize
from xtl.patching.single import capture_tokens
from xtl.patching.sites import Site
from xtl.tasks.cot import base_language
from xtl.tasks.item import Item, as_items

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LanguageLens", "lens_languages", "answer_words", "STATES", "TOP_LANGS"]

#: The runs of each item: unpatched, and with its transplant.
STATES = ("vanilla", "transplanted")
#: What the top decoded token is identified as.
TOP_LANGS = ("en", "target", "other", "none")


def answer_words(item: Item) -> tuple[str, str, str]:
    """(the gold answer in English, the item's other language, the answer in it), from
    ``item.meta["answers"]`` (``{lang: word}``, set by the xnli and xquad loaders and the built-in pair)."""
    words = item.meta.get("answers") or {}
    other = item.lang if base_language(item.lang or "en") != "en" else item.src_lang
    if "en" not in words or other not in words:
        raise XtlError(f"item {item.key} does not give its answer in English and in {other or 'its language'} "
                       "(meta['answers']); the language lens runs on xnli, xquad and the built-in pair")
    if base_language(other or "en") == "en":
        raise XtlError(f"item {item.key} is English on both sides: the language lens needs another language")
    return str(words["en"]), other, str(words[other])


def _first_tokens(model: Model, word: str) -> list[int]:
    """The first token of ``word`` and of ``" " + word`` (the forms an answer starts with)."""
    ids = []
    for text in (word, f" {word}"):
        toks = model.tokenizer(text, add_special_tokens=False)["input_ids"]
        if toks and toks[0] not in ids:
            ids.append(toks[0])
    return ids


@dataclass(frozen=True)
class LanguageLens:
    """Per state, item and layer: the answer's probability in English and in the other language,
    and the language and text of the top decoded token (NaN / '' where a state was not run)."""

    site: str
    items: list[str]
    langs: list[str]  # each item's other language
    configs: list[tuple[int, int] | None]  # each item's transplant (source, target), or None
    p_en: Float[np.ndarray, "state item layer"] = field(repr=False)
    p_target: Float[np.ndarray, "state item layer"] = field(repr=False)
    top_lang: np.ndarray = field(repr=False)  # [state, item, layer] of TOP_LANGS ('' where not run)
    top_token: np.ndarray = field(repr=False)  # [state, item, layer] of str
    skipped: dict[str, str] = field(default_factory=dict)  # item key -> why it was left out

    def __post_init__(self) -> None:
        shape = self.p_en.shape
        if shape[:2] != (len(STATES), len(self.items)) or any(
                a.shape != shape for a in (self.p_target, self.top_lang, self.top_token)):
            raise XtlError(f"language lens arrays of shapes {self.p_en.shape}, {self.p_target.shape} do not "
                           f"match {len(STATES)} states × {len(self.items)} items")

    @property
    def n_layers(self) -> int:
        return self.p_en.shape[2]

    def curves(self) -> "pd.DataFrame":
        """Mean over items per state, layer and measure, with a 95% band (normal approximation):
        columns ``state, layer, measure, mean, lo, hi, n``; measures ``p(en)``, ``p(target)`` and
        ``top=en`` / ``top=target`` / ``top=other`` (share of items whose top token is in it)."""
        import pandas as pd

        rows = []
        for s, state in enumerate(STATES):
            ran = self.top_lang[s, :, 0] != ""
            if not ran.any():
                continue
            measures = {"p(en)": self.p_en[s, ran], "p(target)": self.p_target[s, ran]}
            for lang in TOP_LANGS[:3]:
                measures[f"top={lang}"] = (self.top_lang[s, ran] == lang).astype(float)
            for name, values in measures.items():
                n = values.shape[0]
                mean = values.mean(0)
                half = 1.96 * values.std(0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(mean)
                for layer in range(self.n_layers):
                    rows.append({"state": state, "layer": layer, "measure": name, "mean": float(mean[layer]),
                                 "lo": max(0.0, float(mean[layer] - half[layer])),
                                 "hi": min(1.0, float(mean[layer] + half[layer])),
                                 "n": n})
        return pd.DataFrame(rows, columns=["state", "layer", "measure", "mean", "lo", "hi", "n"])

    def figure(self, title: str | None = None):
        """Wendler et al.'s curves: answer probability by language, and the top token's language."""
        from xtl.figures.extensions import language_lens_figure

        langs = sorted(set(self.langs))
        return language_lens_figure(self.curves(), title or f"Latent language of the answer ({self.site}; "
                                    f"{len(self.items)} items; other language: {', '.join(langs)})")


def _configs(items: list[Item], transplant: Any, model: Model) -> list[tuple[int, int] | None]:
    if transplant is None:
        return [None] * len(items)
    if isinstance(transplant, Mapping):
        pairs = [transplant.get(it.key) for it in items]
    elif isinstance(transplant, (tuple, list)) and len(transplant) == 2 and all(isinstance(x, int) for x in transplant):
        pairs = [tuple(transplant)] * len(items)
    else:
        raise XtlError(f"transplant must be (source layer, target layer), a dict item key -> (source, target) "
                       f"(e.g. ScreenResult.top(1)), or None, not {transplant!r}")
    out = []
    for pair in pairs:
        if pair is None:
            out.append(None)
            continue
        if isinstance(pair, (list, tuple)) and len(pair) == 1:  # top(1)'s [Config]
            pair = pair[0]
        i, j = pair
        out.append((check_layer(model, i, "source layer"), check_layer(model, j, "target layer")))
    return out


def _run(model: Model, tokens: Tensor, hooks: list) -> Float[Tensor, "layer vocab"]:
    """Probabilities decoded from the residual stream after every layer at the last token."""
    stored: dict[int, Tensor] = {}

    def keep(layer: int):
        def hook(act: Tensor, hook=None) -> None:  # noqa: ARG001
            stored[layer] = act[0, -1].detach()
        return hook

    n = model.cfg.n_layers
    cache = broadcast_cache(prefix_cache(model, tokens))
    with model.hooks(fwd_hooks=[*hooks, *[(f"blocks.{l}.hook_resid_post", keep(l)) for l in range(n)]]):
        model(tokens[-1].reshape(1, 1).to(model.cfg.device), past_kv_cache=cache, return_type=None)
    resid = torch.stack([stored[l] for l in range(n)])
    return torch.softmax(decode_resid(model, resid).double(), dim=-1)


@keyword_call("xtl.lens_languages", "xtl.lens_languages(model, items, transplant=..., site=...)", positional=2,
              legacy=("transplant", "site", "chat", "lid_model", "progress"))
@torch.no_grad()
def lens_languages(model: Model, items: Iterable[Any], *, transplant: Any = None, site: "str | Site" = "mlp",
                   chat: bool | None = None, lid_model: str | None = None, progress: bool = True) -> LanguageLens:
    """The latent-language lens of a task's items, vanilla and transplanted.

    Args:
        model: a Model from :func:`xtl.load_model`.
        items: items that give their answer in English and another language (xnli, xquad, the
            built-in pair; ``item.meta["answers"]``).
        transplant: ``(source layer, target layer)`` for every item, a dict item key ->
            (source, target) (e.g. each item's best cell: ``ScreenResult.top(1)``), or None
            (vanilla only).
        site: the transplanted site.
        chat: apply the tokenizer's chat template.
        lid_model: the language-ID model of the top tokens (default: the built-in lid.176.ftz).
        progress: show a progress bar over items.
    """
    from xtl.evaluation.lid import identify_languages, lid_label
    from xtl.patching.prompts import resolve_chat

    check_model(model)
    site = Site.parse(site)
    check_site(model, site)
    items = as_items(items)
    chat = resolve_chat(model, chat)
    usable, skipped, words = [], {}, {}
    for it in items:
        try:
            en, other, word = answer_words(it)
        except XtlError as exc:
            skipped[it.key] = str(exc)
            continue
        en_ids, other_ids = _first_tokens(model, en), _first_tokens(model, word)
        shared = set(en_ids) & set(other_ids)  # a token both could start with tells neither apart
        en_ids, other_ids = [t for t in en_ids if t not in shared], [t for t in other_ids if t not in shared]
        if not (en_ids and other_ids):
            skipped[it.key] = f"its English answer {en!r} and {other} answer {word!r} start with the same token"
            continue
        usable.append(it)
        words[it.key] = (other, en_ids, other_ids)
    if not usable:
        first = next(iter(skipped.values()), "no items")
        raise XtlError(f"no item for the language lens: {first}")
    configs = _configs(usable, transplant, model)
    shape = (len(STATES), len(usable), model.cfg.n_layers)
    p_en, p_tgt = np.full(shape, np.nan), np.full(shape, np.nan)
    top_ids = np.full(shape, -1, dtype=np.int64)
    for k, it in enumerate(tqdm(usable, desc="language lens", unit="item", disable=not progress)):
        other, en_ids, other_ids = words[it.key]
        tokens = tokenize(model, format_prompt(model, it.target, chat), what=f"target prompt of item {it.id}")
        runs = {0: []}
        if configs[k] is not None:
            i, j = configs[k]
            src = tokenize(model, format_prompt(model, it.source, chat), what=f"source prompt of item {it.id}")
            acts = capture_tokens(model, src, site)
            runs[1] = [(site.hook_name(j), patch_hook(site, acts[i][None]))]
        for s, hooks in runs.items():
            probs = _run(model, tokens, hooks)
            p_en[s, k] = probs[:, en_ids].sum(-1).cpu().numpy()
            p_tgt[s, k] = probs[:, other_ids].sum(-1).cpu().numpy()
            top_ids[s, k] = probs.argmax(-1).cpu().numpy()
    decoded = {t: model.tokenizer.decode([int(t)]).strip() for t in np.unique(top_ids) if t >= 0}
    texts = [t for t in decoded.values() if any(ch.isalpha() for ch in t)]
    found = dict(zip(texts, identify_languages(texts, lid_model)))
    top_lang = np.full(shape, "", dtype=object)
    top_token = np.full(shape, "", dtype=object)
    for idx in np.ndindex(shape):
        t = int(top_ids[idx])
        if t < 0:
            continue
        text = decoded[t]
        label = found.get(text)
        target = lid_label(words[usable[idx[1]].key][0])
        top_token[idx] = text
        top_lang[idx] = ("none" if label is None else "en" if label == "en" else
                         "target" if label == target else "other")
    return LanguageLens(str(site), [it.key for it in usable], [words[it.key][0] for it in usable], configs,
                        p_en, p_tgt, top_lang, top_token, skipped)
