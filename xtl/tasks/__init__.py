"""Tasks as data: the paper's PilotSets and unseen sets, XCOPA, MKQA, CulturalBench and
parallel JSONL files, each a :class:`Task` record in one registry.

Every loader yields :class:`Item` records with source prompt, target prompt, gold answer,
language and the transplant direction the paper uses: English -> other for XNLI and XQuAD,
culture language -> English for GlobalOpinionQA.

Get the data by cloning the authors' repository (https://github.com/YYF-Tommy/XTransplant) and
pointing ``root`` (or ``$XTL_DATA``) at its ``data/`` folder, or at a folder holding
``xtransplant/`` and ``xcopa/``.
"""

from xtl.tasks.cot import COT_MAX_NEW_TOKENS, COT_SUFFIX, base_language, cot_items, cot_suffix
from xtl.tasks.culturalbench import load_culturalbench
from xtl.tasks.files import data_root, read_jsonl
from xtl.tasks.globalopinionqa import load_globalopinionqa
from xtl.tasks.item import Item, Pair, as_item, as_items, content_id
from xtl.tasks.jsonl import load_jsonl_task
from xtl.tasks.mkqa import load_mkqa
from xtl.tasks.registry import (TASKS, Scoring, Task, builtin_pair, find_task, get_task, load_task,
                                register, scoring_for)
from xtl.tasks.sharding import parse_shard, shard
from xtl.tasks.templates import TEMPLATES, render_prompt
from xtl.tasks.xcopa import XCOPA_LANGS, XCOPA_PROMPT, load_xcopa
from xtl.tasks.xnli import load_xnli
from xtl.tasks.xquad import load_xquad

__all__ = ["Item", "Pair", "as_item", "as_items", "content_id", "Task", "Scoring", "TASKS", "register",
           "find_task", "get_task", "load_task", "scoring_for", "builtin_pair", "data_root", "read_jsonl",
           "shard", "parse_shard", "TEMPLATES", "render_prompt", "COT_SUFFIX", "COT_MAX_NEW_TOKENS",
           "cot_suffix", "cot_items", "base_language", "XCOPA_LANGS", "XCOPA_PROMPT", "load_xnli",
           "load_xquad", "load_globalopinionqa", "load_xcopa", "load_mkqa", "load_culturalbench",
           "load_jsonl_task"]
