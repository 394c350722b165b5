"""Prompts as the model sees them: chat formatting, tokenisation, stop tokens, layer checks."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor
from xtl.models.backends import Model

from xtl.errors import PromptError, SiteError
from xtl.patching.sites import Site

log = logging.getLogger("xtl")

__all__ = ["resolve_chat", "chat_prompt", "encode", "format_prompt", "tokenize", "stop_token_ids", "check_layer", "check_site", "check_model",
           "check_count"]


def check_model(model: object) -> Model:
    """``model`` if it is a loaded model, else an error that says how to get one."""
    from xtl.models.backends import is_model

    if not is_model(model):
        what = f"the string {model!r}" if isinstance(model, str) else type(model).__name__
        raise SiteError(f"model must be a loaded model, not {what}; load it first: "
                        "model = xtl.load_model(\"gemma-3-270m-q4km\")")
    return model


def check_count(value: object, what: str, low: int = 1) -> int:
    """``value`` if it is a whole number of at least ``low``, else an error that says so."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PromptError(f"{what} must be an int, not {value!r}")
    if value < low:
        raise PromptError(f"{what} must be at least {low}, not {value}")
    return value


def chat_prompt(tokenizer: Any, prompt: str) -> str:
    """``prompt`` as the user turn of the tokenizer's chat template, with the generation prompt
    (what sweeps with ``chat=True``, the CLI's context check and ``xtl sft`` all feed the model)."""
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` with one BOS at most: the tokenizer's special tokens unless the text
    already starts with its BOS (the one rule for every prompt xtl tokenises)."""
    bos = getattr(tokenizer, "bos_token", None)
    return tokenizer(text, add_special_tokens=not (bos and text.startswith(bos)))["input_ids"]


def resolve_chat(model: Model, chat: bool | None) -> bool:
    """Whether prompts go through the chat template: as asked, else the frame the model was
    fine-tuned in (an ``xtl sft`` folder records it), else raw. Overriding a fine-tuned model's
    frame is allowed and warned about."""
    if chat is not None and type(chat).__name__ not in ("bool", "bool_"):
        raise PromptError(f"chat must be True, False or None (the frame the model was fine-tuned in), not {chat!r}")
    trained = getattr(model, "xtl_sft", {}).get("sft_chat")
    if chat is None:
        if trained:
            log.info("prompts go through the chat template: %s was fine-tuned with it (xtl sft)", model.cfg.model_name)
        return bool(trained)
    if trained is not None and bool(chat) != bool(trained):
        warnings.warn(f"{model.cfg.model_name} was fine-tuned with {'the chat template' if trained else 'plain prompts'}, "
                      f"but chat={bool(chat)} frames them {'with the chat template' if chat else 'plainly'}; "
                      "it is then evaluated in another frame than it was trained in", stacklevel=3)
    return bool(chat)


def format_prompt(model: Model, prompt: str, chat: bool | None = None) -> str:
    """The raw prompt (default: PilotSet strings are complete prompts), or its chat template
    (``chat=None``: :func:`resolve_chat`)."""
    if not resolve_chat(model, chat):
        return prompt
    tok = model.tokenizer
    if getattr(tok, "chat_template", None) is None:
        raise PromptError("this tokenizer has no chat template; run with chat=False (without --chat)")
    return chat_prompt(tok, prompt)


def tokenize(model: Model, prompt: str, max_new_tokens: int = 0,
             what: str = "prompt") -> Int[Tensor, "pos"]:
    """Token ids the way the model's own tokenizer makes them (one BOS at most).

    ``what`` names the prompt in errors (``"source prompt"``, ``"target prompt"``).
    """
    if not isinstance(prompt, str):
        raise PromptError(f"the {what} must be a string, not {type(prompt).__name__}")
    if not prompt.strip():
        raise PromptError(f"the {what} is empty; give a non-empty prompt text")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PromptError(f"the {what} holds a lone surrogate ({prompt[exc.start]!r} at character "
                          f"{exc.start + 1}), which is not text; fix the prompt") from None
    ids = encode(model.tokenizer, prompt)
    beyond = [i for i in ids if i >= model.cfg.d_vocab]
    if beyond:
        raise PromptError(f"the {what} has token id {beyond[0]}, beyond the model's vocabulary of {model.cfg.d_vocab} "
                          f"(its tokenizer has {len(model.tokenizer)} tokens); load the model with its own tokenizer")
    if len(ids) > model.cfg.n_ctx:
        raise PromptError(f"the {what} has {len(ids)} tokens, more than the model's context of "
                          f"{model.cfg.n_ctx}; shorten it")
    if len(ids) + max_new_tokens > model.cfg.n_ctx:
        raise PromptError(
            f"the {what} of {len(ids)} tokens + {max_new_tokens} new tokens exceeds the model's "
            f"context of {model.cfg.n_ctx}; shorten the prompt or lower max_new_tokens")
    return torch.tensor(ids, dtype=torch.long)


def stop_token_ids(model: Model) -> set[int]:
    """Token ids that end a response (:func:`xtl.models.facts.stop_ids`): the tokenizer's EOS
    and every eos id of the model's generation config and config."""
    from xtl.models.facts import stop_ids

    return stop_ids(model)


def check_layer(model: Model, layer: int, what: str) -> int:
    """``layer`` as a layer number 0..N-1 (negative counts from the end), or a clear error."""
    n = model.cfg.n_layers
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise SiteError(f"{what} must be an int (a layer number), not {layer!r}")
    if not -n <= layer < n:
        raise SiteError(f"{what} {layer} is out of range; this model has layers 0..{n - 1}")
    return layer % n


def check_site(model: Model, site: Site) -> None:
    """Check the site against the model: head indices in range, hooks the model has."""
    if site.kind == "attn-authors" and getattr(model.cfg, "parallel_attn_mlp", False):
        raise SiteError("site 'attn-authors' reads the residual stream between attention and MLP, "
                        "which this model (parallel attention and MLP) does not have; use 'attn'")
    if site.heads is not None:
        bad = [h for h in site.heads if not 0 <= h < model.cfg.n_heads]
        if bad:
            raise SiteError(f"head(s) {bad} out of range; this model has heads 0..{model.cfg.n_heads - 1}")
    from xtl.models.adapters import adapter_of

    adapter = adapter_of(model)
    for name in sorted({site.hook_name(0), site.source_hook_name(0)}):
        if not adapter.has_hook(model, name):
            raise SiteError(f"site {site} needs hook {name}, which the {adapter.name} backend does not provide for "
                            f"{model.cfg.original_architecture}; use another site (attn, mlp or block)")
