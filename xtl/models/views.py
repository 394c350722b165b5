"""Module-tree views: a model's modules copied shallowly, its weights shared, its config tree
copied, so xtl can change a model's structure (the bridge wraps components, the engine swaps the
attention function) without changing the object a caller handed in.

A view's modules are new objects with hook tables of their own; parameters and buffers are the
caller's tensors unless a dtype or device change asks for converted copies (tied weights stay
tied: one tensor, converted once).
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch

__all__ = ["config_copies", "module_view", "detached", "own_tokenizer"]

#: Per-module hook tables a view gets fresh (empty) copies of.
HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
              "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_backward_hooks",
              "_backward_pre_hooks", "_state_dict_hooks", "_state_dict_pre_hooks",
              "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")


def config_copies(config: Any) -> dict[int, Any]:
    """A deep copy of ``config``'s tree as ``{id(original): copy}`` for the config and each of
    its sub-configs (``text_config``, ``vision_config``...), so every module of a view reads the
    copy of the config its original reads."""
    new = copy.deepcopy(config)
    out: dict[int, Any] = {}

    def walk(old: Any, cp: Any) -> None:
        out[id(old)] = cp
        for key in getattr(old, "sub_configs", {}) or {}:
            sub_old, sub_new = getattr(old, key, None), getattr(cp, key, None)
            if sub_old is not None and sub_new is not None and id(sub_old) not in out:
                walk(sub_old, sub_new)

    walk(config, new)
    return out


def module_view(root: Any, unwrap: Callable[[Any], Any] = lambda m: m, configs: dict[int, Any] | None = None,
                tensor: Callable[[Any], Any] | None = None) -> Any:
    """A shallow copy of the module tree under ``root``: each module (after ``unwrap``) copied,
    with empty hook tables, ``config`` attributes mapped through ``configs``, and parameters and
    buffers mapped through ``tensor`` (default: shared)."""
    memo: dict[int, Any] = {}
    configs = configs or {}

    def view(module: Any) -> Any:
        module = unwrap(module)
        if id(module) in memo:
            return memo[id(module)]
        new = copy.copy(module)
        memo[id(module)] = new
        for name in HOOK_DICTS:
            if name in module.__dict__:
                new.__dict__[name] = type(module.__dict__[name])()
        for key, value in module.__dict__.items():
            if id(value) in configs:
                new.__dict__[key] = configs[id(value)]
        if tensor is not None:
            new.__dict__["_parameters"] = {k: (tensor(p) if p is not None else None) for k, p in module._parameters.items()}
            new.__dict__["_buffers"] = {k: (tensor(b) if b is not None else None) for k, b in module._buffers.items()}
        new.__dict__["_modules"] = {k: (view(v) if v is not None else None) for k, v in module._modules.items()}
        return new

    return view(root)


def detached(hf_model: Any, dtype: torch.dtype | None = None, device: str | None = None) -> Any:
    """``hf_model`` as a view xtl may restructure: modules and config tree copied, weights shared
    where they already have ``dtype`` and ``device``, converted copies where not. The caller's
    model, its config and its parameters are left exactly as they were."""
    configs = config_copies(hf_model.config) if getattr(hf_model, "config", None) is not None else {}
    converted: dict[int, Any] = {}

    def tensor(t: Any) -> Any:
        if id(t) in converted:
            return converted[id(t)]
        want_dtype = dtype if dtype is not None and t.is_floating_point() else t.dtype
        want_device = torch.device(device) if device is not None else t.device
        if t.dtype == want_dtype and t.device == want_device:
            out = t
        else:
            data = t.detach().to(device=want_device, dtype=want_dtype)
            out = torch.nn.Parameter(data, requires_grad=t.requires_grad) if isinstance(t, torch.nn.Parameter) else data
        converted[id(t)] = out
        return out

    view = module_view(hf_model, configs=configs, tensor=tensor)
    if getattr(hf_model, "generation_config", None) is not None:
        view.generation_config = copy.deepcopy(hf_model.generation_config)
    return view


def own_tokenizer(tokenizer: Any, pad_to_eos: bool = False) -> Any:
    """A copy of ``tokenizer`` whose settings xtl may change (a shallow copy shares the special
    token tables: these are copied too; the vocabulary and the Rust backend stay shared). With
    ``pad_to_eos``, the copy pads with EOS where the tokenizer has no pad token."""
    own = copy.copy(tokenizer)
    for key, value in tokenizer.__dict__.items():
        if isinstance(value, (dict, list, set)):
            own.__dict__[key] = copy.copy(value)
    if pad_to_eos and getattr(own, "pad_token", None) is None and getattr(own, "eos_token", None) is not None:
        own.pad_token = own.eos_token
    return own
