"""Reading a Hugging Face config: architecture, head size, rotary bases, the context xtl gives."""

from __future__ import annotations

from typing import Any

__all__ = ["architecture", "text_config", "shares_kv", "head_dim", "rope_theta", "default_n_ctx"]

_MODEL_TYPES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
                "qwen2": "Qwen2ForCausalLM", "gemma3_text": "Gemma3ForCausalLM"}


def text_config(hf_config: Any) -> Any:
    """The language model's config: the ``text_config`` of a multimodal config, else the config."""
    getter = getattr(hf_config, "get_text_config", None)
    return getter() if callable(getter) else hf_config


def shares_kv(text: Any) -> bool:
    """Whether some layers reuse an earlier layer's keys and values (Gemma 4's ``num_kv_shared_layers``)."""
    return int(getattr(text, "num_kv_shared_layers", 0) or 0) > 0


def architecture(hf_config: Any) -> str:
    """The config's architecture class name (``LlamaForCausalLM``...), by its model type if unnamed."""
    archs = getattr(hf_config, "architectures", None)
    if archs:
        return archs[0]
    return _MODEL_TYPES.get(getattr(hf_config, "model_type", ""), "")


def head_dim(hf_config: Any) -> int:
    """The width of one attention head; for configs with per-layer widths (Gemma 4's global layers),
    the width the config declares as ``head_dim`` (its sliding layers')."""
    try:
        value = getattr(hf_config, "head_dim", None)
    except Exception:  # transformers refuses a global read of a per-layer attribute
        value = hf_config.to_dict().get("head_dim")
    return int(value) if value else hf_config.hidden_size // hf_config.num_attention_heads


def rope_theta(hf_config: Any, layer_type: str = "full_attention") -> float:
    params = getattr(hf_config, "rope_parameters", None)
    if isinstance(params, dict):
        if layer_type in params and isinstance(params[layer_type], dict):
            return float(params[layer_type].get("rope_theta"))
        if "rope_theta" in params:
            return float(params["rope_theta"])
    if layer_type == "sliding_attention" and getattr(hf_config, "rope_local_base_freq", None):
        return float(hf_config.rope_local_base_freq)
    return float(getattr(hf_config, "rope_theta", 10000.0))


def default_n_ctx(hf_config: Any) -> int:
    """The context xtl gives a model: its trained positions, capped at 32,768 (memory)."""
    return min(int(getattr(hf_config, "max_position_embeddings", 4096) or 4096), 32768)


#: Rope types HookedTransformer computes as Hugging Face does, per architecture family
#: (``llama3``: TransformerLens' NTK-by-parts; ``linear``: its rotary scaling on global layers).
HOOKED_ROPE_TYPES = {"LlamaForCausalLM": ("default", "llama3", "linear"), "MistralForCausalLM": ("default",),
                     "Qwen2ForCausalLM": ("default",), "Gemma3ForCausalLM": ("default", "linear")}

#: Config fields whose non-neutral value changes the computation in a way HookedTransformer's
#: blocks do not reproduce, with what each means (the bridge runs the model's own code).
_HOOKED_UNSUPPORTED = {
    "logit_scale": (1.0, "a logit scale"), "logits_scaling": (1.0, "a logits divisor"),
    "embedding_multiplier": (1.0, "an embedding multiplier"), "residual_multiplier": (1.0, "a residual multiplier"),
    "attention_multiplier": (None, "an attention multiplier"), "num_kv_shared_layers": (0, "layers sharing K/V"),
    "attention_chunk_size": (None, "chunked attention"), "partial_rotary_factor": (1.0, "partial rotary"),
    "attention_bias": (False, "attention biases"), "mlp_bias": (False, "MLP biases"),
}


def rope_parameters(hf_config: Any, layer_type: str = "full_attention") -> dict[str, Any]:
    """The rope parameters of one kind of layer (``rope_type`` "default" when unscaled), from
    ``rope_parameters`` (transformers 5, per layer type where the model has several) or
    ``rope_scaling`` (older configs: it scales global layers only)."""
    params = getattr(hf_config, "rope_parameters", None)
    if isinstance(params, dict) and any(isinstance(v, dict) for v in params.values()):
        params = params.get(layer_type) if isinstance(params.get(layer_type), dict) else {}
    if not isinstance(params, dict) or not params:
        params = (getattr(hf_config, "rope_scaling", None) or {}) if layer_type == "full_attention" else {}
    params = dict(params)
    params["rope_type"] = str(params.get("rope_type") or params.get("type") or "default").lower()
    return params


def hooked_refusal(hf_config: Any) -> str | None:
    """Why xtl's HookedTransformer conversion would not compute what this config's Hugging Face
    model computes (None when it would): read from the config alone, before weights load."""
    arch = architecture(hf_config)
    allowed = HOOKED_ROPE_TYPES.get(arch, ("default",))  # TransformerLens' converter: unscaled rope only
    kinds = ("full_attention", "sliding_attention") if arch == "Gemma3ForCausalLM" else ("full_attention",)
    for kind in kinds:
        rope = rope_parameters(hf_config, kind)
        rope_type = rope["rope_type"]
        if rope_type not in allowed or (rope_type == "linear" and kind == "sliding_attention"):
            return f"rope scaling {rope_type!r}" + (f" on {kind} layers" if len(kinds) > 1 else "")
    for field, (neutral, meaning) in _HOOKED_UNSUPPORTED.items():
        value = getattr(hf_config, field, neutral)
        if field in ("attention_bias", "mlp_bias") and (arch == "Qwen2ForCausalLM" or arch not in HOOKED_ROPE_TYPES):
            continue  # Qwen2's q/k/v biases are converted, and TransformerLens' converter knows its own
        if value not in (neutral, None) and not (field == "partial_rotary_factor" and value == 1):
            return f"{meaning} ({field}={value})"
    return None
