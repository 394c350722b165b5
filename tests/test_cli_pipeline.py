"""The CLI end to end on a tiny local model: sweep -> report, eval, lens."""

from __future__ import annotations

import pandas as pd
import pytest

from xtl.cli import main

from helpers import PROMPTS, write_jsonl


def _task(tmp_path):
    path = tmp_path / "task.jsonl"
    rows = [{"id": k, "lang": lang, "source": PROMPTS["zh"], "target": PROMPTS["en"] + " " * k,
             "gold": "B", "kind": "choice", "options": {"A": "A", "B": "B"}}
            for k, lang in enumerate(["en", "de", "de"])]
    write_jsonl(path, rows)
    return path


def test_sweep_then_report(tmp_path, tiny_folder, capsys):
    task = _task(tmp_path)
    store = tmp_path / "store"
    args = ["sweep", "--model", str(tiny_folder), "--dtype", "float64", "--task", str(task), "--site", "attn",
            "--out", str(store), "--max-new-tokens", "3"]
    assert main(args) == 0
    assert main(args) == 0                                    # re-run: nothing to do, same store
    assert main(["report", str(store), "--out", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert html.count("Plotly.newPlot") == 5 and "Accuracy by language" in html
    # the store's model, dtype, device, backend and TransformerLens version, beside the numbers (issue 28)
    from xtl.engine import read_settings

    s = read_settings(store)
    said = f"{tiny_folder.name}, float64, cpu, {s.backend} backend (TransformerLens {s.tl_version}), xtl {s.xtl_version}"
    assert f"<th>computed with</th><td>{said}</td>" in html
    assert main(["paper", str(store), "--table", "3", "--out", str(tmp_path / "tables")]) == 0
    assert f"Computed with: {said}." in capsys.readouterr().out
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "x.html")]) == 2


def test_eval_vanilla_and_transplanted(tmp_path, tiny_folder, capsys):
    task = _task(tmp_path)
    out = tmp_path / "ev"
    assert main(["eval", "--model", str(tiny_folder), "--dtype", "float64", "--task", str(task),
                 "--src-layer", "1", "--tgt-layer", "0", "--out", str(out), "--max-new-tokens", "3"]) == 0
    printed = capsys.readouterr().out
    assert "accuracy by lang" in printed and "transplanted" in printed
    by_lang = pd.read_csv(out / "accuracy_by_lang.csv")
    assert set(by_lang["lang"]) == {"en", "de", "all"} and by_lang["n"].tolist()[-1] == 3
    df = pd.read_parquet(out / "evaluated.parquet")
    assert {"correct", "lang_ok", "ppl", "group"} <= set(df.columns)
    assert df["ppl"].notna().any()
    assert main(["eval", "--model", str(tiny_folder), "--task", str(task), "--src-layer", "1"]) == 2


def test_lens_cli(tmp_path, tiny_folder, capsys):
    (tmp_path / "s.txt").write_text(PROMPTS["zh"], encoding="utf-8")
    (tmp_path / "t.txt").write_text(PROMPTS["en"], encoding="utf-8")
    assert main(["lens", "--model", str(tiny_folder), "--dtype", "float64", "--target", str(tmp_path / "t.txt"),
                 "--source", str(tmp_path / "s.txt"), "--src-layer", "2", "--tgt-layer", "0",
                 "--max-new-tokens", "3", "--track", "A", "--out", str(tmp_path / "lens.html")]) == 0
    printed = capsys.readouterr().out
    assert "L3" in printed and (tmp_path / "lens.html").exists()
    assert main(["lens", "--model", str(tiny_folder), "--target", str(tmp_path / "t.txt"),
                 "--source", str(tmp_path / "s.txt")]) == 2


def test_lens_cli_fits_the_terminal_and_names_its_run(tmp_path, tiny_folder, capsys, monkeypatch):
    """Issue 38 §4: ``xtl lens`` printed ~380 columns and did not say which run was transplanted."""
    (tmp_path / "s.txt").write_text(PROMPTS["zh"], encoding="utf-8")
    (tmp_path / "t.txt").write_text(PROMPTS["en"], encoding="utf-8")
    monkeypatch.setenv("COLUMNS", "60")
    base = ["lens", "--model", str(tiny_folder), "--prompt", str(tmp_path / "t.txt"), "--positions", "generated",
            "--max-new-tokens", "8"]
    assert main([*base, "--source", str(tmp_path / "s.txt"), "--src-layer", "2", "--tgt-layer", "0"]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if not l.startswith("Moving model")]
    assert "transplanted: mlp of" in lines[0] and "source layer 2 -> target layer 0" in lines[0]
    table = [l for l in lines if l.lstrip().startswith("L") or l.startswith(" " * 9)]
    assert table and max(map(len, table)) <= 60, lines
    assert any(l.startswith("… ") and "more positions not shown" in l for l in lines)
    assert any("every position: add --out" in l for l in lines)
    assert any(l.startswith("response (transplanted): ") for l in lines)
    out = tmp_path / "lens.html"
    monkeypatch.setenv("COLUMNS", "1000")
    assert main([*base, "--out", str(out)]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if not l.startswith("Moving model")]
    assert lines[0].endswith("vanilla: no transplant") and not any(l.startswith("… ") for l in lines)
    assert any(l.startswith("response (vanilla): ") for l in lines) and out.exists()


def test_a_complete_store_answers_without_loading_the_model(tmp_path, tiny_folder, capsys, monkeypatch):
    """Issue 20, point 6: `xtl sweep` into a finished store says so at once."""
    import pytest

    import xtl.models

    task = _task(tmp_path)
    store = tmp_path / "store"
    args = ["sweep", "--model", str(tiny_folder), "--dtype", "float64", "--task", str(task), "--site", "mlp",
            "--out", str(store), "--max-new-tokens", "2", "--src-layers", "0", "-1", "--tgt-layers", "1"]
    assert main(args) == 0
    capsys.readouterr()
    monkeypatch.setattr(xtl.models, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    assert main(args) == 0
    assert "nothing to do: all 3 item(s) are already in" in capsys.readouterr().out
    # other settings are refused as the sweep would refuse them, still without the model, naming
    # the setting and the option that matches the store; a larger selection needs the model
    for changed, message in ((["--max-new-tokens", "3"], "(max_new_tokens: store 2, now 3); resume it with "
                              "the store's settings (--max-new-tokens 2)"),
                             (["--site", "attn"], '(site: store "mlp", now "attn")'),
                             (["--dtype", "float32"], "(--dtype float64)")):
        assert main(args + changed) == 2
        assert message in capsys.readouterr().err
    # an edited file (a line removed: every remaining item is in the store) is refused by its hash
    task.write_text("".join(task.read_text().splitlines(keepends=True)[:-1]))
    assert main(args) == 2 and "data_sha256: store" in capsys.readouterr().err


def test_a_complete_store_and_an_incomplete_one_give_one_answer(tmp_path, tiny_folder, capsys, monkeypatch):
    """Issue 37 §1: a finished store swept with --chat (or --backend bridge) said "nothing to do" to
    the command without it, which an unfinished store refused: both refuse it, naming the setting
    and the option that matches the store, before the model loads."""
    import json
    import shutil

    import xtl.models

    folder = tmp_path / "chatty"                             # the tiny model, with a chat template
    shutil.copytree(tiny_folder, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>"
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    task = _task(tmp_path)
    common = ["--model", str(folder), "--dtype", "float64", "--task", str(task), "--site", "mlp",
              "--max-new-tokens", "2", "--src-layers", "1", "--tgt-layers", "0"]
    for flag, message in ((["--chat"], "(chat: store true, now false); resume it with the store's settings (--chat)"),
                          (["--backend", "bridge"], '(backend: store "bridge", now "hooked"); resume it with the '
                                                    "store's settings (--backend bridge)")):
        done, part = tmp_path / f"done{flag[0]}", tmp_path / f"part{flag[0]}"
        assert main(["sweep", *common, *flag, "--out", str(done)]) == 0
        assert main(["sweep", *common, *flag, "--out", str(part), "--limit", "1"]) == 0
        capsys.readouterr()
        with monkeypatch.context() as m:
            m.setattr(xtl.models, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
            answers = []
            for store in (done, part):
                assert main(["sweep", *common, "--out", str(store)]) == 2
                answers.append(capsys.readouterr().err.replace(str(store), "STORE"))
            assert answers[0] == answers[1] and message in answers[0]
            assert main(["sweep", *common, *flag, "--out", str(done)]) == 0      # the store's own settings
            assert "nothing to do" in capsys.readouterr().out


def test_a_jsonl_store_resumes_from_another_folder_or_an_absolute_path(tmp_path, tiny_folder, capsys,
                                                                       monkeypatch):
    """Issue 20, point 2: a data file is known by its resolved path (and its hash is recorded)."""
    import hashlib

    from xtl.engine import read_settings

    task = _task(tmp_path)
    store = tmp_path / "store"
    monkeypatch.chdir(tmp_path)
    common = ["--model", str(tiny_folder), "--dtype", "float64", "--site", "mlp", "--out", str(store),
              "--max-new-tokens", "2", "--src-layers", "1", "--tgt-layers", "0"]
    assert main(["sweep", "--task", "task.jsonl", *common]) == 0
    settings = read_settings(store)
    assert settings.data == str(task.resolve())
    assert settings.data_sha256 == hashlib.sha256(task.read_bytes()).hexdigest()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert main(["sweep", "--task", "../task.jsonl", *common]) == 0
    assert main(["sweep", "--task", str(task), *common]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["sweep", "--task", "../task.jsonl", *common[:-4], "--src-layers", "2", "--tgt-layers", "0"]) == 2
    assert "src_layers: store [1], now [2]" in capsys.readouterr().err


def test_cross_sweep_then_select(tmp_path, tiny_folder, capsys):
    """A 2N − 1 sweep holds every candidate the default strategies need; `xtl select`
    cross-validates them and writes the table, the choices and one layer heatmap per strategy."""
    pytest.importorskip("sklearn")
    task = _task(tmp_path)
    store = tmp_path / "cross"
    assert main(["sweep", "--model", str(tiny_folder), "--dtype", "float64", "--task", str(task), "--site", "attn",
                 "--grid", "cross", "--out", str(store), "--max-new-tokens", "3"]) == 0
    capsys.readouterr()
    assert main(["select", str(store), "--cv", "2", "--out", str(tmp_path / "sel")]) == 0
    printed = capsys.readouterr().out
    for row in ("| Vanilla |", "| coarse |", "| entropy-based |", "| agreement |", "| learned |", "| TargetFirst |"):
        assert row in printed
    assert "2-fold cross-validation over items" in printed and "N² oracle: not computable" in printed
    files = {p.name for p in (tmp_path / "sel").iterdir()}
    assert any(f.endswith("-learned-layers.html") for f in files) and any(f.endswith("-choices.csv") for f in files)
    # issue 30 §7: figure files are named by the registered names, not slugs of display names
    assert any(f.endswith("-entropy-cross-layers.html") for f in files), files
    assert not any("_-layers" in f or "(" in f for f in files), files
    assert main(["select", str(store), "--strategy", "entropi", "--out", str(tmp_path / "sel")]) == 2
    capsys.readouterr()
    assert main(["select", str(store), str(store) + "/", "--out", str(tmp_path / "sel2")]) == 2  # issue 30 §7
    assert "is given twice" in capsys.readouterr().err and not (tmp_path / "sel2").exists()
