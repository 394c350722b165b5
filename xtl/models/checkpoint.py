"""Stream a local safetensors checkpoint into a HookedTransformer, one layer at a time.

Loading a Hugging Face model and then converting it holds the checkpoint two or three times
over (a float32 copy, the converted state dict, the HookedTransformer's own parameters): four
times the model's size at the peak. Here the HookedTransformer is allocated once, in its final
dtype and on its final device, and each layer's tensors are read from the safetensors files,
converted by TransformerLens' own weight converter for the architecture, and copied into place
before the next layer is read. The peak is the model plus one layer.

A converter that only reshapes sees the checkpoint's own tensors (a cast at the end gives the
same values as going through float32); one that does arithmetic (Gemma) sees them upcast to
float32, as ``AutoModelForCausalLM.from_pretrained(..., dtype=torch.float32)`` holds them. Either
way the parameters are bitwise those of the convert-a-loaded-model path (tested).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

__all__ = ["Checkpoint", "stream_into", "streamable"]

#: Modules read once, outside the layers (the per-layer passes see a tiny stand-in for them).
GLOBAL_PREFIXES = ("model.embed_tokens", "model.norm", "lm_head")


class Checkpoint:
    """The tensors of a safetensors checkpoint folder (single file or sharded with an index)."""

    def __init__(self, folder: Path, upcast: bool):
        from safetensors import safe_open

        self.folder = Path(folder)
        self.upcast = upcast
        index = self.folder / "model.safetensors.index.json"
        if index.exists():
            weight_map = json.loads(index.read_text())["weight_map"]
            self.files = {name: self.folder / file for name, file in weight_map.items()}
        else:
            single = self.folder / "model.safetensors"
            with safe_open(str(single), framework="pt") as handle:
                self.files = {name: single for name in handle.keys()}
        # Tied input and output embeddings are saved once, under either name.
        embed, head = "model.embed_tokens.weight", "lm_head.weight"
        self.tied = ({head: embed} if head not in self.files and embed in self.files else
                     {embed: head} if embed not in self.files and head in self.files else {})

    def __contains__(self, name: str) -> bool:
        return name in self.files

    def has_prefix(self, prefix: str) -> bool:
        return any(name.startswith(prefix) for name in self.files)

    def get(self, name: str) -> torch.Tensor:
        """The tensor ``name``; with ``upcast``, at least float32 (what a float32
        ``from_pretrained`` holds). The file is closed at once, so its pages leave memory."""
        from safetensors import safe_open

        with safe_open(str(self.files[name]), framework="pt") as handle:
            tensor = handle.get_tensor(name)
        if self.upcast and tensor.is_floating_point() and torch.finfo(tensor.dtype).bits < 32:
            tensor = tensor.to(torch.float32)
        return tensor


class _Node:
    """Attribute access over tensor names (``node.model.layers[3].mlp.up_proj.weight``), reading
    a tensor when it is reached. Modules outside the layers are real only for the prefix
    ``keep``; the others are a tiny stand-in that the caller drops (by its shape)."""

    def __init__(self, ckpt: Checkpoint, prefix: str, layer: int | None, keep: str | None):
        self._ckpt, self._prefix, self._layer, self._keep = ckpt, prefix, layer, keep

    def _child(self, name: str) -> "_Node | torch.Tensor":
        full = f"{self._prefix}.{name}" if self._prefix else name
        source = self._ckpt.tied.get(full, full)
        if source in self._ckpt:
            outside = full.startswith(GLOBAL_PREFIXES)
            if outside and not (self._keep and full.startswith(self._keep)):
                return torch.zeros(1, 1)  # read in its own pass
            return self._ckpt.get(source)
        if self._ckpt.has_prefix(full + ".") or any(t.startswith(full + ".") for t in self._ckpt.tied):
            return _Node(self._ckpt, full, self._layer, self._keep)
        raise AttributeError(name)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if name == "layers" and self._layer is not None:
            return _Layers(self._ckpt, f"{self._prefix}.layers", self._layer, self._keep)
        return self._child(name)


class _Layers:
    """``layers[0]`` of a one-layer pass is the checkpoint's layer ``layer``."""

    def __init__(self, ckpt: Checkpoint, prefix: str, layer: int, keep: str | None):
        self._ckpt, self._prefix, self._layer, self._keep = ckpt, prefix, layer, keep

    def __getitem__(self, index: int) -> _Node:
        if index != 0:
            raise IndexError(index)
        return _Node(self._ckpt, f"{self._prefix}.{self._layer}", self._layer, self._keep)


def streamable(folder: Path) -> bool:
    """Whether the folder holds safetensors weights this module can stream."""
    folder = Path(folder)
    return (folder / "model.safetensors").exists() or (folder / "model.safetensors.index.json").exists()


@torch.no_grad()
def stream_into(folder: Path, cfg: HookedTransformerConfig,
                converter: Callable[[Any, HookedTransformerConfig], dict[str, torch.Tensor]],
                upcast: bool = False, prepare: Callable[[HookedTransformer], None] | None = None
                ) -> HookedTransformer:
    """A HookedTransformer of ``cfg`` (allocated on ``cfg.device`` in ``cfg.dtype``) filled from
    the checkpoint in ``folder`` with ``converter`` (a TransformerLens ``convert_*_weights``):
    one pass per layer, then one per module outside the layers (embedding, final norm,
    unembedding). ``upcast``: hand the converter float32 tensors, for converters that do
    arithmetic (Gemma's ``1 + w`` norms and scaled embedding), so that results are bitwise
    those of converting a float32 model. ``prepare`` may re-lay the empty parameters first, so
    that each weight is written once, straight into its final layout."""
    ckpt = Checkpoint(folder, upcast)
    with torch.device(cfg.device):
        model = HookedTransformer(cfg, tokenizer=None, move_to_device=False)
    if prepare is not None:
        prepare(model)
    params = dict(model.named_parameters())
    filled: set[str] = set()

    def put(state: dict[str, torch.Tensor], rename: Callable[[str], str] = lambda k: k) -> None:
        for key in list(state):
            value = state.pop(key)
            name = rename(key)
            if name in params and value.shape == params[name].shape:  # stand-ins have other shapes
                params[name].copy_(value)
                filled.add(name)
            del value

    one = copy.copy(cfg)
    one.n_layers = 1
    for layer in range(cfg.n_layers):
        state = converter(_Node(ckpt, "", layer, None), one)
        put({k: v for k, v in state.items() if k.startswith("blocks.0.")},
            lambda k, layer=layer: f"blocks.{layer}." + k[len("blocks.0."):])
        del state
    none = copy.copy(cfg)
    none.n_layers = 0
    for keep in GLOBAL_PREFIXES:
        put(converter(_Node(ckpt, "", None, keep), none))
    missing = sorted(set(params) - filled)
    if missing:
        raise KeyError(f"no weights for {missing[:5]}")
    return model
