"""Tasks as data: the paper's PilotSets and unseen sets, XCOPA, MKQA, CulturalBench and
parallel JSONL files, each a :class:`Task` record in one registry.

Every loader yields :class:`Item` records with source prompt, target prompt, gold answer,
language and the transplant direction the paper uses: English -> other for XNLI and XQuAD,
culture language -> English for GlobalOpinionQA.

Get the data by cloning the authors' repository (https://github.com/YYF-Tommy/XTransplant) and
pointing ``root`` (or ``$XTL_DATA``) at its ``data/`` folder, or at a folder holding
``xtransplant/`` and ``xcopa/``.
"""

from xtl._lazy import lazy_exports

_EXPORTS = {
    "COT_MAX_NEW_TOKENS": "xtl.tasks.cot",
    "COT_SUFFIX": "xtl.tasks.cot",
    "base_language": "xtl.tasks.cot",
    "cot_items": "xtl.tasks.cot",
    "cot_suffix": "xtl.tasks.cot",
    "load_culturalbench": "xtl.tasks.culturalbench",
    "data_root": "xtl.tasks.files",
    "read_jsonl": "xtl.tasks.files",
    "load_globalopinionqa": "xtl.tasks.globalopinionqa",
    "Item": "xtl.tasks.item",
    "Pair": "xtl.tasks.item",
    "as_item": "xtl.tasks.item",
    "as_items": "xtl.tasks.item",
    "content_id": "xtl.tasks.item",
    "load_jsonl_task": "xtl.tasks.jsonl",
    "load_mkqa": "xtl.tasks.mkqa",
    "TASKS": "xtl.tasks.registry",
    "Scoring": "xtl.tasks.registry",
    "Task": "xtl.tasks.registry",
    "builtin_pair": "xtl.tasks.registry",
    "find_task": "xtl.tasks.registry",
    "get_task": "xtl.tasks.registry",
    "load_task": "xtl.tasks.registry",
    "register": "xtl.tasks.registry",
    "scoring_for": "xtl.tasks.registry",
    "parse_shard": "xtl.tasks.sharding",
    "shard": "xtl.tasks.sharding",
    "TEMPLATES": "xtl.tasks.templates",
    "render_prompt": "xtl.tasks.templates",
    "XCOPA_LANGS": "xtl.tasks.xcopa",
    "XCOPA_PROMPT": "xtl.tasks.xcopa",
    "load_xcopa": "xtl.tasks.xcopa",
    "load_xnli": "xtl.tasks.xnli",
    "load_xquad": "xtl.tasks.xquad",
}

__all__ = ["Item", "Pair", "as_item", "as_items", "content_id", "Task", "Scoring", "TASKS", "register", "find_task", "get_task", "load_task", "scoring_for", "builtin_pair", "data_root", "read_jsonl", "shard", "parse_shard", "TEMPLATES", "render_prompt", "COT_SUFFIX", "COT_MAX_NEW_TOKENS", "cot_suffix", "cot_items", "base_language", "XCOPA_LANGS", "XCOPA_PROMPT", "load_xnli", "load_xquad", "load_globalopinionqa", "load_xcopa", "load_mkqa", "load_culturalbench", "load_jsonl_task"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
