"""Issue 38 §3: one argument order (source -> target) and one name per thing across the public
API and the CLI; the old spellings warn for one release, the old positional ``transplant`` is refused."""

from __future__ import annotations

import argparse
import inspect
import warnings

import pytest
import torch

import xtl
from xtl.cli.parser import build_parser
from xtl.errors import CallError, XtlError

from helpers import PROMPTS

SOURCE_NAMES = ("source", "sources", "source_prompt")
TARGET_NAMES = ("target", "target_prompt")
#: old name -> the one name it is now (docs/api-changes.md)
RETIRED = {"source_prompt": "source", "target_prompt": "target", "spec": "task", "root": "data_root"}
#: Where an old name stays, and why: ``load_model``'s ``spec`` names a model, not a task; ``xtl.sft``'s
#: ``data`` is its training file, not a task; ``SweepSettings.data`` is the store manifest's key (a file
#: format that stores already written keep; ``SweepSettings.task`` reads it).
KEPT = {("load_model", "spec"), ("from_hf", "spec"), ("sft", "data"), ("SweepSettings", "data")}
FLAGS = ("chat", "progress")
OLD_OPTIONS = {"--data", "--source-prompt", "--target-prompt", "--prompt"}


def _public():
    for name in xtl.__all__:
        obj = getattr(xtl, name)
        if callable(obj):
            try:
                yield name, obj, inspect.signature(obj)
            except (TypeError, ValueError):  # exceptions and other builtins
                continue


def _index(params, names):
    found = [k for k, p in enumerate(params) if p.name in names]
    return found[0] if found else None


def test_the_walk_sees_the_calls_a_newcomer_meets():
    seen = {name for name, _, _ in _public()}
    assert {"transplant", "vanilla", "capture", "case_study", "compare", "lens", "sweep", "load_task",
            "evaluate", "open_run", "Pair", "Item", "TransplantResult", "VanillaResult"} <= seen


def problems(name: str, obj) -> list[str]:
    """What is out of order or misnamed in one public callable's signature."""
    params = list(inspect.signature(obj).parameters.values())
    out = []
    src, tgt = _index(params, SOURCE_NAMES), _index(params, TARGET_NAMES)
    if src is not None and tgt is not None and src > tgt:
        out.append(f"xtl.{name}: the source prompt must come before the target")
    is_record = inspect.isclass(obj) or name == "Pair"  # records keep (source, target) positional, in order
    if not is_record and src is not None and tgt is not None:
        out += [f"xtl.{name}: the prompt {params[k].name!r} must be keyword-only (a positional slip swaps them)"
                for k in (src, tgt) if params[k].kind is not inspect.Parameter.KEYWORD_ONLY]
    for p in params:
        if (name, p.name) in KEPT:
            continue
        if p.name in RETIRED:
            out.append(f"xtl.{name}: {p.name!r} is called {RETIRED[p.name]!r} everywhere else")
        if p.name == "data":
            out.append(f"xtl.{name}: a task is called 'task', not 'data'")
        if not is_record and p.name in FLAGS and p.kind is not inspect.Parameter.KEYWORD_ONLY:
            out.append(f"xtl.{name}: the flag {p.name!r} must be keyword-only")
    return out


@pytest.mark.parametrize("name", [n for n, _, _ in _public()])
def test_prompts_in_order_by_keyword_with_one_name(name):
    assert problems(name, getattr(xtl, name)) == []


def test_the_walk_fails_on_yesterdays_signatures():
    def transplant(model, target_prompt, source, src_layer, tgt_layer, site="mlp", max_new_tokens=20, chat=None):
        ...

    def case_study(model, source_prompt, target_prompt, gold, chat=None):
        ...

    def swapped(model, *, target, source):
        ...

    def open_run(store, data=None, root=None):
        ...

    found = problems("transplant", transplant)
    assert "xtl.transplant: the source prompt must come before the target" in found
    assert len(found) == 5  # + both prompts positional, target_prompt's name, chat positional
    assert len(problems("case_study", case_study)) == 5  # both prompts positional and misnamed, chat positional
    assert problems("swapped", swapped) == ["xtl.swapped: the source prompt must come before the target"]
    assert len(problems("open_run", open_run)) == 2


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_cli_options_in_order_with_one_name(command):
    options = [a.option_strings[0] for a in _subcommands()[command]._actions if a.option_strings]
    if "--source" in options and "--target" in options:
        assert options.index("--source") < options.index("--target"), command
    old = set(options) & OLD_OPTIONS - ({"--data"} if command == "sft" else set())
    assert not old, f"xtl {command}: {sorted(old)} are old spellings; the option is named by the new one"


def test_cli_old_spellings_still_work_and_say_so(capsys):
    parser = build_parser()
    args = parser.parse_args(["sweep", "--model", "m", "--data", "xnli", "--out", "o"])
    assert args.task == "xnli" and "--data is now --task" in capsys.readouterr().err
    args = parser.parse_args(["transplant", "--source-prompt", "s.txt", "--target-prompt", "t.txt"])
    assert (args.source, args.target) == ("s.txt", "t.txt")
    assert "--source-prompt is now --source" in capsys.readouterr().err
    args = parser.parse_args(["lens", "--model", "m", "--prompt", "p.txt"])
    assert args.target == "p.txt" and "--prompt is now --target" in capsys.readouterr().err
    args = parser.parse_args(["sweep", "--model", "m", "--task", "xnli", "--out", "o"])
    assert args.task == "xnli" and capsys.readouterr().err == ""


# ---------------------------------------------------------------- the library's old spellings
@pytest.fixture(scope="module")
def model(tiny_models):
    return tiny_models["llama"][1]


def test_old_positional_transplant_is_refused_in_one_line(model):
    with pytest.raises(CallError) as err:
        xtl.transplant(model, PROMPTS["en"], PROMPTS["zh"], 1, 0, "mlp")  # today's target-first order
    message = str(err.value)
    assert "\n" not in message and "source=..., target=..." in message and "xtl.transplant(model, " in message
    assert isinstance(err.value, XtlError) and isinstance(err.value, TypeError)
    with pytest.raises(CallError):
        xtl.transplant(model, PROMPTS["en"], source=PROMPTS["zh"], src_layer=1, tgt_layer=0)


def test_old_keywords_warn_and_mean_the_same(model):
    new = xtl.transplant(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=2, tgt_layer=1, max_new_tokens=3)
    with pytest.warns(FutureWarning, match="target_prompt= is now target="):
        old = xtl.transplant(model, target_prompt=PROMPTS["en"], source=PROMPTS["zh"], src_layer=2, tgt_layer=1,
                             max_new_tokens=3)
    assert old.tokens == new.tokens and torch.equal(old.first_logprobs, new.first_logprobs)
    assert (new.source, new.target) == (PROMPTS["zh"], PROMPTS["en"])
    with pytest.warns(FutureWarning, match="target_prompt is now .target"):
        assert new.target_prompt == PROMPTS["en"]
    with pytest.raises(CallError, match="both target_prompt="):
        xtl.transplant(model, target_prompt="a", target="b", source="c", src_layer=0, tgt_layer=0)


def test_source_first_positional_calls_warn_and_keep_their_meaning(model):
    new = xtl.compare(model, source=PROMPTS["zh"], target=PROMPTS["en"], src_layer=3, tgt_layer=0, max_new_tokens=2)
    with pytest.warns(FutureWarning, match=r"xtl.compare: pass source, target, src_layer, tgt_layer by keyword"):
        old = xtl.compare(model, PROMPTS["zh"], PROMPTS["en"], 3, 0, max_new_tokens=2)
    assert {k: v.response for k, v in old.items()} == {k: v.response for k, v in new.items()}
    with pytest.warns(FutureWarning, match="source_prompt= is now source="):
        xtl.compare(model, source_prompt=PROMPTS["zh"], target=PROMPTS["en"], src_layer=3, tgt_layer=0,
                    max_new_tokens=1, positions="last")
    with pytest.warns(FutureWarning, match="xtl.case_study: pass source, target, gold by keyword"):
        cs = xtl.case_study(model, PROMPTS["zh"], PROMPTS["en"], "A", site="attn", max_new_tokens=1)
    assert cs.gold == "A"
    with pytest.raises(CallError, match="both by position and by keyword"):
        xtl.case_study(model, PROMPTS["zh"], source=PROMPTS["zh"], target=PROMPTS["en"], gold="A")


def test_flags_are_keyword_only(model):
    with pytest.warns(FutureWarning, match="xtl.capture: pass chat by keyword"):
        xtl.capture(model, PROMPTS["zh"], "mlp", False)
    with pytest.warns(FutureWarning), pytest.raises(XtlError, match="chat must be True, False or None"):
        xtl.capture(model, PROMPTS["zh"], "mlp", 99)  # 99 is no chat flag
    with pytest.raises(CallError):
        xtl.capture(model, PROMPTS["zh"], "mlp", False, True)


def test_vanilla_returns_a_result_object(model):
    res = xtl.vanilla(model, PROMPTS["en"], max_new_tokens=3)
    assert isinstance(res, xtl.VanillaResult) and res.prompt == PROMPTS["en"]
    ref = xtl.transplant(model, source=PROMPTS["en"], target=PROMPTS["en"], src_layer=1, tgt_layer=1, max_new_tokens=3)
    assert res.tokens == ref.vanilla_tokens and res.text == ref.vanilla_text
    assert torch.equal(res.first_logprobs, ref.vanilla_first_logprobs)
    with pytest.warns(FutureWarning, match="returns a VanillaResult"):
        text, tokens, logprobs = res  # the old tuple, for one release
    assert (text, tokens) == (res.text, res.tokens) and logprobs is res.first_logprobs
    with pytest.warns(FutureWarning, match="returns a VanillaResult"):
        assert res[1] == res.tokens
    with pytest.warns(FutureWarning, match="xtl.vanilla: pass max_new_tokens by keyword"):
        assert xtl.vanilla(model, PROMPTS["en"], 3).tokens == res.tokens


def test_task_names(write_task, tmp_path):
    path = write_task([{"source": "s", "target": "t", "gold": "A", "lang": "de"}])
    assert [i.gold for i in xtl.load_task(str(path))] == ["A"]
    with pytest.warns(FutureWarning, match="spec= is now task="):
        assert [i.gold for i in xtl.load_task(spec=str(path))] == ["A"]
    with pytest.warns(FutureWarning, match="root= is now data_root="):
        xtl.load_task(str(path), root=tmp_path)
    with pytest.warns(FutureWarning, match="pass langs by keyword"):
        assert [i.lang for i in xtl.load_task(str(path), ["de"])] == ["de"]


def test_each_old_spelling_warns_once_per_line(model):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        for _ in range(3):
            xtl.capture(model, PROMPTS["zh"], "mlp", False)
    assert len([w for w in seen if issubclass(w.category, FutureWarning)]) == 1
