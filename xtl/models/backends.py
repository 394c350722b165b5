"""Which backend serves a model: TransformerLens' ``HookedTransformer`` or its ``TransformerBridge``.

The stages above ``models`` see one small surface (:class:`xtl.models.protocol.Model`) and never
ask which backend they hold; the few places whose fast path exists for one backend only (the
shared-prefix kernel) ask :func:`backend_of` and say why when they fall back.

``auto`` keeps the design's default, HookedTransformer, where TransformerLens 3.x is installed and
the architecture is one xtl converts for it; otherwise the bridge, which wraps the Hugging Face
model itself (raw weights, ~145 architectures) and is the only model class of TransformerLens 4.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from importlib import metadata
from typing import Any, Protocol

from xtl.errors import ModelSpecError

__all__ = ["Model", "BACKENDS", "tl_version", "hooked_available", "check_backend", "resolve_backend",
           "backend_of", "is_model", "HOOKED_ARCHITECTURES"]

#: What ``backend=`` accepts.
BACKENDS = ("auto", "hooked", "bridge")

#: Architectures xtl converts for HookedTransformer with its own config reader (others go through
#: TransformerLens' converter and may fail on a local folder's name).
HOOKED_ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Gemma3ForCausalLM")


@lru_cache(maxsize=1)
def tl_version() -> str:
    """The installed TransformerLens version (``"0"`` when it is not installed)."""
    try:
        return metadata.version("transformer-lens")
    except metadata.PackageNotFoundError:
        return "0"


def _major(version: str) -> int:
    head = version.split(".")[0]
    return int(head) if head.isdigit() else 0


def hooked_available() -> bool:
    """True where TransformerLens still has ``HookedTransformer`` (3.x; 4.0 removed it)."""
    return _major(tl_version()) < 4


def check_backend(backend: object) -> str:
    """``backend`` if it is one of :data:`BACKENDS` and usable here, else a one-line error."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        close = difflib.get_close_matches(str(backend), BACKENDS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ModelSpecError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}.{hint}")
    if backend == "hooked" and not hooked_available():
        raise ModelSpecError(
            f"backend 'hooked' needs HookedTransformer, which TransformerLens removed in 4.0 (installed: "
            f"{tl_version()}); use backend='bridge' (or 'auto'), or install transformer-lens<4 for it")
    return backend


def resolve_backend(backend: str, architecture: str | None, hf_config: Any = None) -> str:
    """The backend ``backend`` means for a model of ``architecture`` (None: not known yet); with
    its ``hf_config``, a feature HookedTransformer would not compute as Hugging Face does (rope
    scaling, logit scales...: :func:`xtl.models.hfconfig.hooked_refusal`) sends ``auto`` to the
    bridge and refuses ``hooked`` in one line, before any weights load."""
    from xtl.models.hfconfig import hooked_refusal

    backend = check_backend(backend)
    refusal = hooked_refusal(hf_config) if hf_config is not None else None
    if backend != "auto":
        if backend == "hooked" and architecture and not _hooked_builds(architecture):
            raise ModelSpecError(f"architecture {architecture} is not one HookedTransformer builds; "
                                 "use backend='bridge' (or 'auto')")
        if backend == "hooked" and refusal:
            raise ModelSpecError(f"HookedTransformer does not compute {architecture}'s {refusal} as Hugging Face "
                                 "does; use backend='bridge' (or 'auto')")
        if backend == "bridge" and architecture and not bridge_supports(architecture):
            raise ModelSpecError(f"architecture {architecture} is supported by neither backend: "
                                 "TransformerBridge has no adapter for it and HookedTransformer cannot build it")
        return backend
    if hooked_available() and (architecture is None or architecture in HOOKED_ARCHITECTURES) and not refusal:
        return "hooked"  # xtl's own config reader: TransformerLens' name-based one misfires on folders
    if architecture and not bridge_supports(architecture):
        raise ModelSpecError(f"architecture {architecture} is supported by neither backend "
                             f"(TransformerLens {tl_version()}); use a Llama, Mistral, Qwen, Gemma, OLMo, "
                             "Granite, Phi-3 or another architecture TransformerBridge lists")
    return "bridge"


def _hooked_builds(architecture: str) -> bool:
    if architecture in HOOKED_ARCHITECTURES:
        return True
    return hooked_available() and architecture in _tl_hooked_architectures()


@lru_cache(maxsize=1)
def _tl_hooked_architectures() -> frozenset[str]:
    """Architectures TransformerLens 3's HookedTransformer converter names."""
    import inspect
    import re

    from transformer_lens import loading_from_pretrained as lfp

    source = inspect.getsource(lfp.convert_hf_model_config)
    return frozenset(re.findall(r'architecture == "(\w+)"', source))


@lru_cache(maxsize=None)
def bridge_supports(architecture: str) -> bool:
    """True when TransformerBridge has an adapter for ``architecture``."""
    try:
        from transformer_lens.factories.architecture_adapter_factory import SUPPORTED_ARCHITECTURES
    except ImportError:
        return True  # an older layout: let the bridge itself decide at boot
    return architecture in SUPPORTED_ARCHITECTURES


def backend_of(model: Any) -> str:
    """``"bridge"`` for a :class:`xtl.models.bridge.BridgeModel`, else ``"hooked"``."""
    return "bridge" if getattr(model, "backend", None) == "bridge" else "hooked"


def is_model(obj: object) -> bool:
    """True for a model :func:`xtl.load_model` returns, on either backend."""
    from xtl.models.bridge import BridgeModel

    if isinstance(obj, BridgeModel):
        return True
    if not hooked_available():
        return False
    from transformer_lens import HookedTransformer

    return isinstance(obj, HookedTransformer)


class Model(Protocol):
    """What the stages above ``models`` use of a model, on either backend: ``cfg`` (``n_layers``,
    ``n_heads``, ``d_head``, ``d_model``, ``n_ctx``, ``device``, ``dtype``, ``model_name``,
    ``output_logits_soft_cap``...), ``tokenizer``, ``hooks(fwd_hooks=[(hook_name, fn)])``, a
    forward ``model(tokens, past_kv_cache=cache, return_type=...)``, ``ln_final`` and
    ``unembed.W_U``/``b_U``."""

    cfg: Any
    tokenizer: Any

    def hooks(self, fwd_hooks: Any = ...) -> Any: ...

    def __call__(self, tokens: Any, *args: Any, **kwargs: Any) -> Any: ...
