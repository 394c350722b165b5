"""Checks the CLI makes before any model loads: layer syntax and ranges, sites, prompt files,
output paths. Light (no torch)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from xtl.errors import PromptError, XtlError
from xtl.models.names import DEMO_ALIASES, DEMO_HEADS, DEMO_LAYERS, DEMO_MODEL

__all__ = ["parse_layers", "read_prompt", "check_site", "check_layers", "check_out_file", "langs_arg",
           "absolute", "data_settings", "check_context", "longest_prompts",
           "LAYERS_HELP"]

LAYERS_HELP = "layers as a list or ranges, e.g. 0 8 16 31, 0,8,16 or 0-31:2 (step 2); negative counts from the end"


def read_prompt(path: str) -> str:
    """The text of a prompt file, or one clear error (missing, a folder, not UTF-8, empty)."""
    if Path(path).is_dir():
        raise PromptError(f"{path} is a folder; give the prompt as a text file")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptError(f"cannot read prompt file {path}: {exc.strerror if isinstance(exc, OSError) else exc}; "
                          "give a readable UTF-8 text file") from exc
    if not text.strip():
        raise PromptError(f"prompt file {path} is empty; put the prompt text in it")
    return text.removeprefix("\ufeff")


def parse_layers(values: list[str] | None) -> list[int] | None:
    """``["0-31:2"]``, ``["0", "8", "16"]`` or ``["0,8,16"]`` -> layer numbers (None: all)."""
    if not values:
        return None
    out: list[int] = []
    for token in (t.strip() for v in values for t in str(v).split(",")):
        if not token:
            continue
        m = re.fullmatch(r"(\d+)-(\d+)(?::(\d+))?", token)
        if m:
            start, stop, step = int(m[1]), int(m[2]), int(m[3] or 1)
            if step < 1 or start > stop:
                raise XtlError(f"bad layer range {token!r}; write START-STOP[:STEP] with START <= STOP "
                               "and STEP >= 1, e.g. 0-31:2")
            out.extend(range(start, stop + 1, step))
        elif re.fullmatch(r"-?\d+", token):
            out.append(int(token))
        else:
            raise XtlError(f"bad layer selection {token!r}; {LAYERS_HELP}")
    return list(dict.fromkeys(out))


def langs_arg(langs):
    """``--langs de fr`` or ``--langs de,fr``."""
    if not langs:
        return None
    return [l for part in langs for l in part.split(",") if l]


def absolute(path):
    """A data root as an absolute path (what the store records), or None."""
    value = path or os.environ.get("XTL_DATA")
    return str(Path(value).expanduser().resolve()) if value else None


def check_site(spec: str, model: str | None = None) -> None:
    """The site's syntax, and its heads against the model's config when it can be read."""
    from xtl.patching.sites import Site

    site = Site.parse(spec)
    heads = _config_value(model, "num_attention_heads", DEMO_HEADS) if model and site.heads else None
    bad = [h for h in site.heads or () if heads is not None and not 0 <= h < heads]
    if bad:
        raise XtlError(f"head(s) {bad} out of range; {model} has heads 0..{heads - 1}")


def _config_value(spec: str | None, key: str, demo: int) -> int | None:
    if spec in (DEMO_MODEL, *DEMO_ALIASES):
        return demo
    config = Path(str(spec)).expanduser() / "config.json"
    if not config.is_file():
        config = _cached_hub_config(str(spec)) or config
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
        data = data if key in data else data.get("text_config", {})
        return int(data[key])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # known only after loading; the library checks then


def _cached_hub_config(name: str) -> Path | None:
    """A hub model's ``config.json`` from the local Hugging Face cache (no download), if there."""
    if name.count("/") != 1 or name.startswith((".", "/", "~")):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(name, "config.json")
    except Exception:  # noqa: BLE001 - not a repo id, no cache: known only after loading
        return None
    return Path(found) if isinstance(found, str) else None


def depth(spec: str | None) -> int | None:
    """The model's number of layers when it can be read without loading it (demo, local folder,
    a hub model already in the Hugging Face cache)."""
    return _config_value(spec, "num_hidden_layers", DEMO_LAYERS)


def check_layers(model: str, **layers) -> None:
    """Layer numbers against the model's depth, before the model loads."""
    n = depth(model)
    if n is None:
        return
    for what, values in layers.items():
        values = [values] if isinstance(values, int) else (values or [])
        bad = [v for v in values if not -n <= v < n]
        if bad:
            raise XtlError(f"{what.replace('_', ' ')} {', '.join(map(str, bad))} out of range; "
                           f"{model} has layers 0..{n - 1}")


def check_out_file(path: str | None) -> None:
    """An output file we will be able to write (checked before any model loads)."""
    if not path:
        return
    p = Path(path)
    if p.is_dir():
        raise XtlError(f"--out {p} is a folder; give a file name, e.g. {p / 'out.html'}")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise XtlError(f"cannot write {p} ({exc.strerror or exc}); choose an --out you can write to") from exc
    if not os.access(p.parent, os.W_OK | os.X_OK):
        raise XtlError(f"cannot write into {p.parent}; choose an --out you can write to")


def longest_prompts(items, k: int = 4) -> dict[str, str]:
    """The ``k`` longest target prompts of ``items`` (by characters), named for messages: what
    :func:`check_context` needs to refuse a sweep whose items cannot fit."""
    longest = sorted(items, key=lambda it: len(it.target), reverse=True)[:k]
    return {f"target prompt of item {it.id!r}": it.target for it in longest}


def check_context(model: str, prompts: dict[str, str], max_new_tokens: int | None, chat: bool = False,
                  n_ctx: int | None = None) -> None:
    """Each prompt (+ its new tokens) against the model's context, from its config and tokenizer
    alone, before the weights load. Silent when the model is not on disk yet (a hub name, a demo
    model not yet converted): the library checks after loading then."""
    from xtl.models.hfconfig import text_config
    from xtl.models.load import default_n_ctx, local_folder

    folder = local_folder(model)
    if folder is None or not prompts:
        return
    try:
        from transformers import AutoConfig, AutoTokenizer

        config = AutoConfig.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception:  # noqa: BLE001 - a folder that cannot load is reported by load_model
        return
    from xtl.patching.prompts import chat_prompt, encode

    if chat and not getattr(tokenizer, "chat_template", None):
        raise PromptError(f"the tokenizer of {model} has no chat template, which --chat needs; run without --chat")
    limit = n_ctx or default_n_ctx(text_config(config))
    for what, text in prompts.items():
        if chat and getattr(tokenizer, "chat_template", None):
            text = chat_prompt(tokenizer, text)
        try:
            count = len(encode(tokenizer, text))
        except Exception:  # noqa: BLE001 - odd text (a lone surrogate) is refused later, with its reason
            continue
        if count + (max_new_tokens or 0) > limit:
            raise PromptError(f"the {what} has {count} tokens; with {max_new_tokens or 0} new tokens that is "
                              f"more than the model's context of {limit}; shorten it or lower --max-new-tokens")


def data_settings(data: str) -> dict:
    """How a store records its task: a JSONL file by its resolved path and content hash (so a
    job array started from another folder resumes it), a registered task by its name."""
    from xtl.tasks.registry import task_record

    return {k: v for k, v in task_record(data).items() if k != "data_root"}  # the CLI records --data-root itself
