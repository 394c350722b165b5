"""Reading a Hugging Face config: architecture, head size, rotary bases, the context xtl gives."""

from __future__ import annotations

from typing import Any

__all__ = ["architecture", "head_dim", "rope_theta", "default_n_ctx"]

_MODEL_TYPES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
                "qwen2": "Qwen2ForCausalLM", "gemma3_text": "Gemma3ForCausalLM"}


def architecture(hf_config: Any) -> str:
    """The config's architecture class name (``LlamaForCausalLM``...), by its model type if unnamed."""
    archs = getattr(hf_config, "architectures", None)
    if archs:
        return archs[0]
    return _MODEL_TYPES.get(getattr(hf_config, "model_type", ""), "")


def head_dim(hf_config: Any) -> int:
    value = getattr(hf_config, "head_dim", None)
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
