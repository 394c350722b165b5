"""Tiny models from the real configs of ``tests/configs`` (issue 36): every field of the published
``config.json`` / ``generation_config.json`` kept, only widths, depth and vocabulary shrunk, and a
byte-level tokenizer with the model's own special tokens and chat template.

``shrink(key)`` edits the JSON and builds the config with transformers' ``AutoConfig``, so that
fields transformers derives (``layer_types`` from ``sliding_window_pattern``, ``rope_parameters``
from ``rope_scaling``) are derived again from the shrunk values. What changes, per field:

* widths: hidden 64, intermediate 128 (MoE experts 64), head_dim 16 (Gemma 4's global heads 32),
  heads 4, kv heads by kind (MHA 4, GQA 2, MQA 1), per-layer-input width 16;
* depth: 4 layers; a sliding/full pattern keeps both kinds (Gemma 3 pattern 6 -> 4, Gemma 4
  ``layer_types`` alternating with 2 of 4 layers sharing K/V), NoPE and window-layer lists cut to
  4, sliding windows capped at 16 positions so that the test prompts (about 60-100 tokens) cross
  them; MoE 4 experts, top-k at most 2;
* rotary: longrope factor lists cut to head_dim/2 (the rotary dims); every other rope field kept;
* vocabulary: the model's special tokens (in real-id order) then the 256 bytes; every token id of
  the config, its sub-configs and the generation config is remapped (ids the tokenizer facts do not
  name get a placeholder special ``<|xtl_id_N|>``);
* vision/audio sub-configs: same widths, 1 layer, a 56-pixel image of 14-pixel patches.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import torch

CONFIGS = Path(__file__).resolve().parent / "configs"
KEYS = sorted(p.name for p in CONFIGS.iterdir() if (p / "config.json").exists())

HIDDEN, INTERMEDIATE, LAYERS, HEADS, HEAD_DIM, WINDOW = 64, 128, 4, 4, 16, 16
_ID_KEY = re.compile(r"(_token_id|_token_index|_token_ids)$")
_SUB = ("text_config", "vision_config", "audio_config")


def _raw(key: str) -> tuple[dict, dict, dict]:
    folder = CONFIGS / key
    return (json.loads((folder / "config.json").read_text()), json.loads((folder / "generation_config.json").read_text()),
            json.loads((folder / "special_tokens.json").read_text()))


def _ids_in(tree: Any, out: set[int]) -> None:
    if isinstance(tree, dict):
        for k, v in tree.items():
            if _ID_KEY.search(k) or k in ("eos_token_id", "bos_token_id", "pad_token_id"):
                for x in (v if isinstance(v, list) else [v]):
                    if isinstance(x, int) and not isinstance(x, bool):
                        out.add(x)
            elif isinstance(v, dict):
                _ids_in(v, out)


def _remap_ids(tree: Any, mapping: dict[int, int]) -> Any:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            if _ID_KEY.search(k):
                out[k] = [mapping[x] for x in v] if isinstance(v, list) else (mapping[v] if isinstance(v, int) and not isinstance(v, bool) else v)
            else:
                out[k] = _remap_ids(v, mapping) if isinstance(v, dict) else v
        return out
    return tree


def special_tokens_json(key: str) -> dict:
    """The key's ``special_tokens.json`` (the real tokenizer's facts)."""
    return _raw(key)[2]


@functools.lru_cache(maxsize=None)
def specials(key: str) -> dict[str, tuple[int, int]]:
    """text -> (real id, tiny id) of every special token, placeholders for unnamed config ids included."""
    cfg, gen, st = _raw(key)
    real = dict(st["special_tokens"])
    named = set(real.values())
    ids: set[int] = set()
    _ids_in(cfg, ids)
    _ids_in(gen, ids)
    for x in sorted(ids - named):
        real[f"<|xtl_id_{x}|>"] = x
    by_id: dict[int, list[str]] = {}
    for text, rid in real.items():
        by_id.setdefault(rid, []).append(text)
    out = {}
    for tiny, rid in enumerate(sorted(by_id)):
        for text in by_id[rid]:
            out[text] = (rid, tiny)
    return out


def id_map(key: str) -> dict[int, int]:
    """Real token id -> tiny id, for every special the tiny vocabulary has."""
    return {rid: tiny for rid, tiny in specials(key).values()}


def vocab_size(key: str) -> int:
    return len(set(id_map(key).values())) + 256


def _kv_heads(n_heads: int, n_kv: int | None) -> int:
    if n_kv is None or n_kv == n_heads:
        return HEADS
    return 1 if n_kv == 1 else 2


def _shrink_text(c: dict, vocab: int, full_types: list[str] | None) -> dict:
    c = dict(c)
    n_layers = c.get("num_hidden_layers", c.get("n_layer"))
    for k in ("hidden_size", "n_embed"):
        if k in c:
            c[k] = HIDDEN
    if "hidden_size" not in c and "n_embed" not in c:
        c["hidden_size"] = HIDDEN
    for k in ("intermediate_size",):
        if c.get(k) is not None:
            c[k] = INTERMEDIATE
    if c.get("moe_intermediate_size") is not None:
        c["moe_intermediate_size"] = HIDDEN
    if c.get("expert_intermediate_size") is not None:
        c["expert_intermediate_size"] = HIDDEN
    heads_key = "n_head" if "n_head" in c else "num_attention_heads"
    n_heads = c.get(heads_key)
    c[heads_key] = HEADS
    if "num_key_value_heads" in c:
        c["num_key_value_heads"] = _kv_heads(n_heads, c["num_key_value_heads"])
    if c.get("head_dim") is not None:
        c["head_dim"] = HEAD_DIM
    if c.get("global_head_dim") is not None:
        c["global_head_dim"] = 2 * HEAD_DIM
    if c.get("hidden_size_per_layer_input"):
        c["hidden_size_per_layer_input"] = HEAD_DIM
    if c.get("vocab_size_per_layer_input"):
        c["vocab_size_per_layer_input"] = vocab
    if c.get("num_experts"):
        c["num_experts"] = 4
        c["num_experts_per_tok"] = min(2, c.get("num_experts_per_tok") or 2)
    if c.get("top_k_experts"):
        c["top_k_experts"] = min(2, c["top_k_experts"])
    c["n_layer" if "n_layer" in c else "num_hidden_layers"] = LAYERS
    if c.get("max_window_layers") is not None:
        c["max_window_layers"] = max(1, round(c["max_window_layers"] * LAYERS / n_layers))
    if isinstance(c.get("no_rope_layers"), list):
        c["no_rope_layers"] = c["no_rope_layers"][:LAYERS]
    if c.get("sliding_window_pattern"):
        c["sliding_window_pattern"] = min(c["sliding_window_pattern"], LAYERS)
    types = c.get("layer_types", full_types)
    if isinstance(types, list):
        kinds = list(dict.fromkeys(types))
        if c.get("num_kv_shared_layers"):
            # the shared layers reuse the K/V of the last unshared layer of their kind: both kinds
            # must come before them
            c["layer_types"] = (kinds * LAYERS)[:LAYERS]
            c["num_kv_shared_layers"] = LAYERS // 2
        elif len(kinds) > 1:
            c["layer_types"] = [kinds[0]] * (LAYERS - 1) + [kinds[1]]
        else:
            c["layer_types"] = types[:LAYERS]
    for k in ("sliding_window", "sliding_window_size"):
        if isinstance(c.get(k), int) and isinstance(types, list) and len(set(types)) > 1:
            c[k] = min(c[k], WINDOW)
    rope = c.get("rope_scaling")
    if isinstance(rope, dict) and rope.get("long_factor"):
        rot = int(HEAD_DIM * c.get("partial_rotary_factor", 1.0))
        c["rope_scaling"] = {**rope, "long_factor": rope["long_factor"][:rot // 2],
                             "short_factor": rope["short_factor"][:rot // 2]}
    c["vocab_size"] = vocab
    return c


def _shrink_vision(c: dict) -> dict:
    c = dict(c)
    c.update(hidden_size=HIDDEN, intermediate_size=INTERMEDIATE, num_hidden_layers=1, num_attention_heads=HEADS)
    if "image_size" in c:
        c.update(image_size=56, patch_size=14)
    for k in ("head_dim", "global_head_dim"):
        if c.get(k) is not None:
            c[k] = HEAD_DIM
    if c.get("num_key_value_heads") is not None:
        c["num_key_value_heads"] = HEADS
    if c.get("output_proj_dims") is not None:
        c["output_proj_dims"] = HIDDEN
    if isinstance(c.get("subsampling_conv_channels"), list):
        c["subsampling_conv_channels"] = [8, 8]
    if c.get("default_output_length") is not None:
        c["default_output_length"] = 4
    return c


@functools.lru_cache(maxsize=None)
def _shrunk_dicts(key: str) -> tuple[dict, dict]:
    import transformers as tf

    cfg, gen, _ = _raw(key)
    # the layer pattern transformers derives at full size (Gemma 3's default sliding_window_pattern)
    full_types = getattr(tf.AutoConfig.for_model(**copy.deepcopy(cfg)).get_text_config(), "layer_types", None)
    mapping, vocab = id_map(key), vocab_size(key)
    cfg, gen = _remap_ids(cfg, mapping), _remap_ids(gen, mapping)
    if "text_config" in cfg:
        cfg["text_config"] = _shrink_text(cfg["text_config"], vocab, full_types)
        for sub in ("vision_config", "audio_config"):
            if isinstance(cfg.get(sub), dict):
                cfg[sub] = _shrink_vision(cfg[sub])
        if cfg.get("mm_tokens_per_image"):
            cfg["mm_tokens_per_image"] = 4
        if cfg.get("vision_soft_tokens_per_image"):
            cfg["vision_soft_tokens_per_image"] = 4
    else:
        cfg = _shrink_text(cfg, vocab, full_types)
    return cfg, gen


def shrink(key: str):
    """(config, generation config) of ``key``, shrunk (see the module docstring)."""
    import transformers as tf

    cfg, gen = _shrunk_dicts(key)
    config = tf.AutoConfig.for_model(**copy.deepcopy(cfg))
    generation = tf.GenerationConfig(**copy.deepcopy(gen))
    return config, generation


def eos_ids(key: str) -> list[int]:
    """The tiny ids generation stops at: the generation config's eos list (or the config's)."""
    _, gen = shrink(key)
    eos = gen.eos_token_id
    if eos is None:
        config, _ = shrink(key)
        eos = config.get_text_config().eos_token_id
    return [eos] if isinstance(eos, int) else list(eos or [])


@functools.lru_cache(maxsize=None)
def _tokenizer(key: str):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    _, _, st = _raw(key)
    spec = specials(key)
    vocab = {text: tiny for text, (_, tiny) in spec.items()}
    first_byte = len(set(vocab.values()))
    for n, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet())):
        vocab[ch] = first_byte + n
    # several texts for one real id (Granite's <|end_of_text|> is bos, eos, pad and unk) share it
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in spec])
    bos = st.get("bos_token")
    if st.get("add_bos_token") and bos:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, vocab[bos])])
    kw = {name: st.get(name) for name in ("bos_token", "eos_token", "pad_token", "unk_token") if st.get(name)}
    out = PreTrainedTokenizerFast(tokenizer_object=tok, **kw)
    if st.get("chat_template"):
        out.chat_template = st["chat_template"]
    return out


def tokenizer(key: str):
    """A byte-level tokenizer with ``key``'s special tokens (same text, tiny ids), its BOS rule and
    chat template. A fresh copy per call, so a test that changes it changes no other test's."""
    return copy.deepcopy(_tokenizer(key))


def architecture_class(key: str):
    import transformers as tf

    config, _ = shrink(key)
    return getattr(tf, config.architectures[0])


@functools.lru_cache(maxsize=None)
def _model(key: str, seed: int):
    config, generation = shrink(key)
    torch.manual_seed(seed)
    cls = architecture_class(key)
    config._attn_implementation = "eager"
    for sub in _SUB:
        if getattr(config, sub, None) is not None:
            getattr(config, sub)._attn_implementation = "eager"
    hf = cls(config).to(torch.float32).eval()
    hf.generation_config = generation
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # O(1) logits (few near-ties) and random norms, biases, scalars
        for name, p in hf.named_parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5)
            else:
                p.add_(torch.randn(p.shape, generator=gen) * 0.2)
    return hf


def model(key: str, dtype: torch.dtype = torch.float32, seed: int = 0):
    """A random-weight model of ``key``'s shrunk config, eval mode, eager attention: a fresh copy of
    one cached per session (so that wrapping it, e.g. by the bridge, in place leaves the cache alone)."""
    return copy.deepcopy(_model(key, seed)).to(dtype)
