"""The quick GGUF conversion (xtl.models.ggufread) against transformers' own GGUF path, on tiny
GGUF files written here: the same config, bitwise the same weights and logits, the same tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")

from helpers import write_tiny_gguf  # noqa: E402

TEXTS = ["the cat", "  the  cat  ", "日本 the cat\n", "a<bos>b", "", "x" * 40, "\u00e9t\u00e9 \u0000 \t"]


@pytest.mark.parametrize("arch", ["gemma3", "llama", "qwen2"])
def test_the_reader_reads_what_gguf_reads(tmp_path, arch):
    """Metadata values as transformers parses them from ``gguf.GGUFReader``; tensor data equal."""
    from transformers.integrations import _gguf_parse_value

    from xtl.models.ggufread import read_gguf, tensor_array

    path = write_tiny_gguf(tmp_path / f"{arch}.gguf", arch)
    ours, theirs = read_gguf(path), gguf.GGUFReader(path)
    fields = {k: f for k, f in theirs.fields.items() if not k.startswith("GGUF.")}
    assert list(ours.metadata) == list(fields)
    for key, field in fields.items():
        value = [_gguf_parse_value(field.parts[i], field.types) for i in field.data]
        expected = value if field.types[0] == gguf.GGUFValueType.ARRAY else value[0]
        assert ours.metadata[key] == expected, key
    assert [t.name for t in ours.tensors] == [t.name for t in theirs.tensors]
    for info, tensor in zip(ours.tensors, theirs.tensors):
        assert info.ggml_type == int(tensor.tensor_type)
        a, b = tensor_array(ours, info), tensor.data
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), info.name


def _reference(gguf_path: Path, out: Path):
    """transformers' own GGUF conversion, saved as xtl saved it before the quick path."""
    from xtl.models.gguf import _convert_with_transformers

    out.mkdir()
    _convert_with_transformers(gguf_path, out)
    return out


@pytest.mark.parametrize("arch", ["gemma3", "qwen2"])
def test_quick_conversion_equals_transformers_gguf_path(tmp_path, arch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from xtl.models.ggufread import convert_fast

    path = write_tiny_gguf(tmp_path / f"{arch}.gguf", arch)
    quick = tmp_path / "quick"
    quick.mkdir()
    assert convert_fast(path, quick) is True
    ref = _reference(path, tmp_path / "ref")

    drop = {"_name_or_path", "transformers_version"}
    a, b = (json.loads((d / "config.json").read_text()) for d in (quick, ref))
    assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert json.loads((quick / name).read_text()) == json.loads((ref / name).read_text()), name

    ma, mb = (AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval() for d in (quick, ref))
    sa, sb = ma.state_dict(), mb.state_dict()
    assert set(sa) == set(sb)
    for name in sa:
        assert sa[name].dtype == sb[name].dtype and torch.equal(sa[name], sb[name]), name
    ta, tb = (AutoTokenizer.from_pretrained(d) for d in (quick, ref))
    for text in TEXTS:
        assert ta(text)["input_ids"] == tb(text)["input_ids"], text
    ids = torch.tensor([ta("the cat  日本")["input_ids"] + [5, 7, 11]])
    with torch.no_grad():
        assert torch.equal(ma(ids).logits, mb(ids).logits)
    # the one-table name map is transformers' recursive one
    from transformers import AutoConfig
    from transformers.modeling_gguf_pytorch_utils import TENSOR_PROCESSORS, TensorProcessor, get_gguf_hf_weights_map

    from xtl.models.ggufread import weights_map

    with torch.device("meta"):
        empty = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(quick))
    processor = TENSOR_PROCESSORS.get(arch, TensorProcessor)(config=empty.config.to_dict())
    assert weights_map(empty, processor, arch) == get_gguf_hf_weights_map(empty, processor)
    if arch == "gemma3":  # the file's norms are stored as 1 + w: transformers' processor ran
        assert not torch.equal(sa["model.norm.weight"], torch.ones_like(sa["model.norm.weight"]))


def test_an_architecture_the_quick_path_does_not_cover_is_left_to_transformers(tmp_path, monkeypatch):
    """A Llama file (whose tokenizer class transformers picks by other rules than its model type)
    takes transformers' path: the quick one writes nothing and answers False; the cache's
    conversion is then transformers' own."""
    from xtl.models import ggufread
    from xtl.models.gguf import gguf_to_folder

    path = write_tiny_gguf(tmp_path / "llama.gguf", "llama")
    out = tmp_path / "out"
    out.mkdir()
    assert ggufread.convert_fast(path, out) is False
    assert not any(out.iterdir())
    monkeypatch.setenv("XTL_CACHE", str(tmp_path / "cache"))
    folder = gguf_to_folder(path)
    ref = _reference(path, tmp_path / "ref")
    assert json.loads((folder / "tokenizer.json").read_text()) == json.loads((ref / "tokenizer.json").read_text())


def test_a_gguf_is_converted_to_the_precision_asked_and_rebuilt_under_its_lock(tmp_path, monkeypatch):
    """bfloat16 asked: a bfloat16 conversion (half a float32 one), under a cache key of its own
    that names the conversion's version; an unreadable conversion is rebuilt in place."""
    from safetensors import safe_open

    from xtl.models import gguf as g

    monkeypatch.setenv("XTL_CACHE", str(tmp_path / "cache"))
    path = write_tiny_gguf(tmp_path / "gemma.gguf", "gemma3")
    wide = g.gguf_to_folder(path)
    half = g.gguf_to_folder(path, dtype=torch.bfloat16)
    assert wide != half and "bfloat16" in half.name and "float32" in wide.name
    with safe_open(str(half / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}
    monkeypatch.setattr(g, "CONVERSION_VERSION", g.CONVERSION_VERSION + 1)
    assert g._conversion_path(path, torch.bfloat16) != half  # a new conversion version: a new key
    monkeypatch.undo()
    monkeypatch.setenv("XTL_CACHE", str(tmp_path / "cache"))
    (wide / "model.safetensors").write_bytes(b"not safetensors")
    from xtl.models import load_model

    model = load_model(path, device="cpu")
    assert model.cfg.n_layers > 0
    with safe_open(str(wide / "model.safetensors"), "pt") as f:
        assert len(list(f.keys())) > 0
