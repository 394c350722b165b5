"""What a model's Hugging Face configuration says beyond its shapes, read once at load: the
token ids that end a response, and how the model scales its output logits. Stages read them
through :func:`facts_of`, never from the backend or the config.

* Stop tokens: the tokenizer's EOS, every ``eos_token_id`` of the generation config and of the
  model config (Llama 3.1's ``<|eom_id|>`` and ``<|eot_id|>``, Phi-3's ``<|end|>``, Gemma's
  ``<end_of_turn>``), as ``generate`` stops. Where no generation config was read (a GGUF file,
  a TransformerLens hub name), also the end-of-turn tokens of common chat formats in the vocabulary.
* Logit scales: Cohere/Aya multiply the logits by ``logit_scale``, Granite divides them by
  ``logits_scaling``; the soft-cap stays in ``cfg.output_logits_soft_cap``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

__all__ = ["ModelFacts", "read_facts", "facts_of", "scale_logits", "stop_ids", "CHAT_END_TOKENS"]

#: End-of-turn tokens of common chat formats: stop tokens where no generation config is known.
CHAT_END_TOKENS = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|endoftext|>")


@dataclass(frozen=True)
class ModelFacts:
    """``eos_ids``: the configuration's end-of-sequence ids; ``generation_config``: whether they
    include a generation config's own (else the chat end tokens are added too); ``multiply`` /
    ``divide``: the output logit scale (1.0: none)."""

    eos_ids: frozenset[int] = frozenset()
    multiply: float = 1.0
    divide: float = 1.0
    generation_config: bool = False


def _ids(value: Any) -> set[int]:
    if value is None:
        return set()
    if isinstance(value, int):
        return {value}
    return {int(v) for v in value if v is not None}


def read_facts(hf_config: Any, generation_config: Any = None) -> ModelFacts:
    """The facts of a model from its config (text sub-config where there is one) and generation config."""
    from xtl.models.hfconfig import text_config

    text = text_config(hf_config)
    eos = _ids(getattr(generation_config, "eos_token_id", None)) | _ids(getattr(text, "eos_token_id", None))
    if text is not hf_config:
        eos |= _ids(getattr(hf_config, "eos_token_id", None))
    multiply = getattr(text, "logit_scale", None)
    divide = getattr(text, "logits_scaling", None)
    own = generation_config is not None and not getattr(generation_config, "_from_model_config", False)
    return ModelFacts(frozenset(eos), float(multiply) if multiply else 1.0, float(divide) if divide else 1.0, own)


def facts_of(model: Any) -> ModelFacts:
    """The facts recorded on ``model`` at load (none recorded: no eos ids, no scale)."""
    return getattr(model, "xtl_facts", None) or ModelFacts()


def scale_logits(model: Any, logits: Tensor) -> Tensor:
    """``logits`` with the model's output scale applied (before its soft-cap), as its forward does."""
    facts = facts_of(model)
    if facts.multiply != 1.0:
        logits = logits * facts.multiply
    if facts.divide != 1.0:
        logits = logits / facts.divide
    return logits


def stop_ids(model: Any) -> set[int]:
    """Token ids that end a response: the tokenizer's EOS and the configuration's eos ids; the
    chat end tokens of :data:`CHAT_END_TOKENS` too where no generation config was read."""
    tok = model.tokenizer
    ids = {tok.eos_token_id} if tok.eos_token_id is not None else set()
    facts = facts_of(model)
    ids |= set(facts.eos_ids)
    if facts.generation_config:
        return ids
    for name in CHAT_END_TOKENS:
        tid = tok.convert_tokens_to_ids(name)  # a lookup; get_vocab() would build a 256k dict
        if isinstance(tid, int) and tid != tok.unk_token_id:
            ids.add(tid)
    return ids


