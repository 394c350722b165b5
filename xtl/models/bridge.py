"""The TransformerBridge backend: a Hugging Face model wrapped by TransformerLens' bridge.

The bridge keeps the Hugging Face model and its raw weights (activations match HF) and adds
TransformerLens hook points under the names xtl's sites use (``blocks.{l}.hook_attn_out``,
``hook_mlp_out``, ``hook_resid_post``, ``hook_resid_mid``, ``attn.hook_z``). :class:`BridgeModel`
gives it the small surface every stage uses (``cfg``, ``tokenizer``, ``hooks``, a forward over a
key/value cache, ``ln_final`` and ``unembed``), so transplant, capture, sweeps, the lens and
perplexity run on it unchanged. Its key/value cache is transformers' own ``DynamicCache``.

Two things the bridge does not do for xtl, done here:

* TransformerLens' bridge attention reads the cache from the ``past_key_values`` keyword, which
  transformers (>= 5.2x) passes to attention as ``cache``; a keyword pre-hook on each bridge
  attention module hands it on (without it, cached decoding silently ignores the prompt).
* xtl tokenises with the model's own tokenizer rule, so the bridge's BOS-forcing copy of the
  tokenizer is kept inside the bridge and the caller's tokenizer is the one xtl uses.
"""

from __future__ import annotations

import copy
import threading
import inspect
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from xtl.errors import ModelSpecError
from xtl.models.hfconfig import head_dim, shares_kv, text_config

__all__ = ["BridgeModel", "BridgeConfig", "boot_bridge", "expand_cache", "select_cache", "unbridged", "hf_site"]

log = logging.getLogger("xtl")


@dataclass
class BridgeConfig:
    """What the stages read of a model's configuration, named as HookedTransformerConfig names it."""

    model_name: str
    n_layers: int
    n_heads: int
    d_head: int
    d_model: int
    d_mlp: int
    d_vocab: int
    n_key_value_heads: int | None
    n_ctx: int
    device: str
    dtype: torch.dtype
    original_architecture: str
    output_logits_soft_cap: float = -1.0
    parallel_attn_mlp: bool = False
    tokenizer_prepends_bos: bool = False
    default_prepend_bos: bool = False
    n_devices: int = 1


class _Unembed:
    """``W_U`` ``[d_model, vocab]`` (a transposed view of the output embedding, so ``W_U.T`` is
    contiguous, as the kernels read it) and ``b_U``."""

    def __init__(self, head: torch.nn.Module, dtype: torch.dtype):
        self.W_U = head.weight.T
        bias = getattr(head, "bias", None)
        self.b_U = bias if bias is not None else torch.zeros(head.weight.shape[0], dtype=dtype,
                                                             device=head.weight.device)


def _cache_keyword(hf_model: Any) -> str:
    """The keyword this transformers version's causal LMs take a cache by."""
    params = inspect.signature(type(hf_model).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


@contextmanager
def _cache_to_bridge_attention(bridge: Any) -> Iterator[None]:
    """For the duration of the block, pre-hooks that copy ``cache=`` into ``past_key_values=``
    for the bridge's attention modules (removed afterwards: no hook outlives a call)."""
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

    def pre(module, args, kwargs):  # noqa: ARG001
        if kwargs.get("past_key_values") is None and kwargs.get("cache") is not None:
            return args, dict(kwargs, past_key_values=kwargs["cache"])
        return None

    handles = [module.register_forward_pre_hook(pre, with_kwargs=True)
               for module in bridge.original_model.modules() if isinstance(module, AttentionBridge)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


#: Where Hugging Face decoders keep their final norm (Llama-likes, GPT-NeoX, BLOOM/GPT-2, Phi).
FINAL_NORM_NAMES = ("norm", "final_layer_norm", "ln_f", "final_layernorm")


def _final_norm(hf: Any, bridge: Any) -> Any:
    """The model's own final norm (the bridge's may compute otherwise); the bridge's where the
    decoder names it some other way."""
    decoder = hf.get_decoder()
    for name in FINAL_NORM_NAMES:
        norm = getattr(decoder, name, None)
        if norm is not None:
            return getattr(norm, "original_component", None) or norm
    return bridge.ln_final


class BridgeModel:
    """A TransformerBridge with the surface xtl's stages use (see the module docstring)."""

    backend = "bridge"

    def __init__(self, bridge: Any, tokenizer: Any, cfg: BridgeConfig):
        self.bridge = bridge
        self.hf = bridge.original_model
        self.tokenizer = tokenizer
        self.cfg = cfg
        self._cache_kw = _cache_keyword(self.hf)
        # The bridge's hook points are module state: a pass in one thread would fire hooks another
        # thread added. Hook contexts and passes hold this lock (re-entrant: a pass inside hooks).
        self._lock = threading.RLock()
        self.ln_final = _final_norm(self.hf, bridge)
        # Gemma 4 drops every position but the kept logits' before its K/V-sharing layers when
        # logits_to_keep is an int; a tensor of indices keeps every position's activations.
        self._slices_positions = shares_kv(text_config(self.hf.config))
        self.unembed = _Unembed(self.hf.get_output_embeddings(), cfg.dtype)

    def __repr__(self) -> str:
        return f"BridgeModel({self.cfg.original_architecture}, {self.cfg.model_name!r}, {self.cfg.n_layers} layers)"

    @property
    def hook_dict(self) -> dict[str, Any]:
        return self.bridge.hook_dict

    def has_hook(self, name: str) -> bool:
        return name in self.bridge.hook_dict

    @contextmanager
    def hooks(self, fwd_hooks: Sequence = ()) -> Iterator[None]:
        """Forward hooks ``[(hook_name, fn(act, hook))]`` for the duration of the block."""
        with self._lock, self.bridge.hooks(fwd_hooks=list(fwd_hooks)):
            yield

    def __call__(self, tokens: Int[Tensor, "batch pos"], past_kv_cache: Any = None,
                 return_type: str | None = "logits") -> Tensor | None:
        """Logits ``[batch, pos, vocab]`` of ``tokens`` after what ``past_kv_cache`` holds (which
        grows by them); ``return_type=None`` runs the pass for its hooks only."""
        keep: int | Tensor = 0 if return_type else 1
        if keep and self._slices_positions:
            keep = torch.tensor([tokens.shape[1] - 1])
        kwargs: dict[str, Any] = {"use_cache": past_kv_cache is not None, "logits_to_keep": keep}
        if past_kv_cache is not None:
            kwargs[self._cache_kw] = past_kv_cache
        with self._lock:
            if past_kv_cache is not None and self._cache_kw == "cache":
                with _cache_to_bridge_attention(self.bridge):
                    out = self.hf(input_ids=tokens.to(self.cfg.device), **kwargs)
            else:
                out = self.hf(input_ids=tokens.to(self.cfg.device), **kwargs)
        return out.logits if return_type else None

    def run_with_cache(self, tokens: Int[Tensor, "batch pos"], **kwargs: Any) -> tuple[Tensor, Any]:
        """TransformerLens' ``run_with_cache`` on the bridge: (logits, activations by hook name)."""
        with self._lock:
            return self.bridge.run_with_cache(tokens.to(self.cfg.device), **kwargs)

    def eval(self) -> "BridgeModel":
        self.hf.eval()
        return self

    def new_cache(self) -> Any:
        """An empty key/value cache for this model."""
        from transformers import DynamicCache

        return DynamicCache(config=self.hf.config)

    def plain(self, attn_implementation: str | None = None) -> Any:
        """The Hugging Face model without the bridge's components (:func:`unbridged`), built once
        per attention implementation and thread; it shares every weight with the bridge, and its
        configuration is a copy (the bridge's own is never changed)."""
        views = self.__dict__.setdefault("_plain", {})
        key = (attn_implementation, threading.get_ident())  # hooks on a view stay in its thread
        if key not in views:
            views[key] = unbridged(self.hf, attn_implementation)
        return views[key]


def unbridged(hf_model: Any, attn_implementation: str | None = None) -> Any:
    """A view of a bridged Hugging Face model with every bridge component replaced by the module
    it wraps: the model's own forward, on the same parameters and buffers (nothing is copied and
    the bridge is left as it was). Modules are shallow copies with hook tables of their own, so
    hooks registered on the view never fire in the bridge; with ``attn_implementation``, the
    view's configuration tree (a deep copy, sub-configs included) selects that attention function
    of transformers' interface, and the bridge's own configuration is never touched."""
    from transformer_lens.model_bridge.generalized_components.base import GeneralizedComponent

    from xtl.models.views import config_copies, module_view

    def unwrap(module: Any) -> Any:
        while isinstance(module, GeneralizedComponent) and module.original_component is not None:
            module = module.original_component
        return module

    config = getattr(hf_model, "config", None)
    configs = config_copies(config) if config is not None and attn_implementation else {}
    if configs:
        configs[id(config)]._attn_implementation = attn_implementation  # sets every sub-config too
    return module_view(hf_model, unwrap, configs)


def hf_site(model: BridgeModel, hook_name: str) -> tuple[str, str]:
    """Where a bridge hook acts in the plain Hugging Face model: (module path, ``"in"`` or
    ``"out"``), e.g. ``("model.layers.3.post_attention_layernorm", "out")`` for Gemma's
    ``blocks.3.hook_attn_out``. Read from the bridge's own component tree, so the plain model is
    written where the bridge's hook would act."""
    target = model.hook_dict.get(hook_name)
    if target is None:
        raise KeyError(hook_name)
    for name, module in model.hf.named_modules(remove_duplicate=False):
        for side in ("in", "out"):
            if module._modules.get(f"hook_{side}") is target and getattr(module, "original_component", None) is not None:
                return ".".join(p for p in name.split(".") if p != "_original_component"), side
    raise KeyError(f"{hook_name}: no bridge component owns this hook")


def _layers(cache: Any) -> list[Any]:
    return list(cache.layers)


def expand_cache(cache: Any, batch: int = 1, upper: Any = None, from_layer: int | None = None) -> Any:
    """A new cache whose layers view ``cache``'s tensors broadcast to ``batch`` rows (no copy);
    with ``upper``, layers from ``from_layer`` up view ``upper``'s instead. Appending to it leaves
    ``cache`` as it was."""
    out = copy.copy(cache)
    layers = []
    for index, layer in enumerate(_layers(cache)):
        src = _layers(upper)[index] if upper is not None and index >= (from_layer or 0) else layer
        new = copy.copy(src)
        if getattr(src, "is_initialized", False) and src.keys is not None:
            new.keys = src.keys.expand(batch, -1, -1, -1)
            new.values = src.values.expand(batch, -1, -1, -1)
        layers.append(new)
    out.layers = layers
    return out


def select_cache(cache: Any, idx: Tensor) -> None:
    """Keep only rows ``idx`` of ``cache``, in place (rows that stopped leave the batch)."""
    for layer in _layers(cache):
        if getattr(layer, "is_initialized", False) and layer.keys is not None:
            layer.keys = layer.keys.index_select(0, idx.to(layer.keys.device))
            layer.values = layer.values.index_select(0, idx.to(layer.values.device))


def _bridge_tokenizer(tokenizer: Any) -> Any:
    """A copy of ``tokenizer`` the bridge accepts as it is (it otherwise reloads the tokenizer
    from its hub name to force BOS, which fails offline and for tokenizers built in memory)."""
    from xtl.models.views import own_tokenizer

    copy_ = own_tokenizer(tokenizer, pad_to_eos=True)
    copy_.init_kwargs = {**getattr(tokenizer, "init_kwargs", {}), "name_or_path": getattr(tokenizer, "name_or_path", ""),
                         "add_bos_token": True}
    return copy_


_PROCESSOR_LOCK = threading.Lock()


@contextmanager
def _no_processor() -> Iterator[None]:
    """While the bridge boots, ``AutoProcessor.from_pretrained`` returns None: xtl feeds text only,
    and for a multimodal model TransformerLens would otherwise fetch the image processor from the
    hub by the model's name (30 s of retries offline, or a request for a model built in memory)
    and, where that fails, pip-install torchvision into the caller's environment."""
    from transformers import AutoProcessor

    with _PROCESSOR_LOCK:
        original = AutoProcessor.__dict__["from_pretrained"]
        AutoProcessor.from_pretrained = classmethod(lambda cls, *args, **kwargs: None)
        try:
            yield
        finally:
            AutoProcessor.from_pretrained = original


#: Architectures a TransformerLens major version's bridge computes otherwise than Hugging Face,
#: with the version that fixes them (found by tests/test_conformance.py).
BRIDGE_WRONG = {("CohereForCausalLM", 3): "4.3"}


def bridge_refusal(arch: str) -> str | None:
    """Why this TransformerLens' bridge must not wrap ``arch`` (it would compute other numbers), or None."""
    import importlib.metadata

    version = importlib.metadata.version("transformer-lens")
    fixed = BRIDGE_WRONG.get((arch, int(version.split(".")[0])))
    if fixed is None:
        return None
    return (f"TransformerLens {version}'s bridge computes {arch}'s attention otherwise than Hugging Face "
            f"(its interleaved rotary embedding; fixed in {fixed}): pip install 'transformer-lens>={fixed},<5'")


#: Model types whose Hugging Face ``apply_rotary_pos_emb`` casts the rotated query and key back to
#: their own dtype (their rotary tables stay float32). The bridge's attention rotates with Llama's,
#: which does not: in bfloat16 the query became float32 and the pattern x value product failed.
ROTARY_CASTS_BACK = frozenset({"olmo", "olmo2", "olmo3", "flex_olmo", "olmo_hybrid"})


def _rotary_cast_back(bridge: Any, model_type: str, dtype: torch.dtype) -> None:
    """Where the model's own attention casts rotated Q/K back (:data:`ROTARY_CASTS_BACK`), cast the
    bridge's too, at its ``hook_rot_q``/``hook_rot_k`` points: the same float32 rotation, rounded
    to the model's dtype as Hugging Face rounds it (a no-op in float32)."""
    if model_type not in ROTARY_CASTS_BACK or dtype in (torch.float32, torch.float64):
        return

    def cast(_module: Any, _inputs: Any, out: Tensor) -> Tensor:
        return out.to(dtype) if out.dtype != dtype else out

    for name, module in bridge.named_modules():
        if name.endswith(("hook_rot_q", "hook_rot_k")):
            module.register_forward_hook(cast)


def boot_bridge(hf_model: Any, tokenizer: Any, dtype: torch.dtype, device: str, n_ctx: int, name: str) -> BridgeModel:
    """Wrap a loaded Hugging Face causal LM in TransformerLens' bridge as a :class:`BridgeModel`."""
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError as exc:  # pragma: no cover - every supported TransformerLens has it
        raise ModelSpecError("the bridge backend needs transformer-lens>=3.9: pip install 'transformer-lens>=3.9,<5'") from exc
    hf_config = text_config(hf_model.config)
    arch = (getattr(hf_model.config, "architectures", None) or [type(hf_model).__name__])[0]
    if (why := bridge_refusal(arch)):
        raise ModelSpecError(why)
    from xtl.models.views import detached

    hf_model = detached(hf_model, dtype, device).eval()  # the bridge restructures this view, not the caller's model
    try:
        with _no_processor():
            bridge = TransformerBridge.boot_transformers(name, hf_model=hf_model, tokenizer=_bridge_tokenizer(tokenizer),
                                                         device=device, dtype=dtype)
    except (ValueError, NotImplementedError, KeyError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelSpecError(f"TransformerBridge cannot wrap {arch} ({first}); use backend='hooked' where "
                             "TransformerLens 3 builds it, or an architecture the bridge lists") from exc
    _rotary_cast_back(bridge, str(getattr(hf_config, "model_type", "")), dtype)
    cap = getattr(hf_config, "final_logit_softcapping", None)
    n_kv = getattr(hf_config, "num_key_value_heads", None)
    cfg = BridgeConfig(
        model_name=name, n_layers=int(hf_config.num_hidden_layers), n_heads=int(hf_config.num_attention_heads),
        d_head=head_dim(hf_config), d_model=int(hf_config.hidden_size),
        d_mlp=int(getattr(hf_config, "intermediate_size", 0) or 0), d_vocab=int(hf_config.vocab_size),
        n_key_value_heads=int(n_kv) if n_kv else None, n_ctx=int(n_ctx), device=str(device), dtype=dtype,
        original_architecture=arch, output_logits_soft_cap=float(cap) if cap else -1.0,
        parallel_attn_mlp=bool(getattr(bridge.cfg, "parallel_attn_mlp", False)))
    model = BridgeModel(bridge, tokenizer, cfg)
    cfg.tokenizer_prepends_bos = len(tokenizer.encode("")) > 0
    return model.eval()
