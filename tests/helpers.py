"""Shared test helpers (imported by the tests and by conftest; conftest itself is never
imported by a test): prompts, the data path, a JSONL task writer, and one way to run the CLI."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

#: Architectures the bridge tests build (the last four HookedTransformer cannot, or not with xtl).
BRIDGE_ARCHS = ["llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "olmo2", "granite"]

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

PROMPTS = {
    "en": "Human: Which city is the capital of Japan?\n(A) Osaka (B) Tokyo\nAssistant: My answer:",
    "zh": "人类：日本的首都是哪个城市？\n(A) 大阪 (B) 东京\n助手：我的答案：",
}


def write_jsonl(path: Path, rows: Iterable[object]) -> Path:
    """Write ``rows`` as JSON Lines (UTF-8, one value per line) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    return path


@dataclass
class Result:
    """What a CLI run gave: exit code, stdout and stderr (like ``subprocess.CompletedProcess``)."""

    returncode: int
    stdout: str
    stderr: str


def console_script() -> list[str]:
    """The installed ``xtl`` console script (``python -m xtl.cli`` where it is not on PATH)."""
    script = Path(sys.executable).parent / "xtl"
    return [str(script)] if script.exists() else [sys.executable, "-m", "xtl.cli"]


def run_cli(*args: str, env: dict | None = None, real: bool = False, timeout: int = 600) -> Result:
    """Run ``xtl ARGS``: in this process through ``xtl.cli.main`` (the console script's own
    entry point, without paying for a fresh interpreter and torch import), or, with ``real``,
    as the installed console script in a new process (kill, concurrency, start-up)."""
    if real:
        proc = subprocess.run([*console_script(), *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **(env or {})})
        return Result(proc.returncode, proc.stdout, proc.stderr)
    from xtl.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:  # argparse usage errors and --help/--version
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return Result(code, out.getvalue(), err.getvalue())


def byte_tokenizer():
    """A byte-level tokenizer (256 bytes + <bos>/<eos>/<pad>) that prepends BOS like Llama's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>")


def tiny_hf(arch: str, seed: int = 0, n_layers: int = 4):
    """A random-weight HF causal LM of ``arch`` (llama, mistral, qwen2, gemma3; for the bridge also
    qwen3, gemma2 with both soft-caps, olmo2 and granite, which HookedTransformer cannot build), float64."""
    import transformers as tf

    common = dict(vocab_size=259, hidden_size=32, intermediate_size=64, num_hidden_layers=n_layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if arch == "llama":
        cfg = tf.LlamaConfig(**common)
        cls = tf.LlamaForCausalLM
    elif arch == "mistral":
        cfg = tf.MistralConfig(**common, sliding_window=None)
        cls = tf.MistralForCausalLM
    elif arch == "qwen2":
        cfg = tf.Qwen2Config(**common)
        cls = tf.Qwen2ForCausalLM
    elif arch == "gemma3":
        cfg = tf.Gemma3TextConfig(**common, head_dim=8, query_pre_attn_scalar=8, sliding_window=4,
                                  layer_types=["sliding_attention", "full_attention"] * (n_layers // 2))
        cls = tf.Gemma3ForCausalLM
    elif arch == "qwen3":
        cfg = tf.Qwen3Config(**common, head_dim=8)
        cls = tf.Qwen3ForCausalLM
    elif arch == "gemma2":
        cfg = tf.Gemma2Config(**common, head_dim=8, query_pre_attn_scalar=8, sliding_window=4,
                              final_logit_softcapping=3.0, attn_logit_softcapping=5.0,
                              layer_types=["sliding_attention", "full_attention"] * (n_layers // 2))
        cls = tf.Gemma2ForCausalLM
    elif arch == "olmo2":
        cfg = tf.Olmo2Config(**common)
        cls = tf.Olmo2ForCausalLM
    elif arch == "granite":
        cfg = tf.GraniteConfig(**common, residual_multiplier=0.5, embedding_multiplier=2.0,
                               logits_scaling=2.0, attention_multiplier=0.3)
        cls = tf.GraniteForCausalLM
    else:
        raise ValueError(arch)
    cfg.architectures = [cls.__name__]
    torch.manual_seed(seed)
    model = cls(cfg).to(torch.float64).eval()
    with torch.no_grad():  # random norms so that post-norm paths are exercised
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.randn_like(p) * 0.3 + (0.0 if arch.startswith("gemma") else 1.0))
    return model


def _vocab(kind: str) -> tuple[list[str], list[float], list[int], list[str]]:
    """(tokens, scores, token types, merges) of a small sentencepiece (``llama``) or byte-level
    (``gpt2``) vocabulary with control, byte, multi-space and CJK tokens."""
    if kind == "llama":
        tokens = ["<pad>", "<eos>", "<bos>", "<unk>"] + [f"<0x{b:02X}>" for b in range(256)]
        types = [3, 3, 3, 2] + [6] * 256
        pieces = ["\u2581", "t", "h", "e", "c", "a", "\u2581t", "he", "\u2581the", "ca", "\u2581c", "\u2581ca",
                  "\u2581cat", "  ", "   ", "\u65e5", "\u672c", "\u65e5\u672c", "\u2581\u65e5", "<start_of_turn>"]
        tokens += pieces
        types += [1] * (len(pieces) - 1) + [4]
        scores = [0.0] * 260 + [-float(i) for i in range(len(pieces))]
        return tokens, scores, types, []
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    alphabet = sorted(bytes_to_unicode().values())
    merges = ["\u0120 t", "h e", "\u0120t he", "c a", "\u0120 ca", "\u0120ca t"]
    tokens = ["<|endoftext|>"] + alphabet + ["\u0120t", "he", "\u0120the", "ca", "\u0120ca", "\u0120cat", "<|im_start|>"]
    types = [3] + [1] * (len(tokens) - 2) + [3]
    return tokens, [0.0] * len(tokens), types, merges


def write_tiny_gguf(path: Path, arch: str, seed: int = 0) -> Path:
    """A random-weight GGUF of ``arch`` (gemma3, llama or qwen2): 2 layers, F32 norms, F16 and
    Q8_0/Q4_0 matrices, a tokenizer in the file's metadata."""
    import gguf
    import numpy as np
    import transformers as tf

    kind = "gpt2" if arch == "qwen2" else "llama"
    tokens, scores, types, merges = _vocab(kind)
    common = dict(vocab_size=len(tokens), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    if arch == "gemma3":
        cfg = tf.Gemma3TextConfig(**common, head_dim=16, sliding_window=8)
        cls, gguf_arch = tf.Gemma3ForCausalLM, gguf.MODEL_ARCH.GEMMA3
    elif arch == "llama":
        cfg = tf.LlamaConfig(**common, tie_word_embeddings=False)
        cls, gguf_arch = tf.LlamaForCausalLM, gguf.MODEL_ARCH.LLAMA
    else:
        cfg = tf.Qwen2Config(**common)
        cls, gguf_arch = tf.Qwen2ForCausalLM, gguf.MODEL_ARCH.QWEN2
    torch.manual_seed(seed)
    model = cls(cfg)
    names = gguf.get_tensor_name_map(gguf_arch, cfg.num_hidden_layers)
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf_arch])
    writer.add_name(f"tiny-{arch}")
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(10000.0 if arch != "gemma3" else 1e6)
    if arch == "gemma3":
        writer.add_key_length(16)
        writer.add_value_length(16)
        writer.add_sliding_window(8)
    writer.add_tokenizer_model(kind)
    writer.add_tokenizer_pre("default" if kind == "llama" else "qwen2")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    if merges:
        writer.add_token_merges(merges)
    writer.add_bos_token_id(2 if kind == "llama" else 0)
    writer.add_eos_token_id(1 if kind == "llama" else 0)
    if kind == "llama":
        writer.add_unk_token_id(3)
        writer.add_pad_token_id(0)
    writer.add_add_bos_token(kind == "llama")
    qtypes = [gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_0]
    for k, (name, param) in enumerate(model.state_dict().items()):
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        base, suffix = name.rsplit(".", 1)
        target = names.get_name(base)
        assert target is not None, name
        data = (param.detach().float().numpy() + (1.0 if "norm" in name else 0.0))
        if data.ndim == 1:
            writer.add_tensor(f"{target}.{suffix}", data.astype(np.float32))
        elif "embed" in name:
            writer.add_tensor(f"{target}.{suffix}", data.astype(np.float16))
        else:
            qtype = qtypes[k % 2]
            writer.add_tensor(f"{target}.{suffix}", gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
