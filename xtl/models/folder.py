"""Local Hugging Face folders (and the cached conversions of GGUF files) on either backend, with
the checks that refuse a folder before its weights load."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from xtl.errors import ModelSpecError
from xtl.models.gguf import gguf_to_folder

__all__ = ["TOKENIZER_FILES", "load_folder", "load_converted", "sft_origin"]

log = logging.getLogger("xtl")


#: Files one of which a model folder's tokenizer is read from.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json", "spiece.model")


def _check_tokenizer(tokenizer: Any, folder: Path) -> None:
    """Refuse a tokenizer that cannot encode text (a placeholder of a handful of tokens)."""
    probe = "Hello, world. Which city is the capital of Japan?"
    ids = tokenizer(probe, add_special_tokens=False)["input_ids"]
    unk = getattr(tokenizer, "unk_token_id", None)
    if len(tokenizer) < 16 or not ids or all(i == unk for i in ids):
        raise ModelSpecError(f"the tokenizer in {folder} cannot encode text ({len(tokenizer)} tokens); save the "
                             "base model's tokenizer into the folder")


def _read_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    _check_tokenizer(tokenizer, folder)
    return tokenizer


def load_folder(folder: Path, dtype: torch.dtype, device: str, n_ctx: int | None, backend: str = "auto"):
    """A local HF folder on ``backend``. On the hooked backend, safetensors checkpoints of the four
    covered architectures are streamed layer by layer (peak memory about the model's own size);
    everything else goes through ``from_pretrained`` and :func:`xtl.models.wrap.from_hf`."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from xtl.models.backends import resolve_backend
    from xtl.models.hfconfig import architecture

    if not (folder / "config.json").exists():
        raise ModelSpecError(f"{folder} has no config.json; give a Hugging Face model folder (--model)")
    try:
        hf_config = AutoConfig.from_pretrained(folder)
        chosen = resolve_backend(backend, architecture(hf_config), hf_config)  # refused before any weights load
        if not any((folder / name).exists() for name in TOKENIZER_FILES):
            raise ModelSpecError(f"{folder} has no tokenizer ({', '.join(TOKENIZER_FILES[:3])}, ...); save the "
                                 "base model's tokenizer into it: "
                                 "AutoTokenizer.from_pretrained(BASE).save_pretrained(FOLDER)")
        tokenizer = _read_tokenizer(folder)
        if chosen == "hooked":
            from xtl.models.hooked import finish, hooked_from_folder, tl_config_from_hf

            tl_config_from_hf(hf_config, n_ctx)  # a config HookedTransformer cannot take: refused before weights load
            model = hooked_from_folder(folder, hf_config, dtype, device, n_ctx)
            if model is not None:
                from xtl.models.facts import read_facts

                model = finish(model, tokenizer)
                model.xtl_facts = read_facts(hf_config, _generation_config(folder))
                return model
        hf_model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=torch.float32 if chosen == "hooked" else dtype,
            **({} if chosen == "hooked" else {"attn_implementation": "eager"}))
    except ModelSpecError:
        raise
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds; all mean the same
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelSpecError(f"{folder} cannot be loaded as a Hugging Face causal LM "
                             f"({type(exc).__name__}: {first[:200]}); check its config.json, "
                             "weights and tokenizer files") from exc
    from xtl.models.wrap import from_hf

    return from_hf(hf_model, tokenizer, dtype=dtype, device=device, n_ctx=n_ctx, backend=chosen)


def _generation_config(folder: Path) -> Any:
    """The folder's generation config, None where it has none (or an unreadable one)."""
    if not (folder / "generation_config.json").exists():
        return None
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise ModelSpecError(f"{folder / 'generation_config.json'} cannot be read ({exc}); fix or remove it") from exc


def load_converted(gguf: Path, dtype: torch.dtype, device: str, n_ctx: int | None, backend: str = "auto"):
    """Load the cached conversion of ``gguf``; rebuild it once when it is unreadable."""
    from safetensors import SafetensorError

    folder = gguf_to_folder(gguf, dtype=dtype)
    try:
        return load_folder(folder, dtype, device, n_ctx, backend)
    except ModelSpecError as exc:
        if not isinstance(exc.__cause__, (SafetensorError, OSError, ValueError)):
            raise  # not a damaged file: rebuilding would not help
        log.warning("the converted copy %s is unreadable (%s); rebuilding it", folder, exc)
        return load_folder(gguf_to_folder(gguf, dtype=dtype, rebuild=True), dtype, device, n_ctx, backend)


def sft_origin(folder: Path) -> dict[str, Any] | None:
    """What an ``xtl sft`` output folder was trained from (None for any other folder); an
    unfinished one is refused rather than loaded half-trained."""
    from xtl.models.sftfolder import read_sft_manifest

    data = read_sft_manifest(folder)
    if data is None:
        return None
    if not data.get("finished"):
        raise ModelSpecError(f"{folder} is an unfinished `xtl sft` run; run the same xtl sft command again to "
                             "resume it, then load the folder")
    return {"sft_base": str(data.get("base_model", "")), "sft_data": str(data.get("data", "")),
            "sft_lora": bool(data.get("settings", {}).get("lora", False)),
            "sft_chat": bool(data.get("chat", data.get("prompt_frame") == "chat template"))}


