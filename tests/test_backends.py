"""The TransformerBridge backend: parity with plain Hugging Face hooks on every architecture the
bridge serves (three HookedTransformer cannot build), identity, agreement with the hooked backend,
sweeps token-identical to single transplants, stores that refuse the other backend, bad input."""

from __future__ import annotations

import pytest
import torch

import xtl
from xtl.errors import ModelSpecError, SiteError, StoreError
from xtl.engine import Pair, sweep
from xtl.models.backends import hooked_available
from helpers import BRIDGE_ARCHS, PROMPTS, run_cli, tiny_hf
from reference import assert_sweep_equals_transplant, hf_reference

SITES = ["attn", "mlp", "block", "heads:1,3", "attn-authors"]
MAX_NEW = 10
needs_hooked = pytest.mark.skipif(not hooked_available(), reason="HookedTransformer was removed in TransformerLens 4")


@pytest.mark.parametrize("arch", BRIDGE_ARCHS)
@pytest.mark.parametrize("site", SITES)
def test_bridge_parity_with_hugging_face_hooks(bridged, tokenizer, arch, site):
    hf, model = bridged[arch]
    assert model.backend == "bridge"
    for i, j in [(3, 1), (1, 3), (2, 2), (3, 0)]:
        got = xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=i, tgt_layer=j, site=site,
                             max_new_tokens=MAX_NEW)
        expected = hf_reference(hf, tokenizer, PROMPTS["zh"], PROMPTS["en"], i, j, site, MAX_NEW)
        assert got.tokens == expected, (arch, site, i, j)


@pytest.mark.parametrize("arch", ["gemma2", "olmo2"])
def test_bridge_identity_reproduces_vanilla(bridged, arch):
    _, model = bridged[arch]
    for site in SITES[:-1]:  # attn-authors adds the residual twice by design
        for layer in range(model.cfg.n_layers):
            res = xtl.transplant(model, source=PROMPTS["en"], target=PROMPTS["en"], src_layer=layer, tgt_layer=layer,
                                 site=site, max_new_tokens=MAX_NEW)
            assert res.tokens == res.vanilla_tokens, (arch, site, layer)
            assert torch.equal(res.first_logprobs, res.vanilla_first_logprobs), (arch, site, layer)


def test_vanilla_on_the_bridge_is_hugging_face_greedy(bridged, tokenizer):
    for arch in ("qwen3", "olmo2", "gemma2"):
        hf, model = bridged[arch]
        ids = torch.tensor([tokenizer(PROMPTS["en"])["input_ids"]])
        with torch.no_grad():
            out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_NEW, do_sample=False,
                              eos_token_id=2, pad_token_id=0)[0, ids.shape[1]:].tolist()
        expected = out[:out.index(2)] if 2 in out else out
        assert xtl.vanilla(model, PROMPTS["en"], max_new_tokens=MAX_NEW).tokens == expected, arch


@needs_hooked
@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_bridge_agrees_with_hooked(bridged, tiny_models, arch):
    _, bridge = bridged[arch]
    _, hooked = tiny_models[arch]
    for site in SITES:
        for i, j in [(3, 0), (1, 2)]:
            a = xtl.transplant(hooked, source=PROMPTS["en"], target=PROMPTS["zh"], src_layer=i, tgt_layer=j,
                               site=site, max_new_tokens=MAX_NEW)
            b = xtl.transplant(bridge, source=PROMPTS["en"], target=PROMPTS["zh"], src_layer=i, tgt_layer=j,
                               site=site, max_new_tokens=MAX_NEW)
            assert a.tokens == b.tokens and a.vanilla_tokens == b.vanilla_tokens, (arch, site, i, j)
            # the bridge, like Hugging Face's eager attention, takes its softmax in float32
            torch.testing.assert_close(a.first_logprobs, b.first_logprobs, atol=1e-6, rtol=0)


PAIRS = [Pair(PROMPTS["zh"], PROMPTS["en"], "p0", {"lang": "en", "dataset": "toy"})]


@pytest.mark.parametrize("arch", ["gemma2", "olmo2"])
@pytest.mark.parametrize("site", ["mlp", "heads:0,2", "attn-authors"])
def test_bridge_sweep_token_identical_to_transplant(bridged, arch, site):
    _, model = bridged[arch]
    df = sweep(model, PAIRS, site=site, max_new_tokens=MAX_NEW, batch_size=3, progress=False)
    assert_sweep_equals_transplant(model, df, site, MAX_NEW)


def test_bridge_logits_mode_and_lens(bridged):
    _, model = bridged["qwen3"]
    df = sweep(model, PAIRS, site="attn", mode="logits", candidates=["A", "B"], batch_size=4, progress=False)
    cand = [model.tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in ("A", "B")]
    row = df[(df.src_layer == 1) & (df.tgt_layer == 2)].iloc[0]
    res = xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=1, tgt_layer=2, site="attn",
                         max_new_tokens=1)
    torch.testing.assert_close(torch.tensor(list(row.cand_logprobs), dtype=torch.float64),
                               res.first_logprobs[cand].double(), atol=1e-6, rtol=0)
    lens = xtl.lens(model, PROMPTS["en"], transplant=xtl.Patch(PROMPTS["zh"], 1, 2, "attn"))
    # the lens' last layer decodes the final residual stream: the transplanted greedy token
    assert int(lens.top_ids[-1, 0, 0]) == int(res.first_logprobs.argmax())


def test_store_refuses_a_run_of_the_other_backend(bridged, tmp_path):
    _, model = bridged["llama"]
    store = tmp_path / "store"
    sweep(model, PAIRS, site="mlp", src_layers=[0], tgt_layers=[1], max_new_tokens=2, store=store, progress=False)
    manifest = (store / "manifest.json").read_text()
    assert '"backend": "bridge"' in manifest and '"tl_version"' in manifest
    if not hooked_available():
        return
    other = xtl.from_hf(tiny_hf("llama"), model.tokenizer, dtype="float64", device="cpu", backend="hooked")
    with pytest.raises(StoreError, match=r'backend: store "bridge", now "hooked"'):
        sweep(other, PAIRS, site="mlp", src_layers=[0], tgt_layers=[1], max_new_tokens=2, store=store, progress=False)


def test_backend_errors(tokenizer, monkeypatch, tiny_folder):
    from xtl.models import backends

    with pytest.raises(ModelSpecError, match="unknown backend 'brige'.*Did you mean 'bridge'"):
        xtl.load_model("gemma-3-270m-q4km", backend="brige")
    with pytest.raises(ModelSpecError, match="unknown backend"):
        xtl.from_hf(tiny_hf("llama"), tokenizer, backend=None)
    monkeypatch.setattr(backends, "tl_version", lambda: "4.3.0")
    with pytest.raises(ModelSpecError, match="removed in 4.0.*backend='bridge'"):
        xtl.load_model(tiny_folder, backend="hooked")
    assert backends.resolve_backend("auto", "LlamaForCausalLM") == "bridge"
    monkeypatch.undo()
    with pytest.raises(ModelSpecError, match="supported by neither backend"):
        backends.resolve_backend("bridge", "NoSuchModelForCausalLM")
    if hooked_available():
        with pytest.raises(ModelSpecError, match="not one HookedTransformer builds"):
            backends.resolve_backend("hooked", "Olmo2ForCausalLM")
        assert backends.resolve_backend("auto", "LlamaForCausalLM") == "hooked"
    assert backends.resolve_backend("auto", "Olmo2ForCausalLM") == "bridge"


def test_an_unsupported_architecture_is_refused_before_its_weights_load(tmp_path, tokenizer, monkeypatch):
    import json

    folder = tmp_path / "odd"
    tiny_hf("llama").save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["architectures"] = ["NoSuchModelForCausalLM"]
    (folder / "config.json").write_text(json.dumps(cfg))
    import transformers

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda *a, **k: pytest.fail("weights were loaded"))
    with pytest.raises(ModelSpecError, match="NoSuchModelForCausalLM is supported by neither backend"):
        xtl.load_model(folder, device="cpu", backend="bridge")


def test_a_folder_loads_on_the_bridge_and_the_cli_takes_backend(tiny_folder, tmp_path):
    model = xtl.load_model(tiny_folder, dtype="float64", device="cpu", backend="bridge")
    assert model.backend == "bridge" and model.cfg.model_name == "model"
    res = xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=3, tgt_layer=0, site="mlp",
                         max_new_tokens=4)
    assert len(res.tokens) >= 1
    (tmp_path / "s.txt").write_text(PROMPTS["zh"], encoding="utf-8")
    (tmp_path / "t.txt").write_text(PROMPTS["en"], encoding="utf-8")
    ok = run_cli("transplant", "--model", str(tiny_folder), "--backend", "bridge", "--device", "cpu",
                 "--source", str(tmp_path / "s.txt"), "--target", str(tmp_path / "t.txt"),
                 "--src-layer", "3", "--tgt-layer", "0", "--max-new-tokens", "4", "--json")
    assert ok.returncode == 0, ok.stderr
    bad = run_cli("transplant", "--model", str(tiny_folder), "--backend", "bridg",
                  "--source", str(tmp_path / "s.txt"), "--target", str(tmp_path / "t.txt"),
                  "--src-layer", "3", "--tgt-layer", "0")
    assert bad.returncode == 2 and "Did you mean 'bridge'" in bad.stderr and "Traceback" not in bad.stderr


def test_a_site_the_bridge_lacks_names_the_site_and_architecture(bridged):
    _, model = bridged["llama"]
    real = model.has_hook
    model.has_hook = lambda name: "hook_resid_mid" not in name and real(name)
    try:
        with pytest.raises(SiteError, match="attn-authors.*hook_resid_mid.*LlamaForCausalLM"):
            xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=1, tgt_layer=1,
                           site="attn-authors", max_new_tokens=2)
    finally:
        del model.has_hook


def test_a_gguf_file_loads_on_the_bridge(tmp_path, monkeypatch):
    """A .gguf file (converted once into the cache) on the bridge: the same tokens as the converted
    folder's Hugging Face model with plain hooks, and, where TransformerLens 3 is installed, as hooked."""
    from helpers import write_tiny_gguf
    from xtl.models.gguf import local_folder

    monkeypatch.setenv("XTL_CACHE", str(tmp_path / "cache"))
    path = write_tiny_gguf(tmp_path / "tiny.gguf", "gemma3")
    model = xtl.load_model(path, dtype="float64", device="cpu", backend="bridge")
    assert model.backend == "bridge" and model.cfg.model_name == "tiny.gguf"
    got = xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=1, tgt_layer=0, site="mlp",
                         max_new_tokens=6).tokens
    import transformers as tf

    hf = tf.AutoModelForCausalLM.from_pretrained(local_folder(str(path)), dtype=torch.float64,
                                                 attn_implementation="eager").eval()
    assert got == hf_reference(hf, model.tokenizer, PROMPTS["zh"], PROMPTS["en"], 1, 0, "mlp", 6)
    if hooked_available():
        hooked = xtl.load_model(path, dtype="float64", device="cpu", backend="hooked")
        assert xtl.transplant(hooked, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=1, tgt_layer=0,
                              site="mlp", max_new_tokens=6).tokens == got
