"""Issue 15: every bad input ends in one line and exit code 2. Most cases run the console
script's entry point in this process (helpers.run_cli); killing, concurrency, start-up and the
demo model's conversion run the real console script in new processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from helpers import PROMPTS, Result, console_script, run_cli, write_jsonl


def xtl(*args: str, env: dict | None = None, timeout: int = 600, real: bool = False) -> Result:
    """``xtl ARGS`` (see :func:`helpers.run_cli`)."""
    return run_cli(*args, env=env, real=real, timeout=timeout)


def one_line_exit_2(proc: Result, message: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [l for l in proc.stderr.strip().splitlines() if l.startswith("xtl: error")]
    assert len(lines) == 1 and message in lines[0], proc.stderr[-2000:]


@pytest.fixture
def task(tmp_path) -> Path:
    path = tmp_path / "task.jsonl"
    rows = [{"id": k, "lang": "de", "source": PROMPTS["zh"], "target": PROMPTS["en"] + " " * k, "gold": "B",
             "kind": "choice", "options": {"A": "A", "B": "B"}} for k in range(3)]
    write_jsonl(path, rows)
    return path


@pytest.fixture
def prompts(tmp_path) -> tuple[str, str]:
    (tmp_path / "s.txt").write_text(PROMPTS["zh"], encoding="utf-8")
    (tmp_path / "t.txt").write_text(PROMPTS["en"], encoding="utf-8")
    return str(tmp_path / "s.txt"), str(tmp_path / "t.txt")


@pytest.mark.parametrize("config, message", [
    ({"model_type": "no-such-architecture"}, "cannot be loaded as a Hugging Face causal LM"),
    ({}, "cannot be loaded as a Hugging Face causal LM"),
    ("[1, 2, 3]", "cannot be loaded as a Hugging Face causal LM"),
])
def test_unusable_config_json(tmp_path, prompts, config, message):
    folder = tmp_path / "bad-model"
    folder.mkdir()
    (folder / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    one_line_exit_2(xtl("transplant", "--model", str(folder), "--source", prompts[0],
                        "--target", prompts[1]), message)


@pytest.mark.parametrize("device, message", [("nonsense", "unknown device 'nonsense'"),
                                             ("tpu", "unknown device 'tpu'")])
def test_unknown_device(tiny_folder, prompts, device, message):
    one_line_exit_2(xtl("transplant", "--model", str(tiny_folder), "--device", device,
                        "--source", prompts[0], "--target", prompts[1]), message)


def test_unavailable_cuda(tiny_folder, prompts):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    one_line_exit_2(xtl("transplant", "--model", str(tiny_folder), "--device", "cuda",
                        "--source", prompts[0], "--target", prompts[1]),
                    "torch sees no CUDA GPU")


def test_sweep_out_that_cannot_be_a_store(tmp_path, tiny_folder, task):
    afile = tmp_path / "afile"
    afile.write_text("x")
    base = ["sweep", "--model", str(tiny_folder), "--task", str(task)]
    one_line_exit_2(xtl(*base, "--out", str(afile)), "is a file, not a folder")
    one_line_exit_2(xtl(*base, "--out", str(afile / "store")), "cannot create the folder")


def test_lens_and_report_out_that_cannot_be_written(tmp_path, tiny_folder, prompts):
    afile = tmp_path / "afile"
    afile.write_text("x")
    one_line_exit_2(xtl("lens", "--model", str(tiny_folder), "--target", prompts[1],
                        "--out", str(afile / "lens.html")), "cannot write")
    one_line_exit_2(xtl("lens", "--model", str(tiny_folder), "--target", prompts[1],
                        "--out", str(tmp_path)), "is a folder")


@pytest.mark.parametrize("line, message", [
    ("42", ":1: each line must be a JSON object"),
    ('["a", "b"]', ":1: each line must be a JSON object"),
    ('{"source": "s", "target": "t", "gold": "A", "options": ["A", "B"]}', ":1: 'options' must be an object"),
    ('{"source": 123, "target": "t", "gold": "A"}', ":1: 'source' must be a non-empty string"),
    ('{"source": "s", "target": "t", "gold": null}', ":1: 'gold' must be the answer"),
    ('{"source": "s", "target": "t", "gold": "A", "lang": 5}', ":1: 'lang' must be a language code"),
])
def test_jsonl_lines_of_the_wrong_shape(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    one_line_exit_2(xtl("sweep", "--model", "gemma-3-270m", "--task", str(path), "--out", str(tmp_path / "o")),
                    f"bad.jsonl{message}")


def test_duplicate_ids_name_both_lines(tmp_path):
    path = tmp_path / "dup.jsonl"
    rows = [{"id": "a", "source": "s1", "target": "t1", "gold": "A"},
            {"id": "b", "source": "s2", "target": "t2", "gold": "A"},
            {"id": "a", "source": "s3", "target": "t3", "gold": "B"}]
    write_jsonl(path, rows)
    one_line_exit_2(xtl("sweep", "--model", "gemma-3-270m", "--task", str(path), "--out", str(tmp_path / "o")),
                    "lines 1 and 3 have the same id 'a'")


def test_missing_task_file_is_not_an_unknown_task(tmp_path):
    one_line_exit_2(xtl("sweep", "--model", "gemma-3-270m", "--task", str(tmp_path / "nosuch.jsonl"),
                        "--out", str(tmp_path / "o")), "nosuch.jsonl does not exist")


@pytest.mark.parametrize("command", [
    ["transplant", "--model", "m", "--source", "s", "--target", "t", "--max-new-tokens", "0"],
    ["sweep", "--model", "m", "--task", "xnli", "--out", "o", "--max-new-tokens", "0"],
    ["eval", "--model", "m", "--task", "xnli", "--max-new-tokens", "-3"],
    ["lens", "--model", "m", "--target", "p", "--max-new-tokens", "0"],
    ["sweep", "--model", "m", "--task", "xnli", "--out", "o", "--limit", "0"],
    ["eval", "--model", "m", "--task", "xnli", "--limit", "0"],
    ["sweep", "--model", "m", "--task", "xnli", "--out", "o", "--batch-size", "0"],
])
def test_counts_below_one_are_refused(command):
    one_line_exit_2(xtl(*command), "must be at least 1")


def test_paper_table_without_numbers_is_refused(tmp_path):
    """Issue 30 §7: it printed "written to ... ()", wrote nothing and exited 0."""
    one_line_exit_2(xtl("paper", str(tmp_path / "store"), "--table", "--out", str(tmp_path / "t")),
                    "--table needs the numbers of the tables")
    assert not (tmp_path / "t").exists()


def test_bad_layer_selection_and_site_before_loading(tmp_path, task):
    base = ["sweep", "--model", "no-such-model-is-loaded", "--task", str(task), "--out", str(tmp_path / "o")]
    one_line_exit_2(xtl(*base, "--src-layers", "5-2"), "bad layer range '5-2'")
    one_line_exit_2(xtl(*base, "--tgt-layers", "a-b"), "bad layer selection 'a-b'")
    one_line_exit_2(xtl(*base, "--site", "atn"), "Did you mean 'attn'")


def test_version_and_help():
    from xtl import __version__

    proc = xtl("--version", real=True)                    # the installed console script starts
    assert proc.returncode == 0 and proc.stdout.strip() == f"xtl {__version__}"
    helps = " ".join(xtl("sweep", "--help").stdout.split())
    assert "512 on a CPU" in helps and "(default: generate)" in helps and "(default: None)" not in helps
    assert "0-31:2" in helps and "xnli:unseen" in helps
    assert "runs/xnli-attn" in xtl("report", "--help").stdout


def test_layer_selections_and_candidates_on_the_cli(tmp_path, tiny_folder, task):
    from xtl.engine.store import read_manifest, read_store

    out = tmp_path / "store"
    proc = xtl("sweep", "--model", str(tiny_folder), "--dtype", "float64", "--task", str(task), "--out", str(out),
               "--src-layers", "0-3:2", "--tgt-layers", "1", "3", "--candidates", "A", "B",
               "--max-new-tokens", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    df = read_store(out)
    assert sorted(set(zip(df.src_layer, df.tgt_layer))) == [(-1, -1), (0, 1), (0, 3), (2, 1), (2, 3)]
    assert df["cand_logprobs"].map(len).eq(2).all()
    settings = read_manifest(out)
    assert settings["model"] == tiny_folder.name          # the name the user gave, not a cache path
    assert (settings["src_layers"], settings["tgt_layers"]) == ([0, 2], [1, 3])
    report = tmp_path / "r.html"
    proc = xtl("report", str(out), "--out", str(report), "--src-layers", "2", "--tgt-layers", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = report.read_text(encoding="utf-8")
    assert f"xtl report: {tiny_folder.name}" in page and "sources 2 × targets 1 of 4 layers" in page
    ev = tmp_path / "ev"
    proc = xtl("eval", "--model", str(tiny_folder), "--dtype", "float64", "--task", str(task), "--out", str(ev),
               "--src-layer", "1", "3", "--tgt-layer", "0", "--max-new-tokens", "2", "--no-ppl")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = pd.read_parquet(ev / "evaluated.parquet")
    assert sorted(set(zip(rows.src_layer, rows.tgt_layer))) == [(-1, -1), (1, 0), (3, 0)]


def test_sigkill_mid_sweep_then_resume_equals_an_uninterrupted_run(tmp_path, tiny_folder):
    """Kill a real `xtl sweep` with SIGKILL after its first item, rerun, compare."""
    from xtl.engine.store import read_store

    path = tmp_path / "many.jsonl"
    rows = [{"id": f"i{k}", "lang": "de", "source": PROMPTS["zh"] + " " * k, "target": PROMPTS["en"] + "." * k,
             "gold": "B"} for k in range(8)]
    write_jsonl(path, rows)
    cmd = console_script()
    args = ["sweep", "--model", str(tiny_folder), "--dtype", "float64", "--task", str(path),
            "--max-new-tokens", "6", "--batch-size", "3"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, *args, "--out", str(killed)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list(killed.glob("item-*.parquet")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(killed.glob("item-*.parquet")))
    assert 1 <= done_before < 8, "the sweep was not killed mid-run"
    assert xtl(*args, "--out", str(killed)).returncode == 0
    assert xtl(*args, "--out", str(tmp_path / "whole")).returncode == 0
    cols = ["item_key", "src_layer", "tgt_layer"]
    a = read_store(killed).sort_values(cols).reset_index(drop=True)
    b = read_store(tmp_path / "whole").sort_values(cols).reset_index(drop=True)
    assert len(a) == len(b) == 8 * 17 and not a.duplicated(cols).any()
    assert a["token_ids"].map(list).tolist() == b["token_ids"].map(list).tolist()
    assert a["response"].tolist() == b["response"].tolist()
    assert not list(killed.glob("*.partial"))


@pytest.fixture(scope="module")
def gguf_conversion(tmp_path_factory):
    """Two `xtl transplant` of one GGUF file on a fresh cache at once (issue 13): the one conversion
    that both tests below look at. A tiny Gemma 3 GGUF written here takes the same quick conversion
    path as the demo model's (tests/test_gguf.py), so the session converts the demo model once only."""
    pytest.importorskip("gguf")
    from helpers import write_tiny_gguf

    root = tmp_path_factory.mktemp("gguf-cache")
    model = write_tiny_gguf(root / "tiny-gemma3.gguf", "gemma3")
    (root / "src.txt").write_text("日本 the cat", encoding="utf-8")
    (root / "tgt.txt").write_text("the cat", encoding="utf-8")
    args = ["transplant", "--model", str(model), "--source", str(root / "src.txt"),
            "--target", str(root / "tgt.txt"), "--src-layer", "1", "--tgt-layer", "0", "--max-new-tokens", "3"]
    cache = root / "cache"
    env = {**os.environ, "XTL_CACHE": str(cache)}
    procs = [subprocess.Popen([*console_script(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    return cache, [p.returncode for p in procs], outs, args


def test_two_processes_converting_one_gguf_at_once(gguf_conversion):
    """Issue 13: two commands on a fresh cache at once both work; the model is converted once."""
    cache, codes, outs, _ = gguf_conversion
    assert codes == [0, 0], [o[1][-1500:] for o in outs]
    assert sum("first use of" in err for _, err in outs) == 1      # one conversion, the other waited
    assert sum("converted in" in err for _, err in outs) == 1
    assert sum("quick GGUF conversion" in err for _, err in outs) == 1   # not transformers' slow path
    assert outs[0][0] == outs[1][0]
    assert not list((cache / "gguf").glob("*.partial-*"))


def test_corrupted_gguf_conversion_is_rebuilt(gguf_conversion):
    cache, codes, outs, args = gguf_conversion
    assert codes == [0, 0]
    first = next(out for out, err in outs if "first use of" in err and "converted in" in err)
    (weights,) = cache.glob("gguf/*/model.safetensors")
    weights.write_bytes(weights.read_bytes()[:1000])        # cut short
    again = xtl(*args, env={"XTL_CACHE": str(cache)}, real=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "is unreadable" in again.stderr and "rebuilding it" in again.stderr
    assert first == again.stdout


def test_two_processes_share_one_store(tmp_path, tiny_folder):
    """Two `xtl sweep` at once into one store: every item computed once, none lost."""
    import re

    from xtl.engine.store import read_store

    path = tmp_path / "many.jsonl"
    rows = [{"id": f"i{k}", "source": PROMPTS["zh"] + " " * k, "target": PROMPTS["en"] + "." * k, "gold": "B"}
            for k in range(12)]
    write_jsonl(path, rows)
    script = Path(sys.executable).parent / "xtl"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "xtl.cli"]
    args = [*cmd, "sweep", "--model", str(tiny_folder), "--dtype", "float64", "--task", str(path),
            "--max-new-tokens", "24", "--out", str(tmp_path / "shared")]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1000:] for o in outs]
    computed = [int(re.search(r"(\d+) item\(s\) computed here", err).group(1)) for _, err in outs]
    assert sum(computed) == 12, computed
    df = read_store(tmp_path / "shared")
    assert df["item_id"].nunique() == 12 and not df.duplicated(["item_key", "src_layer", "tgt_layer"]).any()
    assert not list((tmp_path / "shared").glob("*.claim"))


def test_layers_checked_against_the_config_before_loading(tmp_path, task):
    folder = tmp_path / "unloadable"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"num_hidden_layers": 4}))   # no weights at all
    one_line_exit_2(xtl("sweep", "--model", str(folder), "--task", str(task), "--out", str(tmp_path / "o"),
                        "--src-layers", "0-5"), "source layers 4, 5 out of range")
    one_line_exit_2(xtl("transplant", "--model", "gemma-3-270m-q4km", "--source", "s", "--target", "t",
                        "--tgt-layer", "18"), "target layer 18 out of range; gemma-3-270m-q4km has layers 0..17")
    assert not (tmp_path / "o").exists()                  # nothing was written either


_REFUSED_LIGHT = """
import sys
from xtl.cli import main
code = main(sys.argv[1:])
print(code, sorted(m for m in ("torch", "transformer_lens") if m in sys.modules))
"""


@pytest.mark.parametrize("args, message", [
    (["--src-layer", "99"], "source layer 99 out of range"),
    (["--site", "foo"], "unknown site 'foo'"),
])
def test_transplant_refuses_bad_layers_and_sites_before_importing_the_model_stack(args, message):
    """Issue 38 §4: ``xtl transplant --src-layer 99`` was refused only after torch, TransformerLens
    and the model had loaded; now from the config alone, as ``xtl sweep`` does."""
    proc = subprocess.run([sys.executable, "-c", _REFUSED_LIGHT, "transplant", "--model", "gemma-3-270m-q4km", *args],
                          capture_output=True, text=True, timeout=120, env={**os.environ})
    assert message in proc.stderr and proc.stdout.split() == ["2", "[]"], (proc.stdout, proc.stderr[-2000:])


def test_layers_checked_against_a_cached_hub_config(tmp_path):
    """A hub model already in the Hugging Face cache is checked from its cached config.json."""
    snapshot = tmp_path / "hub" / "models--someone--tiny" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"num_hidden_layers": 3}))
    (tmp_path / "hub" / "models--someone--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--someone--tiny" / "refs" / "main").write_text("0" * 40)
    proc = subprocess.run([sys.executable, "-c", _REFUSED_LIGHT, "transplant", "--model", "someone/tiny",
                           "--tgt-layer", "7"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"})
    assert "target layer 7 out of range; someone/tiny has layers 0..2" in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout.split() == ["2", "[]"]


def test_messages_point_the_right_way(tmp_path, tiny_models, prompts):
    """A garbage .gguf is not blamed on a missing package; a too-long source prompt is named."""
    from xtl.errors import PromptError

    garbage = tmp_path / "model.gguf"
    garbage.write_bytes(b"this is not a gguf file" * 100)
    proc = xtl("transplant", "--model", str(garbage), "--source", prompts[0], "--target", prompts[1],
               env={"XTL_CACHE": str(tmp_path / "cache")})
    one_line_exit_2(proc, "is not a GGUF checkpoint transformers can read")
    assert "pip install gguf" not in proc.stderr
    _, model = tiny_models["llama"]
    import xtl as lib

    with pytest.raises(PromptError, match="the source prompt has 601 tokens, more than the model's context of 512"):
        lib.transplant(model, source="x" * 600, target=PROMPTS["en"], src_layer=1, tgt_layer=0, site="mlp",
                       max_new_tokens=3)
