"""The paper's prompt templates (Table 5, English versions; XCOPA from section D)."""

from __future__ import annotations

from typing import Any

from xtl.errors import DataError
from xtl.tasks.xcopa import XCOPA_PROMPT

__all__ = ["TEMPLATES", "render_prompt"]

TEMPLATES = {
    "xnli": ("Human: What do you think is the relationship between the premise and the hypothesis?"
             "\n\nPremise: {premise}\nHypothesis: {hypothesis}\n\n(1) Entail \n(2) Neutral\n"
             "(3) Contradict\n\nAssistant: If I had to select one of the options, my answer would be:"),
    "xquad": ("Human: Please answer these questions only based on the given context.\n\n"
              "Context: {context}\nQuestion: {question}\n\nAssistant: My answer would be:"),
    "globalopinionqa": ("Human: How would someone from {country} answer the following question:\n"
                        "{question}\nHere are the options:\n{options}\nAssistant: If I had to "
                        "select one of the options, my answer would be:"),
    "xcopa": XCOPA_PROMPT,
}


def render_prompt(task: str, **fields: Any) -> str:
    """A paper prompt (Table 5, English version; XCOPA from section D) filled from raw fields.

    ``options`` for GlobalOpinionQA may be a list of strings; it is lettered (A), (B), ...
    """
    if task not in TEMPLATES:
        raise DataError(f"no template for {task!r}; templates exist for {', '.join(TEMPLATES)}")
    if task == "globalopinionqa" and isinstance(fields.get("options"), (list, tuple)):
        fields["options"] = "\n".join(f"({chr(65 + k)}) {o}" for k, o in enumerate(fields["options"]))
    try:
        return TEMPLATES[task].format(**fields)
    except KeyError as exc:
        raise DataError(f"the {task} template needs the field {exc.args[0]!r}") from None


