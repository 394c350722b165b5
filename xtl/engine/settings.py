"""A sweep's settings, built once: what the caller asks for (:class:`SweepRequest`), checked
against the model into the store's manifest (:class:`xtl.schema.SweepSettings`), plus the
engine's knobs that do not change results (:class:`EngineOptions`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence

import torch
from xtl.models.backends import Model, backend_of, tl_version

from xtl.errors import XtlError
from xtl.options import GRIDS, MODES, check_option
from xtl.patching.prompts import resolve_chat
from xtl.patching.prompts import check_count, check_layer, check_model, check_site
from xtl.patching.sites import Site
from xtl.schema import SweepSettings

__all__ = ["SweepRequest", "EngineOptions", "resolve", "known_settings", "candidate_token_ids"]

#: Settings a caller may record beside the sweep's own (``settings={...}``) that have fields.
_RECORDED = ("data", "langs", "limit", "data_root", "cot", "data_sha256")


def _layers(value: Any, what: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, (int, str, bytes)) or not isinstance(value, Sequence) and not hasattr(value, "__iter__"):
        raise XtlError(f"{what} must be a list of layer numbers (or None for all), not {value!r}")
    out = tuple(value)
    for v in out:
        if isinstance(v, bool) or not isinstance(v, int):
            raise XtlError(f"{what} must hold whole numbers, not {v!r}")
    return out


@dataclass(frozen=True)
class SweepRequest:
    """What a caller asks a sweep for, before the model has checked it (layers may be
    negative or None for all; the site may be a string)."""

    site: "str | Site" = "mlp"
    src_layers: Sequence[int] | None = None
    tgt_layers: Sequence[int] | None = None
    max_new_tokens: int = 20
    mode: str = "generate"
    candidates: Sequence[str] = ()
    chat: bool | None = None  # None: the model's own frame (an xtl sft folder records it), else raw
    recorded: Mapping[str, Any] = field(default_factory=dict)
    grid: str = "full"
    screen: int | None = None  # run only each item's K best cells of the gradient screen
    alpha: "float | Sequence[float]" = 1.0  # one value, or an axis of values
    span: int = 1
    positions: int = 1
    source_langs: Sequence[str] = ()  # several sources: the items' parallel prompts in these languages
    weights: "Sequence[float] | Mapping[str, float] | None" = None
    extrapolate: bool = False  # allow alpha outside [0, 1]

    def __post_init__(self) -> None:
        if self.screen is not None:
            check_count(self.screen, "screen")
            if not self.candidates:
                raise XtlError("screen=K ranks cells by the gold option's first-token margin, which needs the "
                               "options: give candidates=[...] (e.g. the task's: '1', '2', '3' for xnli)")
        check_option("mode", self.mode, MODES)
        variant = variant_settings(self)  # the variant's own checks, before a model loads
        if self.screen is not None and (variant["span"] != 1 or variant["positions"] != 1):
            raise XtlError("screen=K estimates one layer's transplant at the last position; leave span and "
                           "positions at 1 (screen the single-layer grid, then sweep its best cells with the variant)")
        check_option("grid", self.grid, GRIDS)
        if self.grid == "cross" and (self.src_layers is not None or self.tgt_layers is not None):
            raise XtlError("grid='cross' sweeps the last source layer into every target layer and every "
                           "source layer into target layer 0 (2N − 1 configurations); leave src_layers "
                           "and tgt_layers out")
        check_count(self.max_new_tokens, "max_new_tokens")
        if isinstance(self.candidates, str) or not all(isinstance(c, str) for c in self.candidates):
            raise XtlError(f"candidates must be a list of strings, e.g. ['A', 'B'], not {self.candidates!r}")
        if self.recorded is not None and not isinstance(self.recorded, Mapping):
            raise XtlError(f"settings must be a dict of extra settings to record, not {self.recorded!r}")


def variant_settings(request: SweepRequest) -> dict[str, Any]:
    """The manifest fields of ``request``'s transplant variant, checked (alpha axis, span, positions,
    sources and their weights, normalised; equal weights are recorded as None)."""
    from xtl.patching.variants import check_alphas, source_weights

    alphas = check_alphas(request.alpha, request.extrapolate)
    for name in ("span", "positions"):
        check_count(getattr(request, name), name)
    langs = request.source_langs
    if isinstance(langs, str) or not all(isinstance(x, str) and x for x in langs):
        raise XtlError(f"source_langs must be a list of language codes, e.g. ['zh', 'ja'], not {langs!r}")
    weights = None
    if langs:
        weights = source_weights(list(langs), request.weights)
        if all(w == weights[0] for w in weights):
            weights = None
    elif request.weights is not None:
        raise XtlError("weights apply to several sources; give source_langs (--source-langs) too")
    return {"alpha": alphas, "span": request.span, "positions": request.positions,
            "source_langs": tuple(langs), "weights": weights}


def _layer_list(model: Model, value: Sequence[int] | None, what: str) -> list[int]:
    n = model.cfg.n_layers
    return sorted({check_layer(model, layer, what) for layer in (value if value is not None else range(n))})


def resolve(model: Model, request: SweepRequest) -> SweepSettings:
    """The settings a sweep of ``request`` on ``model`` records in its store (checked: site,
    heads, layers), shared by :func:`xtl.sweep` and the Ray driver so either resumes the other."""
    check_model(model)
    site = Site.parse(request.site)
    check_site(model, site)
    src = _layers(request.src_layers, "src_layers")
    tgt = _layers(request.tgt_layers, "tgt_layers")
    if (src == ()) != (tgt == ()):
        empty = "src_layers" if src == () else "tgt_layers"
        raise XtlError(f"{empty} is empty, which would run no transplant; give layers (None for all), "
                       "or empty src_layers and tgt_layers both for a vanilla-only run")
    recorded = {**getattr(model, "xtl_sft", {}), **dict(request.recorded or {})}  # an ML-SFT model says so
    known = {f.name for f in fields(SweepSettings)}
    fields_ = {k: recorded.pop(k) for k in _RECORDED if k in recorded}
    clash = sorted(k for k in recorded if k in known)
    if clash:
        raise XtlError(f"settings may not override the sweep's own {clash}; pass them as arguments")
    from xtl.patching.variants import check_span

    variant = variant_settings(request)
    check_span(model.cfg.n_layers, request.span)
    return SweepSettings(**variant,
        model=model.cfg.model_name, n_layers=model.cfg.n_layers, site=str(site),
        src_layers=_layer_list(model, src, "source layer"), tgt_layers=_layer_list(model, tgt, "target layer"),
        max_new_tokens=request.max_new_tokens, mode=request.mode, candidates=tuple(request.candidates),
        chat=resolve_chat(model, request.chat), grid=request.grid, screen=request.screen, dtype=str(model.cfg.dtype).removeprefix("torch."),
        device=torch.device(model.cfg.device).type, backend=backend_of(model), tl_version=tl_version(),
        xtl_version=_version(), model_identity=getattr(model, "xtl_identity", None), extra=recorded, **fields_)


def known_settings(request: SweepRequest, model: str, dtype: "str | torch.dtype | None" = None,
                   backend: str | None = None) -> dict[str, Any]:
    """The manifest fields a sweep of ``request`` on the model ``model`` (a spec, as given to
    :func:`xtl.load_model`) will record that are known before the model loads: what
    :func:`xtl.engine.store.complete` compares, so that a finished store is recognised without
    loading weights. Layers stay as asked (None for all, maybe negative); ``chat=None`` is the
    frame an ``xtl sft`` folder records, else raw; an ``auto`` backend is resolved from the
    config of a model already on disk; what only loading tells (a hub model's backend, the
    device) is None."""
    from xtl.models.identity import model_identity
    from xtl.models.names import model_label
    from xtl.options import canonical_dtype

    recorded = dict(request.recorded or {})
    return {"model": model_label(model), "model_identity": model_identity(model),
            "site": str(Site.parse(request.site)),
            "src_layers": _layers(request.src_layers, "src_layers"),
            "tgt_layers": _layers(request.tgt_layers, "tgt_layers"),
            "max_new_tokens": request.max_new_tokens, "mode": request.mode,
            "candidates": tuple(request.candidates), "chat": _chat_before_loading(model, request.chat),
            "grid": request.grid, **variant_settings(request),
            "dtype": None if dtype is None else canonical_dtype(str(dtype).removeprefix("torch.")),
            "backend": _backend_before_loading(model, backend),
            **{k: recorded[k] for k in _RECORDED if k in recorded}}


def _chat_before_loading(spec: str, chat: bool | None) -> bool:
    """What :func:`xtl.patching.prompts.resolve_chat` will make of ``chat`` for the model ``spec``:
    as asked, else the frame an ``xtl sft`` folder was trained in, else raw."""
    if chat is not None:
        return bool(chat)
    from pathlib import Path

    from xtl.models.folder import sft_origin

    path = Path(str(spec)).expanduser()
    origin = sft_origin(path) if path.is_dir() else None
    return bool(origin and origin["sft_chat"])


def _backend_before_loading(spec: str, backend: str | None) -> str | None:
    """The backend ``backend`` (``auto``: None) means for the model ``spec``, from the config of its
    folder (or cached conversion) on disk; None when only loading can tell."""
    if backend not in (None, "auto"):
        return backend
    import json
    from types import SimpleNamespace

    from xtl.errors import ModelSpecError
    from xtl.models.backends import resolve_backend
    from xtl.models.gguf import local_folder
    from xtl.models.hfconfig import architecture

    folder = local_folder(spec)
    if folder is None:
        return None
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        return resolve_backend("auto", architecture(SimpleNamespace(**config)) or None, SimpleNamespace(**config))
    except (OSError, ValueError, TypeError, ModelSpecError):
        return None


def _version() -> str:
    from xtl import __version__

    return __version__


@dataclass(frozen=True)
class EngineOptions:
    """How a sweep runs, not what it computes (so not in the manifest)."""

    batch_size: int | None = None
    fast: bool | None = None
    claim_wait: float = 1.0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size is not None:
            check_count(self.batch_size, "batch_size")


def candidate_token_ids(model: Model, candidates: Sequence[str]) -> list[int]:
    """First token id of each candidate string (e.g. ``" (A"`` or ``"A"``), no special tokens."""
    ids = []
    for cand in candidates:
        toks = model.tokenizer(cand, add_special_tokens=False)["input_ids"]
        if not toks:
            raise XtlError(f"candidate {cand!r} tokenises to nothing; give a non-empty string")
        ids.append(toks[0])
    if len(set(ids)) < len(ids):
        pieces = [model.tokenizer.decode([i]) for i in ids]
        raise XtlError(
            f"candidates {list(candidates)} share first tokens {pieces}; first-token scoring "
            "needs candidates whose first tokens differ (e.g. 'A', 'B' instead of ' (A', ' (B')")
    return ids
