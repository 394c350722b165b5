"""The HookedTransformer backend: HF configs and weights converted for TransformerLens 3.

Weights are never folded or centred: xtl patches activations, and they must be the ones the
Hugging Face model computes. This module imports ``HookedTransformer`` and so is loaded only where
TransformerLens 3 is installed and the hooked backend is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from xtl.errors import ModelSpecError
from xtl.models.hfconfig import (HOOKED_ROPE_TYPES, architecture, default_n_ctx, head_dim, hooked_refusal,
                                 rope_parameters, rope_theta)

__all__ = ["tl_config_from_hf", "hooked_from_hf", "hooked_from_folder", "hooked_from_hub", "finish"]


def tl_config_from_hf(hf_config: Any, n_ctx: int | None = None) -> dict[str, Any]:
    """Build a HookedTransformerConfig dict from a HF config, by architecture, not by name.

    TransformerLens infers some architectures from the model *name*, which breaks for local
    folders and unofficial checkpoints; this reads everything from the config itself.
    """
    arch = architecture(hf_config)
    refusal = hooked_refusal(hf_config)
    if refusal:
        raise ModelSpecError(f"HookedTransformer does not compute {arch}'s {refusal} as Hugging Face does; "
                             "use backend='bridge' (or 'auto')")
    if arch not in HOOKED_ROPE_TYPES:
        # Any other architecture: TransformerLens' own converter through a neutral path, so that
        # its name-based shortcuts cannot misfire on a local folder's name.
        from transformer_lens.loading_from_pretrained import convert_hf_model_config

        return convert_hf_model_config_via_tmp(hf_config, convert_hf_model_config)
    common = {
        "d_model": hf_config.hidden_size,
        "d_head": head_dim(hf_config),
        "n_heads": hf_config.num_attention_heads,
        "d_mlp": hf_config.intermediate_size,
        "n_layers": hf_config.num_hidden_layers,
        "n_ctx": int(n_ctx or default_n_ctx(hf_config)),
        "eps": hf_config.rms_norm_eps,
        "d_vocab": hf_config.vocab_size,
        "normalization_type": "RMS",
        "positional_embedding_type": "rotary",
        "rotary_adjacent_pairs": False,
        "rotary_dim": head_dim(hf_config),
        "final_rms": True,
        "gated_mlp": True,
        "original_architecture": arch,
    }
    n_kv = getattr(hf_config, "num_key_value_heads", None)
    if arch in ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"):
        cfg = dict(common, act_fn=hf_config.hidden_act, rotary_base=rope_theta(hf_config),
                   n_key_value_heads=n_kv if n_kv and n_kv != hf_config.num_attention_heads else None)
        cfg.update(_rope_fields(rope_parameters(hf_config)))
        window = getattr(hf_config, "sliding_window", None)
        if arch == "MistralForCausalLM" and window:
            cfg.update(window_size=window, use_local_attn=True,
                       attn_types=["local"] * hf_config.num_hidden_layers)
        if arch == "Qwen2ForCausalLM":
            cfg.update(use_attn_scale=True, default_prepend_bos=False)
        return cfg
    if arch == "Gemma3ForCausalLM":
        layer_types = list(getattr(hf_config, "layer_types", None) or [])
        if not layer_types:
            pattern = getattr(hf_config, "sliding_window_pattern", 6)
            layer_types = ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention"
                           for i in range(hf_config.num_hidden_layers)]
        cfg = dict(
            common,
            act_fn=getattr(hf_config, "hidden_activation", None) or "gelu_pytorch_tanh",
            rotary_base=rope_theta(hf_config, "full_attention"),
            rotary_base_local=rope_theta(hf_config, "sliding_attention"),
            use_attn_scale=True,
            attn_scale=float(getattr(hf_config, "query_pre_attn_scalar", head_dim(hf_config))) ** 0.5,
            n_key_value_heads=n_kv,
            use_normalization_before_and_after=True,
            use_qk_norm=True,
            window_size=hf_config.sliding_window,
            use_local_attn=True,
            attn_types=["global" if t == "full_attention" else "local" for t in layer_types],
        )
        cfg.update(_rope_fields(rope_parameters(hf_config, "full_attention")))
        if getattr(hf_config, "final_logit_softcapping", None):
            cfg["output_logits_soft_cap"] = float(hf_config.final_logit_softcapping)
        if getattr(hf_config, "attn_logit_softcapping", None):
            cfg["attn_scores_soft_cap"] = float(hf_config.attn_logit_softcapping)
        return cfg
    raise AssertionError(arch)  # pragma: no cover - HOOKED_ROPE_TYPES names the four above


def _rope_fields(rope: dict[str, Any]) -> dict[str, Any]:
    """HookedTransformerConfig's fields for a rope scaling :func:`hooked_refusal` accepted."""
    if rope["rope_type"] == "llama3":
        return {"use_NTK_by_parts_rope": True, "NTK_by_parts_factor": float(rope["factor"]),
                "NTK_by_parts_low_freq_factor": float(rope.get("low_freq_factor", 1.0)),
                "NTK_by_parts_high_freq_factor": float(rope.get("high_freq_factor", 4.0)),
                "NTK_original_ctx_len": int(rope["original_max_position_embeddings"])}
    if rope["rope_type"] == "linear":  # global layers only (TransformerLens skips local ones)
        return {"rotary_scaling_factor": float(rope["factor"])}
    return {}


def convert_hf_model_config_via_tmp(hf_config: Any, converter: Any) -> dict[str, Any]:
    """Run TransformerLens' config converter on a config written to a neutrally named folder."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        folder.mkdir()
        hf_config.to_json_file(folder / "config.json")
        try:
            return converter(str(folder))
        except Exception as exc:  # noqa: BLE001 - any failure means: unsupported
            arch = (getattr(hf_config, "architectures", None) or ["?"])[0]
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ModelSpecError(
                f"TransformerLens' HookedTransformer converter cannot read this {arch} config ({first}); "
                "use backend='bridge' (or 'auto')"
            ) from exc


def _converters() -> dict[str, Any]:
    from transformer_lens.pretrained import weight_conversions as wc

    return {"LlamaForCausalLM": wc.convert_llama_weights, "MistralForCausalLM": wc.convert_mistral_weights,
            "Qwen2ForCausalLM": wc.convert_qwen2_weights, "Gemma3ForCausalLM": wc.convert_gemma_weights}


def _convert_weights(hf_model: Any, cfg: HookedTransformerConfig) -> dict[str, torch.Tensor]:
    table = _converters()
    arch = cfg.original_architecture
    if arch in table:
        return table[arch](hf_model, cfg)
    import tempfile

    from transformer_lens.loading_from_pretrained import get_pretrained_state_dict

    # TransformerLens looks a name up in its list of official models unless it is a path that
    # exists; with ``hf_model`` given, the path is not read.
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return get_pretrained_state_dict(tmp, cfg, hf_model)
        except (ValueError, KeyError, AttributeError, NotImplementedError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ModelSpecError(f"TransformerLens cannot convert the weights of {arch} for HookedTransformer "
                                 f"({first}); use backend='bridge' (or 'auto')") from exc


def hooked_from_hf(hf_model: Any, tokenizer: Any, dtype: torch.dtype, device: str,
                   n_ctx: int | None = None) -> HookedTransformer:
    """Wrap an already loaded HF causal LM as an unprocessed HookedTransformer (weights copied)."""
    cfg_dict = tl_config_from_hf(hf_model.config, n_ctx=n_ctx)
    cfg_dict.update(dtype=dtype, device=device, init_weights=False)
    cfg_dict.setdefault("model_name", getattr(hf_model.config, "_name_or_path", "") or "hf-model")
    cfg_dict.pop("tokenizer_name", None)
    cfg_dict.pop("quantization_method", None)
    cfg = HookedTransformerConfig(**cfg_dict)
    if dtype == torch.float32 and any(p.dtype != torch.float32 for p in hf_model.parameters()):
        from xtl.models.views import detached

        hf_model = detached(hf_model, torch.float32)  # converted from float32 weights; the caller's model unchanged
    state_dict = _convert_weights(hf_model, cfg)
    model = HookedTransformer(cfg, tokenizer=None, move_to_device=False)
    model.load_and_process_state_dict(
        {k: v.to(dtype) for k, v in state_dict.items()},
        fold_ln=False, center_writing_weights=False, center_unembed=False,
        fold_value_biases=False, refactor_factored_attn_matrices=False,
    )
    _exact_norms(model, hf_model.config, dict(hf_model.named_parameters()))
    return finish(model, tokenizer)


def _exact_norms(model: HookedTransformer, hf_config: Any, source: Any, get: Any = None) -> None:
    """A 16-bit Gemma's norms computed as Hugging Face computes them (:mod:`xtl.models.gemmanorm`)."""
    from xtl.models.gemmanorm import GEMMA_ARCHS, exact_gemma_norms

    arch = architecture(hf_config)
    if arch in GEMMA_ARCHS:
        exact_gemma_norms(model, list(source), get or (lambda name: source[name].detach()),
                          gemma1=arch == "GemmaForCausalLM")


def hooked_from_folder(folder: Path, hf_config: Any, dtype: torch.dtype, device: str,
                       n_ctx: int | None) -> HookedTransformer | None:
    """Stream a safetensors folder of a covered architecture layer by layer into a
    HookedTransformer (peak memory about the model's own size), weights written once straight into
    the layout :func:`finish` keeps; None when it cannot be streamed. :func:`finish` it with the
    tokenizer."""
    from xtl.models.checkpoint import stream_into, streamable

    converter = _converters().get(architecture(hf_config))
    if converter is None or not streamable(folder):
        return None
    from xtl.models.checkpoint import Checkpoint

    cfg_dict = tl_config_from_hf(hf_config, n_ctx=n_ctx)
    cfg_dict.update(dtype=dtype, device=device, init_weights=False, model_name=folder.name)
    model = stream_into(folder, HookedTransformerConfig(**cfg_dict), converter,
                        upcast=cfg_dict["original_architecture"] == "Gemma3ForCausalLM",
                        prepare=lambda empty: _fast_weight_layout(empty, values=False))
    if model is not None:
        ckpt = Checkpoint(folder, upcast=False)
        _exact_norms(model, hf_config, ckpt.files, ckpt.get)
    return model


def hooked_from_hub(name: str, dtype: torch.dtype, device: str, n_ctx: int | None) -> HookedTransformer:
    """A TransformerLens official model, downloaded from the hub, without weight processing."""
    from transformer_lens.loading_from_pretrained import MODEL_ALIASES, OFFICIAL_MODEL_NAMES

    aliases = {a for names in MODEL_ALIASES.values() for a in names}
    if name not in OFFICIAL_MODEL_NAMES and name not in aliases:
        import difflib

        from xtl.models.names import DEMO_MODEL

        close = difflib.get_close_matches(name, list(OFFICIAL_MODEL_NAMES), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ModelSpecError(
            f"{name!r} is neither a TransformerLens model name, a local folder, a .gguf file nor "
            f"{DEMO_MODEL!r}.{hint}")
    model = HookedTransformer.from_pretrained_no_processing(
        name, dtype=dtype, device=device, **({"n_ctx": n_ctx} if n_ctx else {}))
    model.cfg.default_prepend_bos = False
    _fast_weight_layout(model)
    _alibi_per_pass(model)
    model.eval()
    return model


def _alibi_per_pass(model: HookedTransformer) -> None:
    """TransformerLens 3 keeps each ALiBi attention's bias grown to the longest sequence seen and
    adds its last rows: rows of other positions, equal up to a constant per row, which softmax
    removes only up to rounding (a prompt's logits moved by ~1e-6 after a longer prompt). Each
    pass builds the bias for its own length, so a prompt's numbers never depend on what ran before."""
    if getattr(model.cfg, "positional_embedding_type", None) != "alibi":
        return

    def fresh(attn: Any, _args: Any) -> None:
        attn.alibi = None

    for block in model.blocks:
        block.attn.register_forward_pre_hook(fresh)


def finish(model: HookedTransformer, tokenizer: Any) -> HookedTransformer:
    """Weights in the layout TransformerLens' kernels read, the tokenizer, eval mode."""
    cfg = model.cfg
    _fast_weight_layout(model)
    _alibi_per_pass(model)
    from xtl.models.views import own_tokenizer

    # HookedTransformer reads a pad token when it builds masks: a copy gets one, the caller's is untouched
    model.tokenizer = own_tokenizer(tokenizer, pad_to_eos=True)
    model.cfg.tokenizer_prepends_bos = len(tokenizer.encode("")) > 0
    model.cfg.default_prepend_bos = False  # xtl tokenises itself with the tokenizer's own rule
    model.to(cfg.device)
    model.eval()
    return model


def _dense(tensor: torch.Tensor, values: bool) -> torch.Tensor:
    """``tensor`` made contiguous; without ``values``, an uninitialised tensor of that layout."""
    return tensor.contiguous() if values else torch.empty_like(tensor, memory_format=torch.contiguous_format)


def _fast_weight_layout(model: HookedTransformer, values: bool = True) -> None:
    """Store weights in the memory layout TransformerLens' kernels ask for.

    TransformerLens' Unembed, gated MLP and attention output call ``W.T.contiguous()`` (or
    ``rearrange(W_O, ...).contiguous()``) on every forward, which copies each weight matrix
    per decoding step (671 MB for Gemma 3's unembedding alone). Stored as the transpose of a
    contiguous tensor, those calls are no-ops. Values are unchanged, so logits are bitwise equal.
    ``values=False`` only lays out empty parameters (a streamed load then writes each weight once,
    in place, instead of writing it and copying it again).
    """
    def param(tensor: torch.Tensor) -> torch.nn.Parameter:
        return torch.nn.Parameter(tensor, requires_grad=False)

    for module in [model.unembed, *[b.mlp for b in model.blocks]]:
        for name in ("W_U", "W_in", "W_gate", "W_out"):
            weight = getattr(module, name, None)
            if isinstance(weight, torch.nn.Parameter) and weight.dim() == 2 and not weight.T.is_contiguous():
                setattr(module, name, param(_dense(weight.detach().T, values).T))
    for block in model.blocks:
        for name in ("W_Q", "W_K", "W_V", "_W_K", "_W_V"):  # read as rearrange(W, "h m d -> (h d) m")
            weight = block.attn._parameters.get(name)
            if weight is not None and weight.dim() == 3 and not weight.transpose(1, 2).is_contiguous():
                block.attn._parameters[name] = param(_dense(weight.detach().transpose(1, 2), values).transpose(1, 2))
        w_o = getattr(block.attn, "W_O", None)
        if isinstance(w_o, torch.nn.Parameter) and w_o.dim() == 3:
            h, d, m = w_o.shape
            flat = (w_o.detach().permute(2, 0, 1).reshape(m, h * d).contiguous() if values else
                    torch.empty(m, h * d, dtype=w_o.dtype, device=w_o.device))
            block.attn.W_O = param(flat.T.reshape(h, d, m))


_finish = finish  # the name older benchmarks and tests import
