"""A Hugging Face model already in memory as an xtl model (:func:`from_hf`), and the checks of
dtype and device every loader makes first: the layer :mod:`xtl.models.load` and
:mod:`xtl.models.folder` both stand on."""

from __future__ import annotations

from typing import Any

import torch

from xtl.errors import ModelSpecError
from xtl.models.backends import resolve_backend
from xtl.models.hfconfig import architecture, default_n_ctx
from xtl.options import DTYPE_NAMES

__all__ = ["from_hf", "resolve_dtype", "default_device"]

_DTYPES = {name: getattr(torch, canonical) for name, canonical in DTYPE_NAMES.items()}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``dtype`` as a torch dtype (``"float32"``, ``"bf16"``...), or a one-line error."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ModelSpecError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}")
    return _DTYPES[dtype]


def default_device(device: str | None) -> str:
    """``device`` checked against this machine, or CUDA when available, else CPU."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ModelSpecError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelSpecError(f"device {device!r} is not available: torch sees no CUDA GPU on this "
                                 "machine; use --device cpu (or install a CUDA build of torch)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ModelSpecError(f"device {device!r} does not exist: this machine has "
                                 f"{torch.cuda.device_count()} CUDA device(s), cuda:0..")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ModelSpecError(f"device {device!r} is not available on this machine; use device='cpu' (--device cpu)")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ModelSpecError(f"device {device!r} is not supported; use cpu, cuda, cuda:N or mps")
    return str(device)


def from_hf(hf_model: Any, tokenizer: Any, dtype: str | torch.dtype = "float32", device: str | None = None,
            n_ctx: int | None = None, backend: str = "auto"):
    """An already loaded HF causal LM as an xtl model.

    Args:
        hf_model: a ``transformers`` causal LM (Llama, Mistral, Qwen2/3, Gemma 2/3, OLMo 2, ...).
        tokenizer: its tokenizer; kept as is, so BOS handling follows the model's own tokenizer.
        dtype: parameter dtype.
        device: ``"cpu"``, ``"cuda"``...; default: CUDA when available.
        n_ctx: context length override.
        backend: ``"auto"``, ``"hooked"`` (weights copied into a HookedTransformer) or ``"bridge"``
            (a view of ``hf_model`` is wrapped, sharing its weights where dtype and device match).

    ``hf_model`` and ``tokenizer`` are left as they were: no dtype or device change, no hook,
    no pad token (xtl works on views and copies of them).
    """
    if not isinstance(hf_model, torch.nn.Module) or getattr(hf_model, "config", None) is None:
        raise ModelSpecError(f"from_hf needs a loaded transformers causal LM (AutoModelForCausalLM.from_pretrained(...)), "
                             f"not {type(hf_model).__name__}; for a folder or hub name use xtl.load_model")
    if tokenizer is None or not callable(getattr(tokenizer, "encode", None)):
        raise ModelSpecError(f"from_hf needs the model's tokenizer (AutoTokenizer.from_pretrained(...)), "
                             f"not {type(tokenizer).__name__}")
    torch_dtype = resolve_dtype(dtype)
    device = default_device(device)
    chosen = resolve_backend(backend, architecture(hf_model.config), hf_model.config)
    n_ctx = int(n_ctx or default_n_ctx(hf_model.config))
    from xtl.models.facts import read_facts

    facts = read_facts(hf_model.config, getattr(hf_model, "generation_config", None))
    if chosen == "hooked":
        from xtl.models.hooked import hooked_from_hf

        model = hooked_from_hf(hf_model, tokenizer, torch_dtype, device, n_ctx)
    else:
        from xtl.models.bridge import boot_bridge

        name = getattr(hf_model.config, "_name_or_path", "") or "hf-model"
        model = boot_bridge(hf_model, tokenizer, torch_dtype, device, n_ctx, name)
    model.xtl_facts = facts
    return model
