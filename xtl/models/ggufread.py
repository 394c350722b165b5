"""One read of a GGUF file, and the quick first conversion built on it.

``gguf.GGUFReader`` parses every element of every metadata array into its own memory-map view,
and transformers' GGUF path opens the file about four times and parses each element again: for
the demo model's 262,144-entry vocabulary that is most of a minute. Here the metadata is read
once, arrays in bulk, and the conversion calls transformers' own GGUF tables, tensor processors
and tokenizer converter with it — the same model, config and tokenizer as
``from_pretrained(gguf_file=...)`` (tested against it), in a fraction of the time.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["GGUFTensorInfo", "GGUFContents", "read_gguf", "tensor_array", "FAST_ARCHITECTURES",
           "weights_map", "convert_fast"]

log = logging.getLogger("xtl")

#: GGUF architectures the quick conversion handles: transformers names their tokenizer class by
#: model type. Others (Llama and Mistral files among them, whose class transformers picks by other
#: rules) take its generic path.
FAST_ARCHITECTURES = ("qwen2", "qwen3", "gemma2", "gemma3")

# GGUF metadata value types: fixed-width scalars (struct format), 8 string, 9 array
_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_NUMPY = {0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32, 6: np.float32,
          7: np.bool_, 10: np.uint64, 11: np.int64, 12: np.float64}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class GGUFTensorInfo:
    """One tensor's entry in the file: GGUF name, ggml type, dims (ggml order), absolute offset."""

    name: str
    ggml_type: int
    dims: tuple[int, ...]
    offset: int


@dataclass(frozen=True)
class GGUFContents:
    """A GGUF file's metadata as Python values (arrays as lists) and its tensor table."""

    path: Path
    metadata: dict[str, Any]
    tensors: tuple[GGUFTensorInfo, ...]
    data: np.ndarray  # the whole file, memory-mapped as uint8


class _Cursor:
    """Reads little-endian values from a memory-mapped file, moving forward."""

    def __init__(self, data: np.ndarray):
        self.data, self.buf, self.pos = data, memoryview(data), 0

    def scalar(self, fmt: str) -> Any:
        (value,) = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.scalar("Q")
        start, self.pos = self.pos, self.pos + length
        return bytes(self.buf[start:self.pos]).decode("utf-8")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALAR:
            return self.scalar(_SCALAR[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype != _ARRAY:
            raise ValueError(f"unknown GGUF metadata type {vtype}")
        itype, count = self.scalar("I"), self.scalar("Q")
        if itype in _NUMPY:  # numbers in one block: one view, one conversion
            dtype = np.dtype(_NUMPY[itype]).newbyteorder("<")
            values = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
            self.pos += values.nbytes
            return values.tolist()
        if itype == _STRING:
            return [self.string() for _ in range(count)]
        return [self.value(itype) for _ in range(count)]


def read_gguf(path: str | Path) -> GGUFContents:
    """Read a GGUF file's metadata and tensor table (no tensor data is touched)."""
    from gguf import GGUF_DEFAULT_ALIGNMENT

    path = Path(path)
    data = np.memmap(path, mode="r", dtype=np.uint8)
    cur = _Cursor(data)
    if bytes(cur.buf[:4]) != b"GGUF":
        raise ValueError(f"{path} does not start with the GGUF magic bytes")
    cur.pos = 4
    version = cur.scalar("I")
    if version not in (2, 3):
        raise ValueError(f"{path} is GGUF version {version} (or big-endian); only little-endian v2/v3 is read here")
    n_tensors, n_kv = cur.scalar("Q"), cur.scalar("Q")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        metadata[key] = cur.value(cur.scalar("I"))
    entries = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.scalar("I")
        dims = struct.unpack_from(f"<{n_dims}Q", cur.buf, cur.pos)
        cur.pos += 8 * n_dims
        entries.append((name, dims, cur.scalar("I"), cur.scalar("Q")))
    align = int(metadata.get("general.alignment", GGUF_DEFAULT_ALIGNMENT))
    start = -(-cur.pos // align) * align
    tensors = tuple(GGUFTensorInfo(name, int(t), tuple(int(d) for d in dims), start + int(off))
                    for name, dims, t, off in entries)
    if len({t.name for t in tensors}) != len(tensors):
        raise ValueError(f"{path} lists a tensor name twice")
    # a plain ndarray over the same mapping: slicing a np.memmap runs Python code per view, and
    # the dequantiser makes hundreds of thousands of views
    return GGUFContents(path, metadata, tensors, np.asarray(data))


def tensor_array(contents: GGUFContents, info: GGUFTensorInfo) -> np.ndarray:
    """The tensor's stored data as ``gguf.GGUFReader`` presents it (values for float and integer
    types, ``uint8`` blocks shaped for ``gguf.dequantize`` otherwise)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as Q
    from gguf.quants import quant_shape_to_byte_shape

    plain = {Q.F16: np.float16, Q.F32: np.float32, Q.F64: np.float64, Q.I8: np.int8, Q.I16: np.int16,
             Q.I32: np.int32, Q.I64: np.int64}
    qtype = Q(info.ggml_type)
    n = int(np.prod(info.dims))
    shape = tuple(reversed(info.dims))
    if qtype in plain:
        dtype = np.dtype(plain[qtype])
        return contents.data[info.offset:info.offset + n * dtype.itemsize].view(dtype).reshape(shape)
    block, size = GGML_QUANT_SIZES[qtype]
    raw = contents.data[info.offset:info.offset + n * size // block]
    return raw.reshape(quant_shape_to_byte_shape(shape, qtype))


def _config_dict(meta: dict[str, Any], names: list[str]) -> dict[str, Any] | None:
    """The config transformers derives from this metadata (its own mapping tables, walked as its
    ``load_gguf_checkpoint`` walks them); None where that needs more than the tables."""
    try:
        from transformers.integrations import GGUF_CONFIG_DEFAULTS_MAPPING, GGUF_CONFIG_MAPPING
    except ImportError:
        return None
    arch = meta.get("general.architecture")
    if arch not in FAST_ARCHITECTURES or arch not in GGUF_CONFIG_MAPPING:
        return None
    config: dict[str, Any] = {"tie_word_embeddings": "output.weight" not in names}
    for key, value in (GGUF_CONFIG_DEFAULTS_MAPPING.get(arch) or {}).items():
        config.setdefault(key, value)
    for key, value in meta.items():
        prefix, _, rest = key.partition(".")
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        target = GGUF_CONFIG_MAPPING.get(prefix, {}).get(rest)
        if target is not None and target != -1:
            config[target] = value
    if config.get("model_type") == "gemma3":
        config["model_type"] = "gemma3_text"
    if "vocab_size" not in config and "tokenizer.ggml.tokens" in meta:
        config["vocab_size"] = len(meta["tokenizer.ggml.tokens"])
    return config


def weights_map(model: Any, processor: Any, arch: str) -> dict[str, str]:
    """GGUF tensor name -> the model's parameter name, as transformers' ``get_gguf_hf_weights_map``
    maps them, from one ``gguf`` name table (transformers rebuilds the table for every submodule it
    recurses into, seconds for a small model; its recursion adds nothing for the architectures of
    :data:`FAST_ARCHITECTURES`, whose parameter names are complete at the top; tested equal)."""
    from gguf import MODEL_ARCH_NAMES, get_tensor_name_map

    arch_id = next(k for k, v in MODEL_ARCH_NAMES.items() if v == arch)
    names = get_tensor_name_map(arch_id, model.config.num_hidden_layers)
    out: dict[str, str] = {}
    for hf_name in model.state_dict():
        hf_name = processor.preprocess_name(hf_name)
        name, suffix = hf_name, ""
        if hf_name.endswith((".weight", ".bias")):
            name, suffix = hf_name.rsplit(".", 1)
            suffix = "." + suffix
        gguf_name = names.get_name(name)
        if gguf_name is None:
            processor.perform_fallback_tensor_mapping(out, suffix, "", hf_name)
            continue
        out[gguf_name + suffix] = hf_name
    return out


def _state_dict(contents: GGUFContents, config: dict[str, Any], model: Any, dtype: Any = None) -> dict[str, Any]:
    """The file's tensors dequantised and renamed as transformers' GGUF loader does it."""
    import torch
    from gguf import dequantize
    from tqdm.auto import tqdm
    from transformers.modeling_gguf_pytorch_utils import TENSOR_PROCESSORS, TensorProcessor

    arch = contents.metadata["general.architecture"]
    processor = TENSOR_PROCESSORS.get(arch, TensorProcessor)(config=config)
    key_map = weights_map(model, processor, arch)
    out = {}
    for info in tqdm(contents.tensors, desc="dequantising the GGUF tensors", unit="tensor", leave=False):
        weights = dequantize(tensor_array(contents, info), info.ggml_type)
        result = processor.process(weights=weights, name=info.name, tensor_key_mapping=key_map,
                                   parsed_parameters={"config": config, "tensors": out})
        if result.name in key_map:
            out[key_map[result.name]] = torch.from_numpy(np.copy(result.weights)).to(dtype or torch.float32)
    return out


def convert_fast(gguf_path: Path, out: Path, dtype: Any = None) -> bool:
    """Write the HF folder of ``gguf_path`` into ``out`` (config, safetensors in ``dtype``
    (default float32), tokenizer)
    by the quick path; False, with nothing written, where it does not apply (architecture or
    transformers version), so the caller takes transformers' generic path."""
    import json

    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING_NAMES

    clock = _Clock()
    try:
        contents = read_gguf(gguf_path)
        config_dict = _config_dict(contents.metadata, [t.name for t in contents.tensors])
    except (ValueError, struct.error) as exc:
        log.info("quick GGUF read of %s failed (%s); using transformers' reader", gguf_path, exc)
        return False
    if config_dict is None or config_dict.get("model_type") not in TOKENIZER_MAPPING_NAMES:
        return False
    clock.lap("metadata")
    config = CONFIG_MAPPING[config_dict["model_type"]].from_dict(dict(config_dict))
    dtype = dtype or torch.float32
    config.dtype = dtype
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    state = _state_dict(contents, config_dict, model, dtype)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if unexpected or set(missing) - tied:
        log.info("quick GGUF conversion of %s does not cover %s; using transformers' path", gguf_path,
                 sorted(set(missing) - tied) + sorted(unexpected))
        return False
    model.tie_weights()
    clock.lap("tensors")
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name,
                                              tokenizer_type=config.model_type)
    clock.lap("tokenizer")
    save_model(model, str(out / "model.safetensors"))
    saved = config.to_dict()
    saved.pop("quantization_config", None)
    saved["architectures"] = [type(model).__name__]
    (out / "config.json").write_text(json.dumps(saved, indent=2))
    tokenizer.save_pretrained(out)
    clock.lap("save")
    log.info("quick GGUF conversion of %s: %s", gguf_path.name, clock)
    return True


class _Clock:
    """Seconds per named phase, for the log line that says where a conversion's time went."""

    def __init__(self) -> None:
        import time

        self._now, self._last, self.laps = time.perf_counter, time.perf_counter(), {}

    def lap(self, name: str) -> None:
        now = self._now()
        self.laps[name], self._last = now - self._last, now

    def __str__(self) -> str:
        return ", ".join(f"{name} {secs:.1f} s" for name, secs in self.laps.items())
