import json

import pytest

from xtl.errors import DataError
from xtl.tasks import load_task


def test_pilotsets_load_with_direction(shared_data):
    xnli = load_task("xnli", langs=["sw", "zh"], limit=3, data_root=shared_data)
    assert len(xnli) == 6 and {i.lang for i in xnli} == {"sw", "zh"}
    assert xnli[0].source.startswith("Human: What do you think")  # English is the source
    assert xnli[0].gold in {"1", "2", "3"} and xnli[-1].options == {"1": "蕴涵", "2": "中立", "3": "矛盾"}
    goqa = load_task("globalopinionqa", langs=["ja"], limit=2, data_root=shared_data)
    assert goqa[0].target.startswith("Human: How would someone from Japan")  # English is the target
    assert goqa[0].gold == "A"  # label [0.8, 0.2]
    xquad = load_task("xquad:unseen", langs=["de"], limit=1, data_root=shared_data)
    assert xquad[0].kind == "qa" and xquad[0].gold
    xcopa = load_task("xcopa", langs=["sw"], limit=2, data_root=shared_data)
    assert xcopa[0].source != xcopa[0].target and xcopa[0].meta["pivot"] == "en"


def _jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_xcopa_from_english_into_the_papers_languages(shared_data):
    items = load_task("xcopa", data_root=shared_data)
    assert sorted({i.lang for i in items}) == ["en", "ht", "id", "it", "sw", "ta", "tr", "vi", "zh"]
    assert len(items) == 9 * 500
    en = {r["idx"]: r for r in _jsonl(shared_data / "xcopa" / "data" / "en" / "test.en.jsonl")}
    for item in items:
        src = en[int(item.id)]
        assert item.source.startswith("You are assigned") and src["premise"] in item.source
        assert item.meta["src_lang"] == "en" and (item.source == item.target) == (item.lang == "en")
        assert item.gold == str(src["label"] + 1)
    on_request = load_task("xcopa", langs=["et", "qu", "th"], limit=3, data_root=shared_data)
    assert [i.lang for i in on_request] == ["et"] * 3 + ["qu"] * 3 + ["th"] * 3
    (self_item,) = load_task("xcopa", langs=["en"], limit=1, data_root=shared_data)  # English -> English
    assert self_item.source == self_item.target


def test_xcopa_prompts_ask_the_english_question(shared_data):
    folder = shared_data / "xcopa" / "data"
    en = {r["idx"]: r["question"] for r in _jsonl(folder / "en" / "test.en.jsonl")}
    items = load_task("xcopa", langs=["th", "tr", "sw", "id", "it", "zh"], data_root=shared_data)
    wrong_in_file = 0
    for item in items:
        question = en[int(item.id)]
        asked = f"more likely to be the {question} of the given premise"
        assert asked in item.target and asked in item.source, (item.lang, item.id)
        wrong_in_file += item.meta["file_question"] != question
    # th says "effect" on every item; its 250 COPA cause items alone are wrong in the file
    th = [i for i in items if i.lang == "th"]
    assert sum(i.meta["file_question"] != i.meta["question"] for i in th) == 250
    assert wrong_in_file == 250 + 51 + 37 + 4 + 4


def test_xcopa_without_its_english_source_is_an_error(shared_data, tmp_path):
    import shutil

    copy = tmp_path / "xcopa" / "data"
    for lang in ("sw", "zh"):
        shutil.copytree(shared_data / "xcopa" / "data" / lang, copy / lang)
    with pytest.raises(DataError, match=r"missing XCOPA source-language file .*en/test\.en\.jsonl"):
        load_task("xcopa", langs=["zh"], data_root=tmp_path)


def test_missing_language_is_named(shared_data):
    with pytest.raises(DataError, match="missing"):
        load_task("xnli", langs=["xx"], data_root=shared_data)


def test_jsonl_task_and_errors(tmp_path):
    good = tmp_path / "t.jsonl"
    good.write_text("\n".join(json.dumps({"source": f"s{k}", "target": f"t{k}", "gold": "A", "lang": "fr"})
                              for k in range(3)), encoding="utf-8")
    assert [i.target for i in load_task(str(good), limit=2)] == ["t0", "t1"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"source": "s", "target": "t", "gold": "A"}\n{oops\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl:2: malformed"):
        load_task(str(bad))
    missing = tmp_path / "m.jsonl"
    missing.write_text('{"source": "s", "target": "t"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="missing field"):
        load_task(str(missing))


def test_cli_sweep_on_jsonl(tmp_path, tokenizer):
    from helpers import PROMPTS, tiny_hf
    from xtl.cli import main
    from xtl.engine.store import read_store

    folder = tmp_path / "m"
    tiny_hf("llama").save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"source": PROMPTS["zh"], "target": PROMPTS["en"], "gold": "B"}),
                    encoding="utf-8")
    args = ["sweep", "--model", str(folder), "--task", str(data), "--out", str(tmp_path / "o"),
            "--max-new-tokens", "3", "--dtype", "float64"]
    assert main(args) == 0
    assert len(read_store(tmp_path / "o")) == 4 * 4 + 1
    assert main(args) == 0  # resumes: nothing to do


def test_source_language_is_a_setting_of_xnli_and_xquad(shared_data):
    """``xnli@zh`` transplants from the Chinese prompts (the paper's Table 8); the Chinese item
    is then a self-transplant, and a task without parallel prompts refuses the setting."""
    en = load_task("xnli", langs=["de", "zh"], limit=2, data_root=shared_data)
    zh = load_task("xnli@zh", langs=["de", "zh"], limit=2, data_root=shared_data)
    assert [i.key for i in zh] == [i.key for i in en]
    by_key = {i.key: i for i in en}
    for item in zh:
        assert item.src_lang == "zh" and item.target == by_key[item.key].target
        chinese = next(i for i in en if i.lang == "zh" and i.id == item.id)
        assert item.source == chinese.target
    assert all(i.source == i.target for i in zh if i.lang == "zh")
    (q,) = load_task("xquad@de", langs=["en"], limit=1, data_root=shared_data)
    assert q.src_lang == "de" and q.source != q.target
    with pytest.raises(DataError, match="only xnli, xquad have parallel prompts"):
        load_task("globalopinionqa@zh", data_root=shared_data)
    with pytest.raises(DataError, match=r"source language 'xx'"):
        load_task("xnli@xx", data_root=shared_data)


def test_culturalbench_task_from_a_folder_with_translated_prompts(tmp_path):
    folder = tmp_path / "culturalbench"
    folder.mkdir()
    question = {"prompt_question": "What do people eat?", "prompt_option_a": "Sushi", "prompt_option_b": "Tacos",
                "prompt_option_c": "Haggis", "prompt_option_d": "Pierogi", "answer": "A"}
    rows = [{**question, "data_idx": "1", "country": "Japan"}, {**question, "data_idx": "2", "country": "Poland"},
            {**question, "data_idx": "3", "country": "Peru"}]
    (folder / "questions.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    with pytest.raises(DataError, match='put prompts.jsonl in .*"id": "<CulturalBench data_idx>"'):
        load_task("culturalbench", data_root=tmp_path)
    (folder / "prompts.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in [{"id": "1", "prompt": "人々は何を食べますか？"},
                                                             {"id": "2", "prompt": "Co jedzą ludzie?"},
                                                             {"id": "3", "prompt": "¿Qué come la gente?"}]),
        encoding="utf-8")
    items = load_task("culturalbench", data_root=tmp_path)
    assert [(i.lang, i.source, i.gold) for i in items] == [("ja", "人々は何を食べますか？", "A"), ("pl", "Co jedzą ludzie?", "A")]
    assert items[0].out_lang == "en" and "(A) Sushi" in items[0].target   # Peru is not one of the 16
    from xtl.evaluation import resource_group
    assert resource_group("pl", "culturalbench") == "low"
    (folder / "prompts.jsonl").write_text('{"id": "1"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="prompts.jsonl:1: expected one JSON object per line"):
        load_task("culturalbench", data_root=tmp_path)


def test_an_unknown_source_language_is_named_as_the_source(shared_data):
    """Issue 30 §7: ``xnli@xx`` said "language(s) ['xx'] missing", which reads like a --langs error."""
    from xtl.errors import DataError
    from xtl.tasks import load_task

    with pytest.raises(DataError, match=r"source language 'xx' \(the '@xx' of the task\).*give one of: .*sw"):
        load_task("xnli@xx", langs=["sw"], limit=1, data_root=shared_data)


def test_an_unreachable_hub_is_said_at_once(monkeypatch):
    """Issue 30 §7: `--data mkqa` offline spent half a minute in the hub client's retries, its raw
    log lines printed, before the error."""
    import socket

    from xtl.errors import DataError
    from xtl.tasks import hub, load_task

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert hub.hub_reachable(timeout=2)
    server.close()
    assert not hub.hub_reachable(timeout=2)                         # nothing listens there now
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(DataError, match="apple/mkqa comes from the Hugging Face Hub, which is unreachable"):
        load_task("mkqa", langs=["de"], limit=1)
