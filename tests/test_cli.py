import json
import subprocess
import sys

import pytest

from xtl.cli import main


def run(args):
    from helpers import run_cli

    return run_cli(*args)


@pytest.mark.parametrize("args, message", [
    (["transplant", "--model", "nonexistent-model-xyz", "--source", "a", "--target", "b"],
     "cannot read prompt file"),
    (["transplant", "--model", "/no/such.gguf"], "does not exist"),
    (["transplant", "--model", "/no/such.gguf", "--source", "a"], "give both --source FILE and --target FILE"),
    (["sweep", "--model", "x", "--task", "xnlii", "--out", "o"], "Did you mean 'xnli'"),
])
def test_cli_errors_are_one_line_exit_2(args, message):
    proc = run(args)
    if args[1:3] == ["--model", "/no/such.gguf"]:  # once through `python -m xtl.cli` in a new process
        proc = subprocess.run([sys.executable, "-m", "xtl.cli", *args], capture_output=True, text=True)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_bad_model_spec(tmp_path):
    (tmp_path / "s.txt").write_text("hello")
    proc = run(["transplant", "--model", "nonexistent-model-xyz", "--source",
                str(tmp_path / "s.txt"), "--target", str(tmp_path / "s.txt")])
    assert proc.returncode == 2 and "neither a TransformerLens model name" in proc.stderr


def test_cli_empty_prompt_file(tmp_path):
    (tmp_path / "e.txt").write_text("  \n")
    assert main(["transplant", "--model", "x", "--source", str(tmp_path / "e.txt"),
                 "--target", str(tmp_path / "e.txt")]) == 2


def test_cli_transplant_on_local_folder(tmp_path, tokenizer, capsys):
    from helpers import PROMPTS, tiny_hf

    folder = tmp_path / "m"
    tiny_hf("llama").save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (tmp_path / "s.txt").write_text(PROMPTS["zh"], encoding="utf-8")
    (tmp_path / "t.txt").write_text(PROMPTS["en"], encoding="utf-8")
    code = main(["transplant", "--model", str(folder), "--source", str(tmp_path / "s.txt"),
                 "--target", str(tmp_path / "t.txt"), "--site", "attn", "--src-layer", "3",
                 "--tgt-layer", "1", "--max-new-tokens", "5", "--json", "--dtype", "float64"])
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["src_layer"] == 3 and out["tgt_layer"] == 1 and len(out["tokens"]) <= 5
    assert main(["transplant", "--model", str(folder), "--source", str(tmp_path / "s.txt"),
                 "--target", str(tmp_path / "t.txt"), "--src-layer", "40"]) == 2
